"""The stylometric table of the preference sets: one row per dataset and split.

Measures the chosen answers (and, for reference, the rejected ones) of the original set and of
each style set with `style_measures.measure`, so a reader sees how far each rewrite moved the
style (praise, exclamations, second person, hedges, sentence length) and the length.
"""

from __future__ import annotations

import csv
from pathlib import Path

from stylized_dpo.io import atomic_path, read_records
from stylized_dpo.records import PREFS_STYLE_KEYS, PreferencePair
from stylized_dpo.style_measures import MEASURES, measure


def style_rows(files: dict[tuple[str, str], str | Path]) -> list[dict[str, object]]:
    """files: (dataset, split) -> PreferencePair JSONL. One row per dataset, split and side."""
    rows: list[dict[str, object]] = []
    for (dataset, split), path in files.items():
        pairs = read_records(path, PreferencePair)
        for side in ("chosen", "rejected"):
            values = measure([getattr(p, side) for p in pairs])
            rows.append(
                {
                    "dataset": dataset,
                    "split": split,
                    "answers": side,
                    "n": len(pairs),
                    **{k: round(values[k], 4) for k in MEASURES},
                }
            )
    return rows


def write_style_table(files: dict[tuple[str, str], str | Path], out_csv: str | Path) -> None:
    rows = style_rows(files)
    with atomic_path(out_csv) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=[*PREFS_STYLE_KEYS, "n", *MEASURES])
        writer.writeheader()
        writer.writerows(rows)
