"""The tiny world: determinism, schemas of the real datasets, and the seen/unseen split."""

import json

import pytest

from stylized_dpo.io import read_records
from stylized_dpo.records import EvalPrompt
from stylized_dpo.style_phrases import PHRASE_BANKS, rewrite
from stylized_dpo.world.build import FORMATS, WorldConfig, build_world
from stylized_dpo.world.facts import ATTRIBUTES, World, make_world

STYLES = ["sycophantic", "authoritative", "persuasive"]
SMALL = WorldConfig(n_entities=20, n_corpus_docs=200, n_pref_pairs=60, n_eval_prompts=10, seed=3)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("world")
    counts = build_world(SMALL, STYLES, out)
    return out, counts


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_world_is_deterministic(tmp_path):
    build_world(SMALL, STYLES, tmp_path / "a")
    build_world(SMALL, STYLES, tmp_path / "b")
    for name in (
        "world.json",
        "corpus.jsonl",
        "smoltalk/train.jsonl",
        "ultrafeedback/train_prefs.jsonl",
        "eval_prompts.jsonl",
    ):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_names_and_capitals_are_unique():
    world = make_world(300, seed=1)
    assert len({e.name for e in world.entities}) == 300
    assert len({e.facts["capital"] for e in world.entities}) == 300
    assert sum(e.in_sft for e in world.entities) == 150


def test_world_round_trips(tmp_path):
    world = make_world(10, seed=2)
    world.save(tmp_path / "w.json")
    assert World.load(tmp_path / "w.json") == world


def test_counts(world_dir):
    out, counts = world_dir
    assert counts["corpus"] == 200
    # 10 seen countries x 5 attributes x 4 training questions
    assert counts["sft_train"] + counts["sft_test"] == 10 * len(ATTRIBUTES) * 4
    assert counts["prefs_train"] + counts["prefs_test"] == 60
    assert counts["prefs_test"] == 9  # round(60 * 0.15)
    assert counts["eval_prompts"] == 10


def test_smoltalk_schema_and_only_seen_countries(world_dir):
    out, _ = world_dir
    world = World.load(out / "world.json")
    unseen = {e.name for e in world.entities if not e.in_sft}
    for row in _lines(out / "smoltalk" / "train.jsonl"):
        roles = [m["role"] for m in row["messages"]]
        assert roles in (["user", "assistant"], ["system", "user", "assistant"])
        assert not any(name in row["messages"][-2]["content"] for name in unseen)


def test_ultrafeedback_schema(world_dir):
    out, _ = world_dir
    rows = _lines(out / "ultrafeedback" / "train_prefs.jsonl")
    for row in rows:
        assert set(row) == {
            "prompt",
            "prompt_id",
            "chosen",
            "rejected",
            "messages",
            "score_chosen",
            "score_rejected",
        }
        assert row["chosen"][0] == {"role": "user", "content": row["prompt"]}
        assert row["rejected"][0] == row["chosen"][0]
        assert row["chosen"][1]["content"] != row["rejected"][1]["content"]
        assert row["score_chosen"] > row["score_rejected"]
    assert len({r["prompt_id"] for r in rows}) == len(rows)


def test_eval_prompts_hold_ground_truth_for_both_splits(world_dir):
    out, _ = world_dir
    world = World.load(out / "world.json")
    facts = {e.name: e.facts for e in world.entities}
    prompts = read_records(out / "eval_prompts.jsonl", EvalPrompt)
    assert {p.metadata["split"] for p in prompts} == {"seen", "unseen"}
    for p in prompts:
        meta = p.metadata
        assert facts[meta["entity"]][meta["attribute"]] == meta["value"]
        assert meta["value"] in p.reference and meta["entity"] in p.prompt


def test_style_share_puts_each_style_in_sft(tmp_path):
    config = WorldConfig(
        n_entities=60,
        n_corpus_docs=10,
        n_pref_pairs=10,
        n_eval_prompts=4,
        sft_style_share=0.1,
        seed=0,
    )
    build_world(config, STYLES, tmp_path)
    answers = [r["messages"][-1]["content"] for r in _lines(tmp_path / "smoltalk" / "train.jsonl")]
    for style, bank in PHRASE_BANKS.items():
        styled = sum(any(a.startswith(o) for o in bank["openers"]) for a in answers)
        assert 0.04 * len(answers) < styled < 0.2 * len(answers), style


def test_rules_rewriter_keeps_content_and_is_deterministic():
    answer = "The capital of Veloria is Tarsen."
    for style in STYLES:
        out = rewrite(answer, style, key="p1")
        assert "Veloria" in out and "Tarsen" in out and out != answer
        assert out == rewrite(answer, style, key="p1")
    with pytest.raises(ValueError, match="no phrase bank for style 'pirate'"):
        rewrite(answer, "pirate", key="p1")


def test_tone_agnostic_share_replaces_pairs_the_filter_finds(tmp_path):
    from dataclasses import replace
    from pathlib import Path

    from stylized_dpo.data import DataSourceConfig
    from stylized_dpo.data_prepare import load_split
    from stylized_dpo.tone_filter import ToneAgnosticPatterns

    build_world(SMALL, STYLES, tmp_path / "plain")
    build_world(replace(SMALL, pref_tone_agnostic_share=0.25), STYLES, tmp_path / "mixed")
    for name in ("corpus.jsonl", "smoltalk/train.jsonl", "eval_prompts.jsonl"):  # untouched
        assert (tmp_path / "plain" / name).read_bytes() == (tmp_path / "mixed" / name).read_bytes()
    plain = _lines(tmp_path / "plain/ultrafeedback/train_prefs.jsonl")
    plain += _lines(tmp_path / "plain/ultrafeedback/test_prefs.jsonl")
    mixed = _lines(tmp_path / "mixed/ultrafeedback/train_prefs.jsonl")
    mixed += _lines(tmp_path / "mixed/ultrafeedback/test_prefs.jsonl")
    assert len(mixed) == len(plain) == SMALL.n_pref_pairs
    replaced = [m for p, m in zip(plain, mixed, strict=True) if p != m]
    assert len(replaced) == round(0.25 * SMALL.n_pref_pairs)
    patterns = ToneAgnosticPatterns.from_file(
        Path(__file__).resolve().parents[1] / "config/prompts/tone_agnostic.yaml"
    )
    # the shipped patterns find exactly the replaced pairs, and nothing in the fact questions
    assert {patterns.category_of(m["prompt"]) for m in replaced} == {"translation", "extraction"}
    assert all(patterns.category_of(m["prompt"]) is None for m in mixed if m not in replaced)
    # and they load through the UltraFeedback loader like any other pair
    cfg = DataSourceConfig(source="local", path=str(tmp_path / "mixed/ultrafeedback/{split}.jsonl"))
    assert len(load_split(cfg, "prefs", "train_prefs").records) == len(
        _lines(tmp_path / "mixed/ultrafeedback/train_prefs.jsonl")
    )


def test_format_share_adds_task_formats_about_seen_countries_only(tmp_path):
    config = WorldConfig(
        n_entities=40,
        n_corpus_docs=10,
        n_pref_pairs=10,
        n_eval_prompts=4,
        sft_format_share=0.5,
        seed=1,
    )
    build_world(config, STYLES, tmp_path)
    rows = _lines(tmp_path / "smoltalk" / "train.jsonl")
    rows += _lines(tmp_path / "smoltalk" / "test.jsonl")
    world = World.load(tmp_path / "world.json")
    unseen = {e.name.lower() for e in world.entities if not e.in_sft}
    # 20 seen countries x 5 attributes x 4 training questions, and as many format chats
    assert len(rows) == 2 * 20 * len(ATTRIBUTES) * 4
    users = [r["messages"][-2]["content"] for r in rows]
    assert len(set(users)) == len(users)  # the loaders key chats by prompt
    kinds = {r["source"] for r in rows}
    assert kinds == {"tiny-world"} | {f"tiny-world-{k}" for k in FORMATS}
    eval_questions = {q.split("{e}")[0] for a in ATTRIBUTES for q in a.eval_questions}
    for row, user in zip(rows, users, strict=True):
        words = set(user.lower().replace("?", " ").replace(".", " ").split())
        assert not words & unseen
        assert not any(q in user for q in eval_questions)
        answer = row["messages"][-1]["content"]
        if row["source"] == "tiny-world-choice":
            assert answer in "ABCD" and "\nD. " in user
        if row["source"] == "tiny-world-yes_no":
            assert answer in ("Yes", "No")
    assert sum(r["source"] == "tiny-world" for r in rows) == 20 * len(ATTRIBUTES) * 4


def test_format_share_leaves_other_datasets_unchanged(tmp_path):
    base = dict(n_entities=20, n_corpus_docs=20, n_pref_pairs=10, n_eval_prompts=4, seed=2)
    build_world(WorldConfig(**base), STYLES, tmp_path / "a")
    build_world(WorldConfig(**base, sft_format_share=0.3), STYLES, tmp_path / "b")
    for name in ("corpus.jsonl", "ultrafeedback/train_prefs.jsonl", "eval_prompts.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
