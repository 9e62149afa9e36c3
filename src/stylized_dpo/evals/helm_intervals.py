"""Intervals on HELM's numbers, from HELM's own per-instance stats: a bootstrap over instances.

Every value of `results/helm/summary.csv` is recomputed here from the `per_instance_stats.json`
of the runs in the summarised suite, the way HELM computes it, and then recomputed again on
bootstrap resamples of the instances:
- accuracy: the scenario's main metric (`environment.main_name` on `main_split` of its run group
  in HELM's schema, e.g. quasi-exact match on BoolQ, F1 on NaturalQuestions), mean over
  instances;
- robustness / fairness: per instance the worst value over the original and its robustness
  (MildMix) or fairness (dialect, gender, person-name) perturbations, then the mean, as HELM's
  `computed_on: worst` stats;
- calibration: `ece_10_bin` of (max_prob, exact_match) on unperturbed instances
  (`helm_summary.ece_equal_mass`);
- mean win rate: HELM's `compute_aggregate_row_win_rates` on the resampled cells of every model,
  over the columns HELM used (those with a HELM value).
The interval is the percentile interval of the resamples (`stats.percentile_interval`), left
empty (and counted) where it would not contain HELM's value: ECE on tens of instances, whose
resamples repeat instances that equal-mass bins then put together (HELM itself warns that
ECE is unreliable under 300 instances).
With several train trials a cell is the mean over trials, as in HELM, and an instance is
resampled with all its trials. One resample draws the same instances for every model (they
answered the same instances), so the intervals of a column and of the win rates are joint.

A value is given an interval only where the recomputation reproduces HELM's value (to 1e-9); a
cell that does not (a HELM version computing it differently) keeps empty `ci_low`/`ci_high`
and is counted in the log, never filled with an interval of some other number.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stylized_dpo.evals.helm_cells import (
    INSTANCE_FAMILIES,
    LOWER_IS_BETTER,
    RUN_PREFIXES,
    SuiteData,
    cell_values,
    mean_win_rates,
    read_suite,
)
from stylized_dpo.evals.stats import percentile_interval
from stylized_dpo.hashing import seeded_rng
from stylized_dpo.io import atomic_path
from stylized_dpo.records import HELM_INTERVAL_COLUMNS, HELM_SUMMARY_COLUMNS

TOLERANCE = 1e-9
"""How close the recomputed value must be to HELM's for the interval to be reported."""


def _aligned(suite: SuiteData, scenario: str) -> tuple[str, ...] | None:
    """The instance ids every model of a scenario has (None if they differ: no joint draw)."""
    ids = {c.instance_ids for (m, f, s), c in suite.cells.items() if s == scenario}
    return ids.pop() if len(ids) == 1 else None


def bootstrap_suite(
    suite: SuiteData,
    columns: dict[str, Sequence[str]],
    n_resamples: int,
    rng: np.random.Generator,
    present: set[tuple[str, str, str]] | None = None,
) -> dict[tuple[str, str, str], np.ndarray]:
    """Resampled values: (model, family, scenario) -> array of `n_resamples` values, and
    (model, family, "mean_win_rate") over the scenarios `columns[family]` HELM used. A cell not
    in `present` (HELM has no value for it, e.g. no ECE for one model) enters the win rates as
    missing, as in HELM; None: every cell of the suite is present."""
    draws: dict[tuple[str, str, str], np.ndarray] = {}
    picks: dict[str, np.ndarray] = {}
    for scenario in suite.scenarios:
        ids = _aligned(suite, scenario)
        if ids is None or not ids:
            continue
        cell = next(c for (m, f, s), c in suite.cells.items() if s == scenario)
        # within each block (an MMLU subject), so every resample keeps each subject's size
        picks[scenario] = np.concatenate(
            [
                rng.integers(start, end, size=(n_resamples, end - start))
                for start, end in cell.block_bounds()
            ],
            axis=1,
        )
    for (model, family, scenario), cell in suite.cells.items():
        if scenario not in picks:
            continue
        # An instance keeps all its trials.
        draws[(model, family, scenario)] = cell_values(cell, picks[scenario])
    missing = np.full(n_resamples, math.nan)
    for family, used in columns.items():
        keys = [(m, family, s) for m in suite.models for s in used]
        wanted = [k for k in keys if present is None or k in present]
        if not used or any(k not in draws for k in wanted):
            continue
        table = np.stack(
            [
                np.stack(
                    [
                        draws[(m, family, s)]
                        if present is None or (m, family, s) in present
                        else missing
                        for s in used
                    ],
                    axis=1,
                )
                for m in suite.models
            ],
            axis=1,
        )  # resamples x models x columns
        rates = mean_win_rates(table, LOWER_IS_BETTER[family])
        for k, model in enumerate(suite.models):
            draws[(model, family, "mean_win_rate")] = rates[:, k]
    return draws


def win_rate_columns(
    summary_rows: Sequence[dict[str, str]], scenarios: Sequence[str]
) -> dict[str, list[str]]:
    """The scenarios HELM's mean win rate of each family used: those with a HELM value (a cell
    computed here, such as HellaSwag's ECE, is not one of them)."""
    return {
        family: [
            s
            for s in scenarios
            if any(
                r["family"] == family
                and r["scenario"] == s
                and r["value"]
                and not r["note"].startswith("computed")
                for r in summary_rows
            )
        ]
        for family in INSTANCE_FAMILIES
    }


def add_intervals(
    rows: Sequence[dict[str, str]],
    suite_dir: str | Path,
    n_resamples: int,
    seed: int,
    level: float = 0.95,
) -> tuple[list[dict[str, str]], dict[str, int]]:
    """summary.csv rows with `ci_low`, `ci_high` (empty where not reproduced); and counts."""
    models = list(dict.fromkeys(r["model"] for r in rows))
    scenarios = [s for s in dict.fromkeys(r["scenario"] for r in rows) if s in RUN_PREFIXES]
    suite = read_suite(suite_dir, models, scenarios)
    helm_value = {
        (r["model"], r["family"], r["scenario"]): float(r["value"]) for r in rows if r["value"]
    }
    reproduced = {
        key
        for key, cell in suite.cells.items()
        if key in helm_value and abs(cell.point() - helm_value[key]) <= TOLERANCE
    }
    helm_columns = win_rate_columns(rows, scenarios)
    present = set(helm_value)
    columns = {
        f: used
        for f, used in helm_columns.items()
        if all((m, f, s) in reproduced for m in models for s in used if (m, f, s) in present)
    }
    draws = bootstrap_suite(
        suite, columns, n_resamples, rng=seeded_rng(seed, "helm-intervals"), present=present
    )
    point_mwr: dict[tuple[str, str, str], float] = {}
    for family, used in columns.items():
        if not used:
            continue
        points = suite.points(family, used, present)
        for model, rate in zip(
            models, mean_win_rates(points, LOWER_IS_BETTER[family]), strict=True
        ):
            point_mwr[(model, family, "mean_win_rate")] = float(rate)
    counts = {"cells": 0, "with_interval": 0, "not_reproduced": 0, "biased": 0}
    out = []
    for r in rows:
        key = (r["model"], r["family"], r["scenario"])
        row = {**r, "ci_low": "", "ci_high": ""}
        if r["value"]:
            counts["cells"] += 1
            ok = key in reproduced or (
                key in point_mwr and abs(point_mwr[key] - helm_value[key]) <= TOLERANCE
            )
            if ok and key in draws:
                low, high = percentile_interval(draws[key], helm_value[key], level)
                if math.isnan(low):
                    counts["biased"] += 1
                    print(f"no interval for {key}: the resamples do not bracket the value")
                else:
                    row["ci_low"], row["ci_high"] = repr(low), repr(high)
                    counts["with_interval"] += 1
            else:
                counts["not_reproduced"] += 1
                print(f"no interval for {key}: HELM's value not reproduced from per-instance stats")
        out.append(row)
    return out, counts


def add_intervals_to_csv(
    summary_csv: str | Path, suite_dir: str | Path, n_resamples: int, seed: int
) -> dict[str, int]:
    """Rewrite summary.csv with the interval columns after HELM's (atomic)."""
    with open(summary_csv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    out, counts = add_intervals(rows, suite_dir, n_resamples, seed)
    buffer = io.StringIO()
    fields = [*HELM_SUMMARY_COLUMNS, *HELM_INTERVAL_COLUMNS]
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in fields} for row in out)
    with atomic_path(summary_csv) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    print(
        f"HELM intervals: {counts['with_interval']} of {counts['cells']} values "
        f"({counts['not_reproduced']} not reproduced from per-instance stats, "
        f"{counts['biased']} whose resamples do not bracket the value)"
    )
    return counts
