"""Precision and recall of the tone-agnostic filter on labelled UltraFeedback-style prompts.

    .venv/bin/python benchmarks/tone_filter_recall.py [--patterns config/prompts/tone_agnostic.yaml]
        [--labels tests/data/tone_agnostic_prompts.jsonl] [--show dev]

The labelled set (tests/data/tone_agnostic_prompts.md describes it) is split in two halves fixed
before the patterns were tuned: `dev`, on which they were tuned, and `heldout`, which measures
them. A prompt counts as found when any category matches it (the filter drops it either way);
per labelled category the recall, per assigned category the precision, and per source both.
`--show dev` lists the misses and false alarms of one split (tune on dev only).
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from stylized_dpo.tone_filter import LabelledPrompt, ToneAgnosticPatterns, score_patterns

ROOT = Path(__file__).resolve().parents[1]
PATTERNS = ROOT / "config" / "prompts" / "tone_agnostic.yaml"
LABELS = ROOT / "tests" / "data" / "tone_agnostic_prompts.jsonl"
SPLITS = ("dev", "heldout", "blind1", "blind2", "blind3", "blind4", "blind5")


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def labelled(rows: list[dict]) -> list[LabelledPrompt]:
    return [
        LabelledPrompt(r["prompt"], None if r["category"] == "none" else r["category"], r["source"])
        for r in rows
    ]


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(name: str, patterns: ToneAgnosticPatterns, rows: list[dict]) -> None:
    s = score_patterns(patterns, labelled(rows))
    print(f"\n## {name}: {s['n']} prompts ({s['tp'] + s['fn']} tone-agnostic)")
    print(f"precision {fmt(s['precision'])}  recall {fmt(s['recall'])}  ", end="")
    print(f"(tp {s['tp']}, fp {s['fp']}, fn {s['fn']}, tn {s['tn']})")
    print("| labelled category | n | found | recall | under its own category |")
    print("|---|---:|---:|---:|---:|")
    for cat, c in s["per_category"].items():
        print(f"| {cat} | {c['n']} | {c['flagged']} | {fmt(c['recall'])} | {c['same_category']} |")
    print("| assigned category | flagged | tone-agnostic | precision |")
    print("|---|---:|---:|---:|")
    for cat, a in s["per_assigned_category"].items():
        print(f"| {cat} | {a['flagged']} | {a['tone_agnostic']} | {fmt(a['precision'])} |")
    by_source = defaultdict(list)
    for row in rows:
        by_source[row["source"]].append(row)
    print("| source | n | precision | recall |")
    print("|---|---:|---:|---:|")
    for source, group in sorted(by_source.items()):
        g = score_patterns(patterns, labelled(group))
        print(f"| {source} | {g['n']} | {fmt(g['precision'])} | {fmt(g['recall'])} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patterns", type=Path, default=PATTERNS)
    parser.add_argument("--labels", type=Path, default=LABELS)
    parser.add_argument("--show", choices=SPLITS, help="list one split's errors")
    args = parser.parse_args()
    patterns = ToneAgnosticPatterns.from_file(args.patterns)
    rows = load(args.labels)
    for split in SPLITS:
        if any(r["split"] == split for r in rows):
            report(split, patterns, [r for r in rows if r["split"] == split])
    report("all", patterns, rows)
    if args.show:
        print(f"\n## errors on {args.show}")
        for r in rows:
            if r["split"] != args.show:
                continue
            found = patterns.category_of(r["prompt"])
            truth = None if r["category"] == "none" else r["category"]
            if (found is None) != (truth is None):
                kind = "missed" if found is None else f"false alarm ({found})"
                print(f"- {kind} [{r['category']}, {r['source']}] {r['prompt']!r}")


if __name__ == "__main__":
    main()
