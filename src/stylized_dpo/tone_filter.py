"""Dropping tone-agnostic prompts from a preference set (the paper's limitation 3).

Translation, code, math, extraction and FLAN-style task prompts leave an answer little room for
tone, so their pairs add noise to a study of style. The patterns live in a YAML file (category ->
list of regular expressions); a pair is dropped when its prompt matches any of them, and counted
under the first matching category. Nothing is dropped silently: the card lists every count and
the first few dropped prompt ids per category. `score_patterns` measures a patterns file on
labelled prompts (tests/data/tone_agnostic_prompts.jsonl, benchmarks/tone_filter_recall.py).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import yaml

from stylized_dpo.hashing import sha256_file
from stylized_dpo.io import read_records, write_json, write_jsonl
from stylized_dpo.records import PreferencePair

EXAMPLES_PER_CATEGORY = 5


@dataclass(frozen=True)
class ToneAgnosticPatterns:
    """Compiled patterns per category, in the file's order."""

    categories: dict[str, list[re.Pattern[str]]]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> ToneAgnosticPatterns:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f)
        if not isinstance(raw, dict) or not raw:
            raise ValueError(f"{path}: expected a mapping of category -> list of patterns")
        categories = {}
        for category, patterns in raw.items():
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ValueError(f"{path}: category {category!r} must be a list of strings")
            compiled = []
            for i, pattern in enumerate(patterns):
                try:
                    compiled.append(re.compile(pattern, re.IGNORECASE | re.MULTILINE))
                except re.error as err:
                    where = f"{path}: {category}[{i}]"
                    raise ValueError(f"{where} is not a valid regex: {err}") from err
            categories[str(category)] = compiled
        return cls(categories)

    def category_of(self, prompt: str) -> str | None:
        """The first category with a pattern found in `prompt`, or None (tone matters)."""
        for category, patterns in self.categories.items():
            if any(p.search(prompt) for p in patterns):
                return category
        return None


@dataclass(frozen=True)
class LabelledPrompt:
    """A prompt with the tone-agnostic category a reader gives it (None: tone matters)."""

    prompt: str
    """The user's message."""
    category: str | None
    """The category it belongs to (translation, code, ...), None where tone matters."""
    source: str = ""
    """Where prompts like it come from (UltraFeedback's sources: flan_v2_niv2, sharegpt, ...)."""


def _rates(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
    }


def score_patterns(patterns: ToneAgnosticPatterns, items: list[LabelledPrompt]) -> dict[str, Any]:
    """Precision and recall of "tone-agnostic or not" on labelled prompts, and per category:
    the recall of each labelled category (flagged under any category; `same_category` counts
    those flagged under their own) and the precision of each category the patterns assign."""
    overall: Counter[str] = Counter()
    labelled: dict[str, Counter[str]] = {}
    assigned: dict[str, Counter[str]] = {}
    for item in items:
        found = patterns.category_of(item.prompt)
        truth = item.category is not None
        overall["tp" if found and truth else "fp" if found else "fn" if truth else "tn"] += 1
        if item.category is not None:
            c = labelled.setdefault(item.category, Counter())
            c["n"] += 1
            c["flagged"] += found is not None
            c["same_category"] += found == item.category
        if found is not None:
            a = assigned.setdefault(found, Counter())
            a["flagged"] += 1
            a["tone_agnostic"] += truth
    return {
        "n": len(items),
        **{k: overall[k] for k in ("tp", "fp", "fn", "tn")},
        **_rates(overall["tp"], overall["fp"], overall["fn"]),
        "per_category": {
            cat: {**c, "recall": round(c["flagged"] / c["n"], 4)}
            for cat, c in sorted(labelled.items())
        },
        "per_assigned_category": {
            cat: {**a, "precision": round(a["tone_agnostic"] / a["flagged"], 4)}
            for cat, a in sorted(assigned.items())
        },
    }


def filter_tone_agnostic(
    pairs_path: str | os.PathLike[str],
    patterns_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    card_path: str | os.PathLike[str],
) -> dict[str, Any]:
    """Write the pairs of `pairs_path` whose prompt is not tone-agnostic, and a card of drops."""
    patterns = ToneAgnosticPatterns.from_file(patterns_path)
    pairs = read_records(pairs_path, PreferencePair)
    kept, drops, examples = [], Counter(), {}
    for pair in pairs:
        category = patterns.category_of(pair.prompt)
        if category is None:
            kept.append(pair)
            continue
        drops[category] += 1
        examples.setdefault(category, [])
        if len(examples[category]) < EXAMPLES_PER_CATEGORY:
            examples[category].append(pair.prompt_id)
    if not kept:
        raise ValueError(f"{pairs_path}: every prompt matched {patterns_path}; nothing to train on")
    write_jsonl(out_path, kept)
    card = {
        "source": str(pairs_path),
        "source_sha256": sha256_file(pairs_path),
        "patterns": str(patterns_path),
        "patterns_sha256": sha256_file(patterns_path),
        "rows_in": len(pairs),
        "rows_out": len(kept),
        "drops": {category: drops[category] for category in patterns.categories},
        "dropped_examples": examples,
    }
    write_json(card_path, card)
    print(f"{pairs_path}: kept {len(kept)} of {len(pairs)}; dropped {dict(drops)}")
    return card
