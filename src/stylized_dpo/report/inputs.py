"""Readers for the result files the report is built from, with errors naming file, line, field.

- `results/train/<run>/metrics.jsonl`: one JSON object per logged step (`step`, `split`, `loss`;
  DPO runs add `records.DPO_METRIC_KEYS`).
- `results/judge/win_rates.csv`: one row per (model, baseline) pair.
- `results/judge/summary.csv`: one row per (model, criterion).
- `results/helm/summary.csv`: one row per (model, family, scenario); an empty `value` comes with
  a `note` saying why.
- `results/style/generations.csv`, `results/data/prefs/style_measures.csv`: style measures per
  model, and per (dataset, split, answers) of the preference sets.
- `results/sycophancy/summary.csv`: one row per model.

Every CSV goes through one reader (`read_csv_table`): a frame of strings and floats with each
row's file line, keys unique.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stylized_dpo.io import DataError, iter_json_lines
from stylized_dpo.records import (
    HELM_FAMILIES,
    HELM_INTERVAL_COLUMNS,
    HELM_SUMMARY_COLUMNS,
    JUDGE_SUMMARY_COLUMNS,
    PREFS_STYLE_KEYS,
    SYCOPHANCY_SUMMARY_COLUMNS,
    WIN_RATE_COLUMNS,
    WIN_RATE_LC_COLUMNS,
)
from stylized_dpo.style_measures import MEASURES

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class MetricsRow:
    """One logged step of a training run."""

    step: int
    split: str
    """`train` or `eval`."""
    loss: float
    reward_accuracy: float | None
    """DPO only: share of pairs whose chosen reward exceeds the rejected one."""
    line: int
    """Line of the row in its file (for messages)."""


def _number(path: PathLike, line: int | None, field: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DataError(path, line, field, f"expected a number, got {value!r}")
    return float(value)


def read_train_metrics(path: PathLike, *, dpo: bool) -> list[MetricsRow]:
    """Read a run's metrics.jsonl. DPO eval rows must carry `reward_accuracy`."""
    rows = []
    for line, obj in iter_json_lines(path):
        if not isinstance(obj, dict):
            raise DataError(path, line, None, f"expected a JSON object, got {type(obj).__name__}")
        for field in ("step", "split", "loss"):
            if field not in obj:
                raise DataError(path, line, field, "is missing")
        step = obj["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise DataError(path, line, "step", f"expected a non-negative integer, got {step!r}")
        split = obj["split"]
        if split not in ("train", "eval"):
            raise DataError(path, line, "split", f"expected 'train' or 'eval', got {split!r}")
        loss = _number(path, line, "loss", obj["loss"])
        accuracy = None
        if dpo and split == "eval":
            if "reward_accuracy" not in obj:
                raise DataError(path, line, "reward_accuracy", "is missing from a DPO eval row")
            accuracy = _number(path, line, "reward_accuracy", obj["reward_accuracy"])
        rows.append(MetricsRow(step, split, loss, accuracy, line))
    return rows


def eval_rows(rows: Sequence[MetricsRow]) -> list[MetricsRow]:
    """Evaluation rows sorted by step; for a step logged twice (a resumed run) the later line."""
    by_step: dict[int, MetricsRow] = {}
    for row in rows:
        if row.split == "eval":
            by_step[row.step] = row
    return [by_step[s] for s in sorted(by_step)]


def _read_csv(path: PathLike, required: Sequence[str]) -> pd.DataFrame:
    """Read a CSV as strings (empty cells stay ""), checking that the required columns exist."""
    if not Path(path).exists():
        raise DataError(path, None, None, "file not found")
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise DataError(path, 1, missing[0], "column is missing from the header")
    return frame


def _csv_float(path: PathLike, line: int, field: str, text: str, *, optional: bool) -> float:
    text = text.strip()
    if not text:
        if optional:
            return math.nan
        raise DataError(path, line, field, "is empty")
    try:
        value = float(text)
    except ValueError:
        raise DataError(path, line, field, f"not a number: {text!r}") from None
    if math.isnan(value) and not optional:
        raise DataError(path, line, field, "is NaN")
    return value


def read_csv_table(
    path: PathLike,
    columns: Sequence[str],
    *,
    keys: Sequence[str],
    texts: Sequence[str] = (),
    required: Sequence[str] = (),
    absent_ok: Sequence[str] = (),
    choices: Mapping[str, Sequence[str]] | None = None,
    nonempty_key: bool = False,
    repeat_field: str | None = None,
    key_text: Callable[[tuple[str, ...]], str] = str,
) -> pd.DataFrame:
    """A summary CSV as a frame: `line` (its file line), then `columns`.

    Keys and `texts` are stripped strings, every other column a float (NaN where empty, unless
    it is `required`). `absent_ok` columns may be missing from the header (files of older
    writers) and read as empty. A key value outside `choices`, an empty first key (with
    `nonempty_key`), or a repeated key fails with file, line and field; a repeated key names
    `repeat_field` (default: the last key) and describes the key with `key_text`.
    """
    frame = _read_csv(path, [c for c in columns if c not in absent_ok])
    out = []
    seen: dict[tuple[str, ...], int] = {}
    for i, row in frame.iterrows():
        line = int(i) + 2  # header is line 1
        key = tuple(row[c].strip() for c in keys)
        for c, allowed in (choices or {}).items():
            value = key[list(keys).index(c)]
            if value not in allowed:
                raise DataError(path, line, c, f"expected one of {allowed}, got {value!r}")
        if nonempty_key and not key[0]:
            raise DataError(path, line, keys[0], "is empty")
        if key in seen:
            where = repeat_field or keys[-1]
            raise DataError(path, line, where, f"{key_text(key)} repeats line {seen[key]}")
        seen[key] = line
        record: dict[str, object] = {"line": line, **dict(zip(keys, key, strict=True))}
        for c in columns:
            if c in keys:
                continue
            text = row.get(c, "")
            if c in texts:
                record[c] = text.strip()
            else:
                record[c] = _csv_float(path, line, c, text, optional=c not in required)
        out.append(record)
    return pd.DataFrame(out, columns=["line", *columns])


def read_win_rates(path: PathLike) -> pd.DataFrame:
    """win_rates.csv as numbers; one row per (model, baseline), with its file line in `line`."""
    frame = read_csv_table(
        path,
        [*WIN_RATE_COLUMNS, *WIN_RATE_LC_COLUMNS],
        keys=("model", "baseline"),
        texts=("backend",),
        required=("n", "wins", "ties", "losses"),
        # n_failed (prompts left out because a reward could not be computed) and the
        # length-controlled columns are absent from files of older writers.
        absent_ok=("n_failed", *WIN_RATE_LC_COLUMNS),
        nonempty_key=True,
        repeat_field="model",
        key_text=lambda key: f"{key[0]} vs {key[1]}",
    )
    frame["n_failed"] = frame["n_failed"].fillna(0.0)
    return frame


def read_judge_summary(path: PathLike) -> pd.DataFrame:
    """judge/summary.csv as numbers; one row per (model, criterion)."""
    return read_csv_table(
        path,
        JUDGE_SUMMARY_COLUMNS,
        keys=("model", "criterion"),
        required=("n", "n_failed"),
    )


def read_helm_summary(path: PathLike) -> pd.DataFrame:
    """helm/summary.csv with `value` as float (NaN where empty) and the row's file line."""
    return read_csv_table(
        path,
        [*HELM_SUMMARY_COLUMNS, *HELM_INTERVAL_COLUMNS],
        keys=("model", "family", "scenario"),
        texts=("metric", "note"),
        absent_ok=HELM_INTERVAL_COLUMNS,  # absent from summaries written before the intervals
        choices={"family": HELM_FAMILIES},
    )


def read_style_generations(path: PathLike) -> pd.DataFrame:
    """results/style/generations.csv: one row per model, measures as floats."""
    return read_csv_table(path, ["model", "n", *MEASURES], keys=("model",), nonempty_key=True)


def read_prefs_style(path: PathLike) -> pd.DataFrame:
    """results/data/prefs/style_measures.csv: one row per (dataset, split, answers)."""
    return read_csv_table(
        path, [*PREFS_STYLE_KEYS, "n", *MEASURES], keys=PREFS_STYLE_KEYS, nonempty_key=True
    )


def read_sycophancy_summary(path: PathLike) -> pd.DataFrame:
    """results/sycophancy/summary.csv: one row per model, numbers as floats."""
    return read_csv_table(path, SYCOPHANCY_SUMMARY_COLUMNS, keys=("model",), nonempty_key=True)
