"""Records and JSONL reading: errors name the file, line and field."""

import pytest

from stylized_dpo.io import DataError, read_records, write_jsonl
from stylized_dpo.records import JudgeScore, PreferencePair, SFTExample

REASONS = {c: "ok" for c in ("helpfulness", "relevance", "factuality", "harmlessness")}


def test_round_trip(tmp_path):
    rows = [PreferencePair("a", "q?", "yes", "no"), PreferencePair("b", "q2?", "y", "n", {"k": 1})]
    write_jsonl(tmp_path / "p.jsonl", rows)
    assert read_records(tmp_path / "p.jsonl", PreferencePair) == rows


@pytest.mark.parametrize(
    ("line", "field", "reason"),
    [
        ('{"prompt_id": "a", "prompt": "q", "chosen": "c"}', "rejected", "is missing"),
        (
            '{"prompt_id": "a", "prompt": "q", "chosen": 3, "rejected": "r"}',
            "chosen",
            "expected str",
        ),
        (
            '{"prompt_id": "a", "prompt": "  ", "chosen": "c", "rejected": "r"}',
            "prompt",
            "is empty",
        ),
        (
            '{"prompt_id": "a", "prompt": "q", "chosen": "c", "rejected": "r", "x": 1}',
            "x",
            "not a field",
        ),
    ],
)
def test_bad_rows_name_file_line_and_field(tmp_path, line, field, reason):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prompt_id": "ok", "prompt": "q", "chosen": "c", "rejected": "r"}\n' + line)
    with pytest.raises(DataError) as err:
        read_records(path, PreferencePair)
    assert err.value.line == 2 and err.value.field == field
    assert str(path) in str(err.value) and reason in str(err.value)


def test_malformed_json_and_bad_utf8(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"prompt_id": "a", "user": "u", "assistant": "a"}\n{"prompt_id": \n')
    with pytest.raises(DataError, match="line 2: malformed JSON"):
        read_records(path, SFTExample)
    path.write_bytes(b'{"prompt_id": "a", "user": "\xff", "assistant": "a"}\n')
    with pytest.raises(DataError, match="line 1: not valid UTF-8"):
        read_records(path, SFTExample)


def test_judge_scores_must_be_integers_in_range():
    with pytest.raises(ValueError, match="'factuality'"):
        JudgeScore("p", "m", 5, 5, 6, 5, REASONS)
    with pytest.raises(ValueError, match="'relevance'"):
        JudgeScore("p", "m", 5, True, 5, 5, REASONS)
    with pytest.raises(ValueError, match="missing a reason for harmlessness"):
        JudgeScore("p", "m", 5, 5, 5, 5, {c: "x" for c in list(REASONS)[:3]})
