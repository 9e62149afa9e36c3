"""The tone-agnostic prompt filter: what the shipped patterns catch and leave, counted drops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stylized_dpo.io import read_records, write_jsonl
from stylized_dpo.records import PreferencePair
from stylized_dpo.tone_filter import (
    LabelledPrompt,
    ToneAgnosticPatterns,
    filter_tone_agnostic,
    score_patterns,
)

PATTERNS = Path(__file__).resolve().parents[1] / "config" / "prompts" / "tone_agnostic.yaml"

# Prompts in the style of UltraFeedback's, with the category a reader would give them.
CASES = [
    ("Translate the following sentence into German: 'The cat sleeps.'", "translation"),
    ("A text is given in Bengali. Translate it from the Bengali language to Hindi.", "translation"),
    ("How do you say 'good morning' from English to Spanish?", "translation"),
    ("Write a Python function that reverses a linked list.", "code"),
    ("Why does this fail?\n```js\nconst x = y.map(z)\n```", "code"),
    ("def add(a, b): return a - b  # what is wrong here?", "code"),
    ("Solve the equation 3x + 5 = 20.", "math"),
    ("Calculate the area of a circle with radius 4.", "math"),
    ("12 * (7 + 5) / 3 =", "math"),
    ("Classify the following tweets as positive or negative.", "extraction"),
    ("Convert the following data into JSON: name Ann, age 31.", "extraction"),
    ("Is Paris in France? Answer with yes or no.", "extraction"),
    ("What is the function of the liver?", None),
    ("Give me tips to stay motivated while learning a language.", None),
    ("Write a short poem about the sea.", None),
    ("How should I apologise to a friend I hurt?", None),
    ("Explain how vaccines train the immune system.", None),
    ("Can you recommend a good book on Roman history?", None),
    # the misses the issue found on real UltraFeedback prompts, in its own words
    (
        "In this task, you are given a sentence in the Bengali language. Your task is to "
        "convert it into the English language.",
        "translation",
    ),
    ('How is "Thank you very much" said in Russian?', "translation"),
    (
        "In this task, you are given a review. You must classify it as positive or negative.",
        "extraction",
    ),
    (
        "Premise: A dog runs.\nHypothesis: An animal moves.\nOptions:\n- yes\n- no",
        "task",
    ),
    ("Write an exporter in go", "code"),
    ("find the kth largest element", "code"),
    ("write me a chrome extension", "code"),
    # "problem" had no word boundary: "solve problems" was math
    ("How can I solve problems with my roommate without a fight?", None),
]


@pytest.mark.parametrize(("prompt", "category"), CASES)
def test_shipped_patterns_categorise_prompts(prompt, category):
    assert ToneAgnosticPatterns.from_file(PATTERNS).category_of(prompt) == category


def test_filter_counts_every_drop_and_keeps_the_rest(tmp_path):
    pairs = [
        PreferencePair(f"p{i}", prompt, "a good answer", "a bad answer")
        for i, (prompt, _) in enumerate(CASES)
    ]
    write_jsonl(tmp_path / "in.jsonl", pairs)
    card = filter_tone_agnostic(
        tmp_path / "in.jsonl", PATTERNS, tmp_path / "out.jsonl", tmp_path / "card.json"
    )
    kept = read_records(tmp_path / "out.jsonl", PreferencePair)
    assert [p.prompt_id for p in kept] == [f"p{i}" for i, (_, c) in enumerate(CASES) if c is None]
    assert card["drops"] == {"translation": 5, "code": 6, "math": 3, "extraction": 4, "task": 1}
    assert card["rows_in"] == len(CASES) and card["rows_out"] == len(kept)
    assert card["dropped_examples"]["code"] == ["p3", "p4", "p5", "p22", "p23"]  # the first 5
    assert json.loads((tmp_path / "card.json").read_text()) == card


def test_bad_patterns_file_names_file_and_entry(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("code:\n  - '(unclosed'\n")
    with pytest.raises(ValueError, match=r"bad.yaml: code\[0\] is not a valid regex"):
        ToneAgnosticPatterns.from_file(bad)
    bad.write_text("code: 'not a list'\n")
    with pytest.raises(ValueError, match="must be a list of strings"):
        ToneAgnosticPatterns.from_file(bad)


def test_filter_refuses_to_drop_everything(tmp_path):
    write_jsonl(
        tmp_path / "in.jsonl", [PreferencePair("p0", "Translate 'hi' into French.", "a", "b")]
    )
    with pytest.raises(ValueError, match="nothing to train on"):
        filter_tone_agnostic(
            tmp_path / "in.jsonl", PATTERNS, tmp_path / "o.jsonl", tmp_path / "c.json"
        )


# --- precision and recall on labelled UltraFeedback-style prompts -----------------------------

LABELS = Path(__file__).resolve().parent / "data" / "tone_agnostic_prompts.jsonl"


def labelled(held_out: bool) -> list[LabelledPrompt]:
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    return [
        LabelledPrompt(r["prompt"], None if r["category"] == "none" else r["category"], r["source"])
        for r in rows
        if (r["split"] == HELD_OUT) == held_out
    ]


HELD_OUT = "blind5"  # written after the patterns were last changed, never tuned on


def test_labelled_set_is_what_its_card_says():
    rows = [json.loads(line) for line in LABELS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 1024 and len({r["prompt"] for r in rows}) == 1024
    assert {r["category"] for r in rows} == {
        "translation",
        "code",
        "math",
        "extraction",
        "task",
        "none",
    }
    assert {r["split"] for r in rows} == {"dev", "heldout", *(f"blind{i}" for i in range(1, 6))}


def test_target_recall_and_precision_on_the_held_out_batch():
    scores = score_patterns(ToneAgnosticPatterns.from_file(PATTERNS), labelled(held_out=True))
    assert scores["n"] == 106
    assert scores["recall"] >= 0.8 and scores["precision"] >= 0.9, scores


def test_patterns_keep_what_they_were_tuned_on():
    """A guard for edits of the patterns file, not a measure of generalisation (that is the
    held-out batch): every batch but the last was tuned on."""
    scores = score_patterns(ToneAgnosticPatterns.from_file(PATTERNS), labelled(held_out=False))
    assert scores["recall"] >= 0.97 and scores["precision"] >= 0.97, scores
    for category, c in scores["per_category"].items():
        assert c["recall"] >= 0.95, (category, c)


def test_score_patterns_counts_by_hand(tmp_path):
    patterns_file = tmp_path / "p.yaml"
    patterns_file.write_text("translation: ['translate']\ncode: ['python']\n")
    items = [
        LabelledPrompt("translate this", "translation"),  # tp
        LabelledPrompt("python please", "code"),  # tp
        LabelledPrompt("translate my python code", "code"),  # tp, under translation
        LabelledPrompt("2 + 2", "math"),  # fn
        LabelledPrompt("a python poem", None),  # fp
        LabelledPrompt("hello", None),  # tn
    ]
    s = score_patterns(ToneAgnosticPatterns.from_file(patterns_file), items)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (3, 1, 1, 1)
    assert (s["precision"], s["recall"]) == (0.75, 0.75)
    assert s["per_category"]["code"] == {"n": 2, "flagged": 2, "same_category": 1, "recall": 1.0}
    assert s["per_category"]["math"]["recall"] == 0.0
    assert s["per_assigned_category"]["code"] == {
        "flagged": 2,
        "tone_agnostic": 1,
        "precision": 0.5,
    }
