"""Readers for the result files the report is built from, with errors naming file, line, field.

- `results/train/<run>/metrics.jsonl`: one JSON object per logged step (`step`, `split`, `loss`;
  DPO runs add `rewards_chosen`, `rewards_rejected`, `reward_margin`, `reward_accuracy`).
- `results/judge/win_rates.csv`: one row per (model, baseline) pair.
- `results/judge/summary.csv`: one row per (model, criterion).
- `results/helm/summary.csv`: one row per (model, family, scenario); an empty `value` comes with
  a `note` saying why.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from stylized_dpo.io import DataError, iter_json_lines
from stylized_dpo.records import (
    HELM_FAMILIES,
    HELM_INTERVAL_COLUMNS,
    HELM_SUMMARY_COLUMNS,
    JUDGE_SUMMARY_COLUMNS,
    WIN_RATE_COLUMNS,
    WIN_RATE_LC_COLUMNS,
)

PathLike = str | os.PathLike[str]

DPO_METRICS = ("rewards_chosen", "rewards_rejected", "reward_margin", "reward_accuracy")


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


def read_win_rates(path: PathLike) -> pd.DataFrame:
    """win_rates.csv as numbers; one row per (model, baseline), with its file line in `line`."""
    # n_failed is optional: prompts left out because a reward could not be computed.
    frame = _read_csv(path, [c for c in WIN_RATE_COLUMNS if c != "n_failed"])
    out = []
    seen: dict[tuple[str, str], int] = {}
    for i, row in frame.iterrows():
        line = int(i) + 2  # header is line 1
        key = (row["model"].strip(), row["baseline"].strip())
        if not key[0]:
            raise DataError(path, line, "model", "is empty")
        if key in seen:
            raise DataError(path, line, "model", f"{key[0]} vs {key[1]} repeats line {seen[key]}")
        seen[key] = line
        record: dict[str, object] = {"model": key[0], "baseline": key[1], "line": line}
        for field in ("n", "wins", "ties", "losses"):
            record[field] = _csv_float(path, line, field, row[field], optional=False)
        for field in ("win_rate", "ci_low", "ci_high", "mean_len_model", "mean_len_baseline"):
            record[field] = _csv_float(path, line, field, row[field], optional=True)
        record["backend"] = row["backend"].strip()
        n_failed = row.get("n_failed", "")
        record["n_failed"] = _csv_float(path, line, "n_failed", n_failed, optional=True)
        if math.isnan(record["n_failed"]):
            record["n_failed"] = 0.0
        for field in WIN_RATE_LC_COLUMNS:  # absent from files written before length control
            record[field] = _csv_float(path, line, field, row.get(field, ""), optional=True)
        out.append(record)
    return pd.DataFrame(out, columns=["line", *WIN_RATE_COLUMNS, *WIN_RATE_LC_COLUMNS])


def read_judge_summary(path: PathLike) -> pd.DataFrame:
    """judge/summary.csv as numbers; one row per (model, criterion)."""
    frame = _read_csv(path, JUDGE_SUMMARY_COLUMNS)
    out = []
    seen: dict[tuple[str, str], int] = {}
    for i, row in frame.iterrows():
        line = int(i) + 2
        key = (row["model"].strip(), row["criterion"].strip())
        if key in seen:
            raise DataError(path, line, "criterion", f"{key} repeats line {seen[key]}")
        seen[key] = line
        record: dict[str, object] = {"model": key[0], "criterion": key[1], "line": line}
        for field in ("mean", "std", "ci_low", "ci_high"):
            record[field] = _csv_float(path, line, field, row[field], optional=True)
        for field in ("n", "n_failed"):
            record[field] = _csv_float(path, line, field, row[field], optional=False)
        out.append(record)
    return pd.DataFrame(out, columns=["line", *JUDGE_SUMMARY_COLUMNS])


def read_helm_summary(path: PathLike) -> pd.DataFrame:
    """helm/summary.csv with `value` as float (NaN where empty) and the row's file line."""
    frame = _read_csv(path, HELM_SUMMARY_COLUMNS)
    out = []
    seen: dict[tuple[str, str, str], int] = {}
    for i, row in frame.iterrows():
        line = int(i) + 2
        family = row["family"].strip()
        if family not in HELM_FAMILIES:
            raise DataError(
                path, line, "family", f"expected one of {HELM_FAMILIES}, got {family!r}"
            )
        key = (row["model"].strip(), family, row["scenario"].strip())
        if key in seen:
            raise DataError(path, line, "scenario", f"{key} repeats line {seen[key]}")
        seen[key] = line
        out.append(
            {
                "line": line,
                "model": key[0],
                "family": family,
                "scenario": key[2],
                "metric": row["metric"].strip(),
                "value": _csv_float(path, line, "value", row["value"], optional=True),
                "note": row["note"].strip(),
                **{  # absent from summaries written before the intervals
                    c: _csv_float(path, line, c, row.get(c, ""), optional=True)
                    for c in HELM_INTERVAL_COLUMNS
                },
            }
        )
    return pd.DataFrame(out, columns=["line", *HELM_SUMMARY_COLUMNS, *HELM_INTERVAL_COLUMNS])
