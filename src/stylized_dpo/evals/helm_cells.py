"""HELM's per-instance stats read back into cells, and HELM's values recomputed from them.

A cell is one (model, family, scenario) value of `summary.csv` with the per-instance data behind
it (`CellData`); `read_suite` reads every model's cells of a summarised suite. Recomputed as
HELM does: a scenario's main metric averaged over instances (robustness / fairness: the worst
over an instance's perturbations), `ece_10_bin` for calibration, MMLU's subjects merged as a
mean of their values, and the mean win rate over models (`mean_win_rates`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stylized_dpo.evals.helm_summary import GROUP_TO_SCENARIO, find_runs

INSTANCE_FAMILIES = ("accuracy", "robustness", "fairness", "calibration")
LOWER_IS_BETTER = {"accuracy": False, "robustness": False, "fairness": False, "calibration": True}


@dataclass(frozen=True)
class CellData:
    """The per-instance data behind one HELM cell (model, family, scenario).

    `values[i, t]`: instance i's value in train trial t (accuracy, robustness, fairness); for
    calibration `probs` and `correct` of the same shape. Rows follow `instance_ids`.
    `blocks`: sizes of consecutive groups of rows computed separately and then averaged, as
    HELM merges MMLU's subject runs into one column (mean of the subjects' values); empty: one.
    """

    family: str
    metric: str
    instance_ids: tuple[str, ...]
    values: np.ndarray
    probs: np.ndarray | None = None
    correct: np.ndarray | None = None
    blocks: tuple[int, ...] = ()

    def block_bounds(self) -> list[tuple[int, int]]:
        sizes = self.blocks or (len(self.instance_ids),)
        ends = np.cumsum(sizes)
        return [(int(e - n), int(e)) for n, e in zip(sizes, ends, strict=True)]

    def point(self) -> float:
        return cell_value(self, np.arange(len(self.instance_ids)))


def cell_value(cell: CellData, rows: np.ndarray) -> float:
    """The cell's value on the instances `rows` (with repeats: a bootstrap resample)."""
    return float(cell_values(cell, np.asarray(rows)[None])[0])


def cell_values(cell: CellData, picks: np.ndarray) -> np.ndarray:
    """The cell's value on each row of instance indices `picks` (resamples x instances; with
    blocks, columns [start, end) of a block hold indices drawn from that block)."""
    per_block = []
    for start, end in cell.block_bounds():
        block = picks[:, start:end]
        if cell.family == "calibration":
            assert cell.probs is not None and cell.correct is not None
            per_trial = [
                ece_equal_mass_batch(cell.probs[block, t], cell.correct[block, t])
                for t in range(cell.probs.shape[1])
            ]
            per_block.append(np.mean(per_trial, axis=0))
        else:
            per_block.append(cell.values.mean(axis=1)[block].mean(axis=1))
    return np.mean(per_block, axis=0)


def ece_equal_mass_batch(probs: np.ndarray, correct: np.ndarray, num_bins: int = 10) -> np.ndarray:
    """`helm_summary.ece_equal_mass` of every row of `probs` / `correct` (rows x points),
    vectorised.

    Same bins: sorted probabilities cut into near-equal groups, boundaries halfway between
    neighbouring groups plus 1.0, a point in the bin of the first boundary at or above it
    (bisect_left = the number of boundaries below it); ECE = sum over bins of
    |sum(prob - correct)| / n.
    """
    p = np.asarray(probs, dtype=float)
    c = np.asarray(correct, dtype=float)
    rows, n = p.shape
    block = max(1, 4_000_000 // max(n * min(num_bins, n), 1))  # caps the rows x n x bins mask
    if rows > block:
        return np.concatenate(
            [
                ece_equal_mass_batch(p[i : i + block], c[i : i + block], num_bins)
                for i in range(0, rows, block)
            ]
        )
    k = min(num_bins, n)
    size, extra = divmod(n, k)
    ends = np.cumsum([size + (1 if i < extra else 0) for i in range(k)])
    ordered = np.sort(p, axis=1)
    inner = (ordered[:, ends[:-1] - 1] + ordered[:, ends[:-1]]) / 2
    bounds = np.concatenate([inner, np.ones((rows, 1))], axis=1)
    bins = (bounds[:, None, :] < p[:, :, None]).sum(axis=2)  # rows x points, 0..k
    index = (np.arange(rows)[:, None] * (k + 1) + bins).ravel()
    sums = np.bincount(index, weights=(p - c).ravel(), minlength=rows * (k + 1))
    return np.abs(sums.reshape(rows, k + 1)).sum(axis=1) / n


def _stat(item: dict[str, Any], name: str, split: str) -> float | None:
    for stat in item["stats"]:
        n = stat["name"]
        if n["name"] == name and n.get("split") == split and stat.get("count", 0) > 0:
            return stat["sum"] / stat["count"]
    return None


def run_group(run_dir: Path) -> str:
    groups = json.loads((run_dir / "run_spec.json").read_text(encoding="utf-8")).get("groups", [])
    known = [g for g in groups if g in GROUP_TO_SCENARIO]
    if len(known) != 1:
        raise ValueError(f"{run_dir}/run_spec.json: expected one core scenario group, got {groups}")
    return known[0]


def main_metric(schema: dict[str, Any], group: str) -> tuple[str, str]:
    """(main_name, main_split) of a run group in HELM's schema."""
    for g in schema.get("run_groups", []):
        if g.get("name") == group:
            env = g.get("environment") or {}
            if "main_name" in env and "main_split" in env:
                return env["main_name"], env["main_split"]
    raise ValueError(f"HELM schema has no main metric for run group {group!r}")


def read_cells(run_dir: str | Path, schema: dict[str, Any]) -> dict[str, CellData]:
    """family -> CellData of one HELM run folder (one model, one scenario)."""
    run = Path(run_dir)
    name, split = main_metric(schema, run_group(run))
    items = json.loads((run / "per_instance_stats.json").read_text(encoding="utf-8"))
    original: dict[tuple[str, int], dict[str, Any]] = {}
    perturbed: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for item in items:
        key = (item["instance_id"], int(item.get("train_trial_index", 0)))
        if item.get("perturbation"):
            perturbed.setdefault(key, []).append(item)
        else:
            original[key] = item
    ids = sorted({i for i, _ in original})
    trials = sorted({t for _, t in original})
    shape = (len(ids), len(trials))
    arrays = {f: np.full(shape, math.nan) for f in ("accuracy", "robustness", "fairness")}
    probs, correct = np.full(shape, math.nan), np.full(shape, math.nan)
    for i, instance in enumerate(ids):
        for t, trial in enumerate(trials):
            item = original.get((instance, trial))
            if item is None:
                continue
            value = _stat(item, name, split)
            if value is None:
                continue
            arrays["accuracy"][i, t] = value
            for family in ("robustness", "fairness"):
                variants = [
                    _stat(p, name, split)
                    for p in perturbed.get((instance, trial), [])
                    if p["perturbation"].get(family)
                ]
                worst = [value, *(v for v in variants if v is not None)]
                arrays[family][i, t] = min(worst)
            p, c = _stat(item, "max_prob", split), _stat(item, "exact_match", split)
            if p is not None and c is not None:
                probs[i, t], correct[i, t] = p, c
    cells = {
        family: CellData(family, name, tuple(ids), values)
        for family, values in arrays.items()
        if not np.isnan(values).any()
    }
    if ids and not np.isnan(probs).any():
        cells["calibration"] = CellData(
            "calibration", "ece_10_bin", tuple(ids), probs, probs=probs, correct=correct
        )
    return cells


def mean_win_rates(values: np.ndarray, lower_is_better: bool) -> np.ndarray:
    """HELM's mean win rate of each model (`compute_aggregate_row_win_rates`): per column,
    (models beaten + ties / 2) / (models - 1) among the models with a value there (columns with
    fewer than 2 skipped), then the mean over a model's columns.

    `values`: models x columns, or resamples x models x columns (NaN = no value; the NaN pattern
    must be the same in every resample). Returns models, or resamples x models (NaN: a model
    with no comparable column).
    """
    v = np.asarray(values, dtype=float)
    batch = v[None] if v.ndim == 2 else v
    present = ~np.isnan(batch[0])  # models x columns
    count = present.sum(axis=0)
    usable = count >= 2
    a, b = batch[:, :, None, :], batch[:, None, :, :]  # resample, model, other, column
    beaten = (a < b) if lower_is_better else (a > b)
    ties = a == b
    both = present[:, None, :] & present[None, :, :]
    wins = (beaten & both).sum(axis=2) + ((ties & both).sum(axis=2) - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        per_column = np.where(present & usable, wins / (count - 1), np.nan)
        n_columns = (present & usable).sum(axis=1)
        rates = np.where(n_columns > 0, np.nansum(per_column, axis=2) / n_columns, np.nan)
    return rates[0] if v.ndim == 2 else rates


@dataclass(frozen=True)
class SuiteData:
    """Every model's cells of a summarised suite: cells[(model, family, scenario)]."""

    models: tuple[str, ...]
    scenarios: tuple[str, ...]
    cells: dict[tuple[str, str, str], CellData]

    def points(
        self, family: str, used: Sequence[str], present: set[tuple[str, str, str]]
    ) -> np.ndarray:
        """Models x `used` scenarios of a family's cell values; NaN where HELM has no value."""
        return np.array(
            [
                [
                    self.cells[(m, family, s)].point() if (m, family, s) in present else math.nan
                    for s in used
                ]
                for m in self.models
            ]
        )


RUN_PREFIXES = {
    "mmlu": "mmlu:",
    "boolq": "boolq:",
    "natural_qa": "natural_qa:",
    "quac": "quac:",
    "hellaswag": "commonsense:dataset=hellaswag",
}


def read_suite(suite_dir: str | Path, models: Sequence[str], scenarios: Sequence[str]) -> SuiteData:
    """Per-instance data of every (model, scenario) run in a suite folder (with schema.json)."""
    suite = Path(suite_dir)
    schema = json.loads((suite / "schema.json").read_text(encoding="utf-8"))
    cells: dict[tuple[str, str, str], CellData] = {}
    for model in models:
        for scenario in scenarios:
            runs = [
                r
                for r in find_runs(suite, model, RUN_PREFIXES[scenario])
                if (r / "per_instance_stats.json").is_file()
            ]
            if len(runs) == 1:
                for family, cell in read_cells(runs[0], schema).items():
                    cells[(model, family, scenario)] = cell
            elif runs and scenario == "mmlu":  # one run per subject, merged as HELM does
                for family, cell in merge_blocks(
                    [(r.name, read_cells(r, schema)) for r in runs]
                ).items():
                    cells[(model, family, scenario)] = cell
    return SuiteData(tuple(models), tuple(scenarios), cells)


def _subject(run_name: str) -> str:
    """A run's name without its model: the same for every model's run of one MMLU subject."""
    return ",".join(a for a in re.split(r"[:,]", run_name) if not a.startswith("model="))


def merge_blocks(runs: Sequence[tuple[str, dict[str, CellData]]]) -> dict[str, CellData]:
    """One cell per family over several runs (MMLU's subjects), each run a block: the value is
    the mean of the runs' values. A family missing from a run is left out."""
    families = set.intersection(*(set(cells) for _, cells in runs))
    merged = {}
    for family in sorted(families):
        parts = [(name, cells[family]) for name, cells in runs]
        first = parts[0][1]

        def stack(attr: str, parts=parts) -> np.ndarray | None:
            arrays = [getattr(c, attr) for _, c in parts]
            return None if arrays[0] is None else np.concatenate(arrays)

        merged[family] = CellData(
            family,
            first.metric,
            tuple(f"{_subject(name)}/{i}" for name, c in parts for i in c.instance_ids),
            np.concatenate([c.values for _, c in parts]),
            probs=stack("probs"),
            correct=stack("correct"),
            blocks=tuple(len(c.instance_ids) for _, c in parts),
        )
    return merged
