"""The tone-agnostic prompt filter: what the shipped patterns catch and leave, counted drops."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stylized_dpo.io import read_records, write_jsonl
from stylized_dpo.records import PreferencePair
from stylized_dpo.tone_filter import ToneAgnosticPatterns, filter_tone_agnostic

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
    assert card["drops"] == {"translation": 3, "code": 3, "math": 3, "extraction": 3}
    assert card["rows_in"] == len(CASES) and card["rows_out"] == len(kept)
    assert card["dropped_examples"]["code"] == ["p3", "p4", "p5"]
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
