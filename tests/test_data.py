import json
from pathlib import Path

import pytest

from stylized_dpo.data import DataSourceConfig
from stylized_dpo.data_prepare import load_split, prepare
from stylized_dpo.io import DataError, read_records
from stylized_dpo.records import PreferencePair, SFTExample, percentiles

PREF_SPLITS = {"train": "train_prefs", "test": "test_prefs"}


def msgs(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


def pref(pid="p1", prompt="Q?", chosen="Good answer.", rejected="Bad answer.", **extra):
    row = {
        "prompt": prompt,
        "prompt_id": pid,
        "chosen": msgs(("user", prompt), ("assistant", chosen)),
        "rejected": msgs(("user", prompt), ("assistant", rejected)),
        "messages": msgs(("user", prompt), ("assistant", chosen)),
        "score_chosen": 9.0,
        "score_rejected": 2.0,
    }
    row.update(extra)
    return row


def chat(user="Hi?", assistant="Hello.", system=None):
    pairs = ([("system", system)] if system else []) + [("user", user), ("assistant", assistant)]
    return {"messages": msgs(*pairs), "source": "t"}


def write_lines(path: Path, lines: list) -> Path:
    with open(path, "wb") as f:
        for line in lines:
            if isinstance(line, bytes):
                f.write(line + b"\n")
            elif isinstance(line, str):
                f.write(line.encode() + b"\n")
            else:
                f.write(json.dumps(line).encode() + b"\n")
    return path


def prefs_cfg(tmp_path, **kw):
    return DataSourceConfig(source="local", path=str(tmp_path), splits=PREF_SPLITS, **kw)


BAD_PREFS = {
    # name: (bad line, expected field, expected words in the message)
    "malformed_json": ('{"prompt": "Q?", ', None, "malformed JSON"),
    "not_utf8": (b'{"prompt": "\xff\xfe"}', None, "UTF-8"),
    "row_not_object": ([1, 2], "<row>", "JSON object"),
    "missing_prompt_id": (
        {k: v for k, v in pref("x").items() if k != "prompt_id"},
        "prompt_id",
        "missing",
    ),
    "prompt_wrong_type": (pref("x", prompt=5), "prompt", "expected str"),
    "chosen_not_list": (dict(pref("x"), chosen="text"), "chosen", "expected list"),
    "message_not_object": (dict(pref("x"), chosen=["text"]), "chosen[0]", "JSON object"),
    "message_missing_role": (
        dict(pref("x"), chosen=[{"content": "a"}]),
        "chosen[0].role",
        "missing",
    ),
    "empty_assistant": (pref("x", chosen="   "), "chosen[1].content", "empty"),
    "content_null": (
        dict(pref("x"), rejected=[{"role": "assistant", "content": None}]),
        "rejected[0].content",
        "missing",
    ),
    "no_assistant": (dict(pref("x"), rejected=msgs(("user", "Q?"))), "rejected", "no assistant"),
    "empty_chosen_list": (dict(pref("x"), chosen=[]), "chosen", "no messages"),
    "score_wrong_type": (pref("x", score_chosen="high"), "score_chosen", "expected"),
    "chosen_equals_rejected": (
        pref("x", chosen="Same.", rejected="Same."),
        "rejected",
        "identical",
    ),
    "duplicate_prompt_id": (pref("p1"), "prompt_id", "already used on line 1"),
    # roles: each side is exactly [user: the prompt, assistant: the answer]
    "chosen_system_first": (
        dict(pref("x"), chosen=msgs(("system", "s"), ("user", "Q?"), ("assistant", "a"))),
        "chosen[0].role",
        "expected 'user' (chosen is [user, assistant]), got 'system'",
    ),
    "rejected_unknown_role": (
        dict(pref("x"), rejected=msgs(("user", "Q?"), ("robot", "a"))),
        "rejected[1].role",
        "expected 'assistant' (rejected is [user, assistant]), got 'robot'",
    ),
    "chosen_multi_turn": (
        dict(
            pref("x"),
            chosen=msgs(("user", "Q?"), ("assistant", "x"), ("user", "more"), ("assistant", "y")),
        ),
        "chosen[2].role",
        "chosen has 4 messages; a pair is one turn",
    ),
    "chosen_answers_another_prompt": (
        dict(pref("x"), chosen=msgs(("user", "Other?"), ("assistant", "a"))),
        "chosen[0].content",
        "differs from the row's prompt",
    ),
    "prompt_lone_surrogate": (
        json.dumps(pref("x", prompt="Q\ud800?")),
        "prompt",
        "lone surrogate \\ud800 at character 1",
    ),
    "answer_lone_surrogate": (
        json.dumps(pref("x", chosen="\udfff ok")),
        "chosen[1].content",
        "lone surrogate \\udfff at character 0",
    ),
    "score_nan": (
        json.dumps(pref("x", score_chosen=float("nan"))),
        "score_chosen",
        "is nan, not a finite number",
    ),
    "score_infinite": (
        json.dumps(pref("x", score_rejected=float("-inf"))),
        "score_rejected",
        "is -inf, not a finite number",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_PREFS))
def test_bad_pref_rows_name_file_line_field(tmp_path, case):
    bad, field, words = BAD_PREFS[case]
    path = write_lines(tmp_path / "train_prefs.jsonl", [pref("p1"), pref("p2"), bad, pref("p4")])
    with pytest.raises(DataError) as e:
        load_split(prefs_cfg(tmp_path), "prefs", "train")
    assert e.value.path == str(path)
    assert e.value.line == 3
    assert e.value.field == field
    assert words in str(e.value)
    assert f"{path}, line 3" in str(e.value)


BAD_CHATS = {
    "missing_messages": ({"source": "x"}, "messages", "missing"),
    "messages_wrong_type": ({"messages": "hi"}, "messages", "expected list"),
    "no_user": ({"messages": msgs(("assistant", "a"))}, "messages[0].role", "expected 'user'"),
    "system_alone": ({"messages": msgs(("system", "s"))}, "messages", "no user"),
    "no_assistant_after_user": (
        {"messages": msgs(("system", "s"), ("user", "q"))},
        "messages",
        "no assistant",
    ),
    "unknown_role": (
        {"messages": msgs(("user", "q"), ("robot", "a"))},
        "messages[1].role",
        "'robot' is not one of system, user, assistant",
    ),
    "tool_role": (
        {"messages": msgs(("user", "q"), ("assistant", "a"), ("tool", "{}"))},
        "messages[2].role",
        "'tool' is not one of",
    ),
    "late_system": (
        {"messages": msgs(("user", "q"), ("assistant", "a"), ("system", "s"))},
        "messages[2].role",
        "a system message may only come first",
    ),
    "two_user_turns": (
        {"messages": msgs(("user", "q"), ("user", "q2"), ("assistant", "a"))},
        "messages[1].role",
        "expected 'assistant' after a user message (turns alternate), got 'user'",
    ),
    "lone_surrogate": (
        '{"messages": [{"role": "user", "content": "caf\\ud800"}, '
        '{"role": "assistant", "content": "a"}]}',
        "messages[0].content",
        "lone surrogate \\ud800 at character 3",
    ),
    "empty_system": (
        {"messages": msgs(("system", ""), ("user", "q"), ("assistant", "a"))},
        "messages[0].content",
        "empty",
    ),
    "content_wrong_type": (
        {"messages": [{"role": "user", "content": ["q"]}]},
        "messages[0].content",
        "expected str",
    ),
    "duplicate_conversation": (chat("Hi?", "Hello."), "prompt_id", "already used"),
}


@pytest.mark.parametrize("case", sorted(BAD_CHATS))
def test_bad_chats_name_file_line_field(tmp_path, case):
    bad, field, words = BAD_CHATS[case]
    path = write_lines(tmp_path / "train.jsonl", [chat("Hi?", "Hello."), "", bad])
    cfg = DataSourceConfig(source="local", path=str(tmp_path))
    with pytest.raises(DataError) as e:
        load_split(cfg, "sft", "train")
    assert (e.value.path, e.value.line, e.value.field) == (str(path), 3, field)
    assert words in str(e.value)


def test_drop_invalid_counts_every_reason(tmp_path):
    lines = [
        pref("p1"),
        '{"x": ',
        pref("p2", chosen=""),
        b"\xff",
        pref("p1"),
        pref("p3", prompt=3),
        pref("p4"),
        dict(pref("p5"), rejected=[]),
    ]
    write_lines(tmp_path / "train_prefs.jsonl", lines)
    result = load_split(prefs_cfg(tmp_path, drop_invalid=True), "prefs", "train")
    assert [r.prompt_id for r in result.records] == ["p1", "p4"]
    card = result.card
    assert card["drops"] == {
        "duplicate_prompt_id": 1,
        "empty_message": 2,
        "malformed_json": 1,
        "not_utf8": 1,
        "wrong_type": 1,
    }
    assert card["rows_read"] == 8 and card["rows_out"] == 2 and card["drops_total"] == 6
    assert "line 5" in card["first_drop_per_reason"]["duplicate_prompt_id"]


def test_all_rows_invalid_is_an_error_not_an_empty_file(tmp_path):
    write_lines(tmp_path / "train_prefs.jsonl", ['{"x": '])
    with pytest.raises(DataError, match="no valid rows"):
        load_split(prefs_cfg(tmp_path, drop_invalid=True), "prefs", "train")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_split(prefs_cfg(tmp_path), "prefs", "train")


def test_conversion_follows_the_paper(tmp_path):
    multi = {
        "messages": msgs(
            ("system", "Be brief."),
            ("user", "A?"),
            ("assistant", "a1"),
            ("user", "B?"),
            ("assistant", "b1"),
        )
    }
    write_lines(tmp_path / "train.jsonl", [multi, chat("C?", "c1")])
    records = load_split(
        DataSourceConfig(source="local", path=str(tmp_path)), "sft", "train"
    ).records
    assert records[0] == SFTExample(records[0].prompt_id, "A?", "a1", "Be brief.")
    assert records[1].system is None and records[1].user == "C?"
    # chosen/rejected: the assistant message of each side
    write_lines(tmp_path / "train_prefs.jsonl", [pref("z", chosen="final")])
    (pair,) = load_split(prefs_cfg(tmp_path), "prefs", "train").records
    assert (pair.chosen, pair.rejected, pair.provenance) == ("final", "Bad answer.", None)


def test_max_rows_stops_and_is_reported(tmp_path):
    write_lines(tmp_path / "train_prefs.jsonl", [pref(f"p{i}") for i in range(10)] + ["{bad"])
    result = load_split(prefs_cfg(tmp_path, max_rows=4), "prefs", "train")
    assert len(result.records) == 4
    assert result.card["stopped_at_max_rows"] and result.card["rows_read"] == 4


def test_parquet_with_split_template(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(
        pa.Table.from_pylist([pref("a"), pref("b")]), tmp_path / "uf_train_prefs.parquet"
    )
    cfg = DataSourceConfig(
        source="local", path=str(tmp_path / "uf_{split}.parquet"), splits=PREF_SPLITS
    )
    result = load_split(cfg, "prefs", "train")
    assert [r.prompt_id for r in result.records] == ["a", "b"]
    assert result.card["source"]["path"].endswith("uf_train_prefs.parquet")
    assert len(result.card["source"]["sha256"]) == 64


def test_hub_loader_reads_a_hub_layout_offline(tmp_path, monkeypatch):
    """`hub` goes through datasets.load_dataset; a local folder in the hub's layout (README
    configs + data/<split>-00000-of-00001.parquet, as ultrafeedback_binarized has) stands in."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "cache")
    repo = tmp_path / "ultrafeedback_binarized"
    (repo / "data").mkdir(parents=True)
    for split, ids in (("train_prefs", ["a", "b", "c"]), ("test_prefs", ["d"])):
        pq.write_table(
            pa.Table.from_pylist([pref(i) for i in ids]),
            repo / "data" / f"{split}-00000-of-00001.parquet",
        )
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files:\n"
        "  - split: train_prefs\n    path: data/train_prefs-*\n"
        "  - split: test_prefs\n    path: data/test_prefs-*\n---\n"
    )
    calls = []
    real = datasets.load_dataset
    monkeypatch.setattr(
        datasets, "load_dataset", lambda *a, **k: calls.append((a, k)) or real(*a, **k)
    )
    cfg = DataSourceConfig(source="hub", name=str(repo), splits=PREF_SPLITS)
    result = load_split(cfg, "prefs", "train")
    assert [r.prompt_id for r in result.records] == ["a", "b", "c"]
    assert calls == [((str(repo),), {"split": "train_prefs", "revision": None})]
    assert result.card["source"] == {
        "source": "hub",
        "name": str(repo),
        "revision": "default branch",
        "split": "train_prefs",
    }


def test_prepare_writes_records_and_card(tmp_path):
    write_lines(
        tmp_path / "train.jsonl", [chat(f"Q{i}?", "one two three " * (i + 1)) for i in range(20)]
    )
    write_lines(tmp_path / "test.jsonl", [chat("T?", "a b"), '{"bad'])
    cfg = DataSourceConfig(source="local", path=str(tmp_path), drop_invalid=True)
    out = tmp_path / "out"
    card = prepare(
        "sft",
        cfg,
        {"train": out / "train.jsonl", "test": out / "test.jsonl"},
        out / "card.json",
        out / "card.md",
    )
    assert len(read_records(out / "train.jsonl", SFTExample)) == 20
    assert json.loads((out / "card.json").read_text()) == card
    train = card["splits"]["train"]
    assert train["lengths"]["completion"] == {
        "p50": 30,
        "p90": 54,
        "p99": 60,
        "max": 60,
        "mean": 31.5,
    }
    assert card["length_unit"] == "whitespace words"
    assert card["splits"]["test"]["drops"] == {"malformed_json": 1}
    md = (out / "card.md").read_text()
    assert "malformed_json" in md and "sha256" in md and "| completion | 30 | 54 |" in md


def test_prepare_with_a_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(
        tmp_path / "tk"
    )
    write_lines(tmp_path / "train_prefs.jsonl", [pref("a", chosen="abcd", rejected="ab")])
    card = prepare(
        "prefs",
        prefs_cfg(tmp_path, tokenizer=str(tmp_path / "tk")),
        {"train": tmp_path / "o.jsonl"},
        tmp_path / "c.json",
        tmp_path / "c.md",
    )
    assert card["length_unit"] == f"tokens ({tmp_path / 'tk'})"
    assert card["splits"]["train"]["lengths"]["chosen"]["max"] == 4
    assert read_records(tmp_path / "o.jsonl", PreferencePair)[0].chosen == "abcd"


def test_percentiles_nearest_rank():
    assert percentiles(list(range(1, 101))) == {
        "p50": 50,
        "p90": 90,
        "p99": 99,
        "max": 100,
        "mean": 50.5,
    }
    assert percentiles([7]) == {"p50": 7, "p90": 7, "p99": 7, "max": 7, "mean": 7.0}


def test_config_validation():
    with pytest.raises(ValueError, match="source"):
        DataSourceConfig(source="ftp", path="x")
    with pytest.raises(ValueError, match="name"):
        DataSourceConfig(source="hub")
    with pytest.raises(ValueError, match="path"):
        DataSourceConfig(source="local")


def test_source_config_and_rule_inputs():
    from stylized_dpo.data import source_config, source_paths

    world = source_config({"source": "world", "name": "x", "splits": None}, "prefs", "res/world")
    assert world.path == "res/world/ultrafeedback"
    assert source_paths(world) == {
        "train": "res/world/ultrafeedback/train_prefs.jsonl",
        "test": "res/world/ultrafeedback/test_prefs.jsonl",
    }
    hub = source_config({"source": "hub", "name": "HuggingFaceTB/smol-smoltalk"}, "sft")
    assert hub.splits == {"train": "train", "test": "test"} and source_paths(hub) == {}
    local = source_config({"source": "local", "path": "d/{split}.parquet"}, "sft")
    assert source_paths(local) == {"train": "d/train.parquet", "test": "d/test.parquet"}


def test_a_byte_order_mark_starts_a_valid_file(tmp_path):
    """Editors on Windows start UTF-8 files with a BOM; the first row is still a row."""
    path = tmp_path / "train_prefs.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(pref("p1")) + "\n").encode())
    with open(path, "ab") as f:
        f.write((json.dumps(pref("p2")) + "\n").encode())
    result = load_split(prefs_cfg(tmp_path), "prefs", "train")
    assert [r.prompt_id for r in result.records] == ["p1", "p2"]
    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "train.jsonl").write_bytes(b"\xef\xbb\xbf" + json.dumps(chat()).encode() + b"\n")
    cfg = DataSourceConfig(source="local", path=str(sft))
    assert load_split(cfg, "sft", "train").records[0].user == "Hi?"
    # the record files the pipeline reads back (io.read_records) too
    records = tmp_path / "pairs.jsonl"
    pair = PreferencePair("a", "Q?", "c", "r")
    records.write_bytes(b"\xef\xbb\xbf" + json.dumps(pair.to_dict()).encode() + b"\n")
    assert read_records(records, PreferencePair) == [pair]


def test_a_byte_order_mark_later_in_a_file_is_still_an_error(tmp_path):
    path = write_lines(tmp_path / "train_prefs.jsonl", [pref("p1")])
    with open(path, "ab") as f:
        f.write(b"\xef\xbb\xbf" + json.dumps(pref("p2")).encode() + b"\n")
    with pytest.raises(DataError, match="line 2: malformed JSON"):
        load_split(prefs_cfg(tmp_path), "prefs", "train")


def test_lone_surrogates_are_counted_drops_and_never_reach_the_writer(tmp_path):
    """Before, a `\\ud800` escape passed validation and `prepare` died in the writer with a
    UnicodeEncodeError naming no file or line, even with drop_invalid."""
    lines = [
        pref("p1"),
        json.dumps(pref("p2", prompt="Q\ud800?")),
        json.dumps(pref("p3", rejected="bad \udc00")),
        pref("p4"),
    ]
    write_lines(tmp_path / "train_prefs.jsonl", lines)
    out = tmp_path / "out"
    card = prepare(
        "prefs",
        prefs_cfg(tmp_path, drop_invalid=True),
        {"train": out / "train.jsonl"},
        out / "card.json",
        out / "card.md",
    )
    train = card["splits"]["train"]
    assert train["drops"] == {"lone_surrogate": 2}
    assert "line 2, field 'prompt'" in train["first_drop_per_reason"]["lone_surrogate"]
    assert [p.prompt_id for p in read_records(out / "train.jsonl", PreferencePair)] == ["p1", "p4"]


def test_record_types_refuse_lone_surrogates():
    from stylized_dpo.records import RecordError

    with pytest.raises(RecordError, match=r"field 'chosen': holds a lone surrogate \\ud83d"):
        PreferencePair("a", "Q?", "smile \ud83d", "r")
    with pytest.raises(RecordError, match="field 'system'"):
        SFTExample("a", "Q?", "A.", system="\udfff")
    assert PreferencePair("a", "Q?", "smile \U0001f600", "r").chosen.endswith("\U0001f600")


def test_bad_roles_and_scores_are_counted_under_drop_invalid(tmp_path):
    lines = [
        pref("p1"),
        dict(pref("p2"), chosen=msgs(("user", "Q?"), ("robot", "a"))),
        json.dumps(pref("p3", score_rejected=float("nan"))),
        pref("p4"),
    ]
    write_lines(tmp_path / "train_prefs.jsonl", lines)
    result = load_split(prefs_cfg(tmp_path, drop_invalid=True), "prefs", "train")
    assert result.card["drops"] == {"bad_role": 1, "invalid_score": 1}
    write_lines(
        tmp_path / "train.jsonl",
        [chat(), {"messages": msgs(("user", "q"), ("tool", "t"), ("assistant", "a"))}],
    )
    cfg = DataSourceConfig(source="local", path=str(tmp_path), drop_invalid=True)
    assert load_split(cfg, "sft", "train").card["drops"] == {"bad_role": 1}


def test_tied_and_inverted_scores_are_counted_in_the_card(tmp_path):
    lines = [
        pref("ok"),
        pref("tie", score_chosen=7.0, score_rejected=7),
        pref("inv1", score_chosen=3.0, score_rejected=8.5),
        pref("inv2", score_chosen=1, score_rejected=2),
        dict(pref("none"), score_chosen=None),
        {k: v for k, v in pref("absent").items() if k != "score_rejected"},
    ]
    write_lines(tmp_path / "train_prefs.jsonl", lines)
    out = tmp_path / "out"
    card = prepare(
        "prefs", prefs_cfg(tmp_path), {"train": out / "t.jsonl"}, out / "c.json", out / "c.md"
    )
    train = card["splits"]["train"]
    assert train["rows_out"] == 6 and train["drops"] == {}
    assert train["scores"] == {"ordered": 1, "tied": 1, "inverted": 2, "unscored": 2}
    assert train["score_examples"] == {"tied": ["tie"], "inverted": ["inv1", "inv2"]}
    md = (out / "c.md").read_text()
    assert "chosen above rejected 1, tied 1, inverted (chosen below rejected) 2" in md
    assert "first inverted: inv1, inv2" in md
