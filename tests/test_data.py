import json
from pathlib import Path

import pytest

from stylized_dpo.data import DataSourceConfig, load_split, percentiles, prepare
from stylized_dpo.io import DataError, read_records
from stylized_dpo.records import PreferencePair, SFTExample

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
    "no_user": ({"messages": msgs(("assistant", "a"))}, "messages", "no user"),
    "no_assistant_after_user": (
        {"messages": msgs(("assistant", "a"), ("user", "q"))},
        "messages",
        "no assistant",
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
    # chosen/rejected: the last assistant message of each side
    row = dict(
        pref("z"),
        chosen=msgs(("user", "Q?"), ("assistant", "x"), ("user", "more"), ("assistant", "final")),
    )
    write_lines(tmp_path / "train_prefs.jsonl", [row])
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
