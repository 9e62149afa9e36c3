"""Which differences between models are real: paired comparisons on the same items, corrected
for the number of comparisons (the paper's directional claims are checked against the table in
`claims.py`).

Comparisons: SFT against the base model, and every DPO model against SFT and against the base
model. For each:
- judge (one row per criterion): the judge's scores of both models' answers to the same
  prompts; mean difference, paired bootstrap 95% interval, sign-flip permutation p-value;
- HELM, per family and scenario (the cells of Tables 5-8), on the instances both models
  answered: 0/1 outcomes (exact match, and its worst case over perturbations) by McNemar's
  exact test; continuous ones (F1) by the sign-flip test; calibration (ECE, not a mean over
  instances) by swapping the two models' (probability, correctness) pairs on random instances;
- HELM mean win rates per family (Table 4): the difference of the two models' mean win rates
  within the suite; interval from the joint bootstrap over instances of
  `helm_intervals.bootstrap_suite`, p-value by swapping the two models' per-instance values on
  random instances of every scenario (the other models' cells stay as measured).
Intervals of ECE and win-rate differences are left empty where the resamples do not bracket
the observed difference (`stats.percentile_interval`); their permutation p-values stay valid.
Intervals come from `statistics.n_bootstrap` resamples, permutation p-values from
`statistics.n_permutations` swaps (smallest p: 1 / (n + 1)). Holm's correction runs across the
whole table (`p_holm`); `significant` is p_holm < alpha. Seeded per comparison, so a row does
not depend on the others. Rows are written for one run; several seeds' tables can be pooled
later by stacking them with a `seed` column (every function takes the data of one run).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from stylized_dpo.config import Section
from stylized_dpo.evals.helm_cells import (
    LOWER_IS_BETTER,
    CellData,
    SuiteData,
    cell_values,
    ece_equal_mass_batch,
    mean_win_rates,
)
from stylized_dpo.evals.helm_intervals import bootstrap_suite, win_rate_columns
from stylized_dpo.evals.stats import (
    PairedResult,
    holm,
    paired_binary_test,
    paired_test,
    percentile_interval,
)
from stylized_dpo.hashing import seeded_rng
from stylized_dpo.io import DataError, read_records
from stylized_dpo.records import HELM_FAMILIES, JUDGE_CRITERIA, JudgeScore

SIGNIFICANCE_COLUMNS: tuple[str, ...] = (
    "model",
    "reference",
    "source",
    "family",
    "scenario",
    "metric",
    "n",
    "value_model",
    "value_reference",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "p_holm",
    "significant",
    "better",
    "test",
)
"""`results/tables/significance.csv`: one row per (comparison, measure). `difference` is model
minus reference; `better` says which of the two the row favours at the corrected level
(model | reference | none), with ECE's direction reversed (lower is better)."""


def comparisons(models: Sequence[str]) -> list[tuple[str, str]]:
    """(model, reference) pairs: SFT vs base, then each other model vs SFT and vs base."""
    pairs = [("sft", "base")] if {"sft", "base"} <= set(models) else []
    for reference in ("sft", "base"):
        if reference not in models:
            continue
        pairs += [(m, reference) for m in models if m not in ("base", "sft")]
    return pairs


@dataclass(frozen=True)
class SignificanceConfig(Section):
    """Config section `statistics` (see config/README.md)."""

    section: ClassVar[str] = "statistics"

    n_bootstrap: int = 2000
    n_permutations: int = 20000
    alpha: float = 0.05
    claims: str = "config/paper_claims.yaml"


def read_judge_scores(
    models: Sequence[str], paths: Sequence[str | os.PathLike[str]]
) -> dict[str, dict[str, JudgeScore]]:
    """model -> prompt id -> scores (a repeated prompt id is an error naming file and line)."""
    out: dict[str, dict[str, JudgeScore]] = {}
    for model, path in zip(models, paths, strict=True):
        rows: dict[str, JudgeScore] = {}
        for line, score in enumerate(read_records(path, JudgeScore), start=1):
            if score.prompt_id in rows:
                raise DataError(path, line, "prompt_id", f"duplicate prompt_id {score.prompt_id}")
            rows[score.prompt_id] = score
        out[model] = rows
    return out


@dataclass(frozen=True)
class Measure:
    """What a row compares: judge criterion, or HELM family and scenario, and its metric."""

    source: str
    family: str
    scenario: str
    metric: str


def _row(
    model: str,
    reference: str,
    measure: Measure,
    value_model: float,
    value_reference: float,
    result: PairedResult,
) -> dict[str, Any]:
    return {
        "model": model,
        "reference": reference,
        "source": measure.source,
        "family": measure.family,
        "scenario": measure.scenario,
        "metric": measure.metric,
        "n": result.n,
        "value_model": value_model,
        "value_reference": value_reference,
        "difference": result.difference,
        "ci_low": result.ci_low,
        "ci_high": result.ci_high,
        "p_value": result.p_value,
        "test": result.test,
    }


def judge_rows(
    scores: dict[str, dict[str, JudgeScore]],
    pairs: Sequence[tuple[str, str]],
    config: SignificanceConfig,
    seed: int,
) -> list[dict[str, Any]]:
    rows = []
    for model, reference in pairs:
        if model not in scores or reference not in scores:
            continue
        shared = [pid for pid in scores[reference] if pid in scores[model]]
        dropped = len(set(scores[model]) ^ set(scores[reference]))
        if dropped:
            print(f"judge {model} vs {reference}: {dropped} prompts scored for one model only")
        for criterion in JUDGE_CRITERIA:
            a = [getattr(scores[model][p], criterion) for p in shared]
            b = [getattr(scores[reference][p], criterion) for p in shared]
            result = paired_test(
                a,
                b,
                config.n_bootstrap,
                seeded_rng(seed, "judge", model, reference, criterion),
                n_permutations=config.n_permutations,
            )
            means = [float(np.mean(v)) if v else math.nan for v in (a, b)]
            measure = Measure("judge", criterion, "", "score 1-5")
            rows.append(_row(model, reference, measure, *means, result))
    return rows


def _swap_ece(
    a: CellData, b: CellData, n_permutations: int, rng: np.random.Generator
) -> np.ndarray:
    """ECE(a) - ECE(b) after swapping the models' (prob, correct) on random instances."""
    swap = rng.integers(0, 2, size=(n_permutations, len(a.instance_ids))).astype(bool)
    return _ece_mixed(a, b, swap) - _ece_mixed(b, a, swap)


def _ece_mixed(first: CellData, second: CellData, swap: np.ndarray) -> np.ndarray:
    """ECE of `first` with `second`'s instances where `swap` (permutations x instances)."""
    assert first.probs is not None and second.probs is not None
    assert first.correct is not None and second.correct is not None
    per_trial = [
        ece_equal_mass_batch(
            np.where(swap, second.probs[:, t], first.probs[:, t]),
            np.where(swap, second.correct[:, t], first.correct[:, t]),
        )
        for t in range(first.probs.shape[1])
    ]
    return np.mean(per_trial, axis=0)


def _permutation_p(observed: float, null: np.ndarray) -> float:
    # Relative tolerance: a swap that reproduces the observed statistic must count.
    extreme = int((np.abs(null) >= abs(observed) * (1 - 1e-12) - 1e-15).sum())
    return (1 + extreme) / (1 + null.size)


def helm_cell_rows(
    suite: SuiteData,
    pairs: Sequence[tuple[str, str]],
    config: SignificanceConfig,
    seed: int,
) -> list[dict[str, Any]]:
    rows = []
    for model, reference in pairs:
        for family in HELM_FAMILIES:
            for scenario in suite.scenarios:
                a = suite.cells.get((model, family, scenario))
                b = suite.cells.get((reference, family, scenario))
                if a is None or b is None:
                    continue  # HELM has no such cell for one of them (e.g. no ECE)
                if a.instance_ids != b.instance_ids:
                    print(
                        f"{model} vs {reference}, {family} {scenario}: left out, the two runs "
                        "answered different instances"
                    )
                    continue
                rng = seeded_rng(seed, "helm", model, reference, family, scenario)
                if family == "calibration":
                    result = _ece_test(a, b, config, rng)
                else:
                    x, y = a.values.mean(axis=1), b.values.mean(axis=1)
                    binary = bool(np.isin(x, (0, 1)).all() and np.isin(y, (0, 1)).all())
                    test = paired_binary_test if binary else paired_test
                    kwargs = {} if binary else {"n_permutations": config.n_permutations}
                    result = test(x, y, config.n_bootstrap, rng, **kwargs)
                measure = Measure("helm", family, scenario, a.metric)
                rows.append(_row(model, reference, measure, a.point(), b.point(), result))
    return rows


def _ece_test(
    a: CellData, b: CellData, config: SignificanceConfig, rng: np.random.Generator
) -> PairedResult:
    n = len(a.instance_ids)
    observed = a.point() - b.point()
    picks = rng.integers(0, n, size=(config.n_bootstrap, n))
    boot = cell_values(a, picks) - cell_values(b, picks)
    low, high = percentile_interval(boot, observed)
    null = _swap_ece(a, b, config.n_permutations, rng)
    return PairedResult(
        n=n,
        difference=observed,
        ci_low=float(low),
        ci_high=float(high),
        p_value=_permutation_p(observed, null),
        test="paired bootstrap CI, swap-permutation p",
    )


def win_rate_rows(
    suite: SuiteData,
    columns: dict[str, Sequence[str]],
    pairs: Sequence[tuple[str, str]],
    config: SignificanceConfig,
    seed: int,
    present: set[tuple[str, str, str]],
) -> list[dict[str, Any]]:
    """Differences of HELM mean win rates (Table 4) between the two models of each pair;
    `present`: the cells HELM has a value for (the others are missing, as in HELM's)."""
    draws = bootstrap_suite(
        suite, columns, config.n_bootstrap, seeded_rng(seed, "helm-mwr"), present=present
    )
    models = list(suite.models)
    rows = []
    for family, used in columns.items():
        keys = [(m, family, s) for m in models for s in used if (m, family, s) in present]
        if not used or any(k not in suite.cells for k in keys):
            continue
        lower = LOWER_IS_BETTER[family]
        points = suite.points(family, used, present)
        rates = mean_win_rates(points, lower)
        for model, reference in pairs:
            if model not in models or reference not in models:
                continue
            i, j = models.index(model), models.index(reference)
            if np.isnan(rates[i]) or np.isnan(rates[j]):
                continue
            observed = float(rates[i] - rates[j])
            boot = (
                draws[(model, family, "mean_win_rate")]
                - draws[(reference, family, "mean_win_rate")]
            )
            low, high = percentile_interval(boot, observed)
            rng = seeded_rng(seed, "helm-mwr", model, reference, family)
            null = _swapped_win_rates(suite, family, used, points, i, j, config, rng)
            result = PairedResult(
                n=sum(len(suite.cells[(model, family, s)].instance_ids) for s in used),
                difference=observed,
                ci_low=float(low),
                ci_high=float(high),
                p_value=_permutation_p(observed, null),
                test="joint bootstrap CI, swap-permutation p",
            )
            measure = Measure("helm", family, "mean_win_rate", "mean win rate")
            rows.append(_row(model, reference, measure, float(rates[i]), float(rates[j]), result))
    return rows


def _swapped_win_rates(
    suite: SuiteData,
    family: str,
    used: Sequence[str],
    points: np.ndarray,
    i: int,
    j: int,
    config: SignificanceConfig,
    rng: np.random.Generator,
) -> np.ndarray:
    """Null distribution of MWR(i) - MWR(j): models i and j swap their values on random
    instances of every column; the other models keep their measured cells."""
    models = suite.models
    r = config.n_permutations
    table = np.broadcast_to(points, (r, *points.shape)).copy()
    for c, scenario in enumerate(used):
        if np.isnan(points[i, c]) or np.isnan(points[j, c]):
            continue  # a missing cell has nothing to swap
        a = suite.cells[(models[i], family, scenario)]
        b = suite.cells[(models[j], family, scenario)]
        n = len(a.instance_ids)
        if a.instance_ids != b.instance_ids:
            raise ValueError(f"{scenario}: {models[i]} and {models[j]} answered other instances")
        if family == "calibration":
            swap = rng.integers(0, 2, size=(r, n)).astype(bool)
            table[:, i, c] = _ece_mixed(a, b, swap)
            table[:, j, c] = _ece_mixed(b, a, swap)
        else:
            x, y = a.values.mean(axis=1), b.values.mean(axis=1)
            swap = rng.integers(0, 2, size=(r, n)).astype(bool)
            table[:, i, c] = np.where(swap, y, x).mean(axis=1)
            table[:, j, c] = np.where(swap, x, y).mean(axis=1)
    rates = mean_win_rates(table, LOWER_IS_BETTER[family])
    return rates[:, i] - rates[:, j]


def finish(rows: list[dict[str, Any]], alpha: float) -> pd.DataFrame:
    """Holm across every row; which side each row favours at the corrected level."""
    table = pd.DataFrame(rows, columns=list(SIGNIFICANCE_COLUMNS))
    table["p_holm"] = holm(table["p_value"].tolist()) if len(table) else []
    table["significant"] = table["p_holm"] < alpha
    sign = np.sign(table["difference"].astype(float))
    lower = (table["source"] == "helm") & (table["family"] == "calibration")
    lower &= table["scenario"] != "mean_win_rate"  # a win rate is higher-is-better
    sign = np.where(lower, -sign, sign)
    table["better"] = np.where(
        ~table["significant"],
        "none",
        np.where(sign > 0, "model", np.where(sign < 0, "reference", "none")),
    )
    return table


def significance_table(
    models: Sequence[str],
    judge_paths: Sequence[str | os.PathLike[str]],
    suite: SuiteData | None,
    summary_rows: Sequence[dict[str, str]],
    config: SignificanceConfig,
    seed: int,
) -> pd.DataFrame:
    """The whole table (judge rows, HELM cell rows, HELM win-rate rows), Holm-corrected."""
    pairs = comparisons(models)
    rows = judge_rows(read_judge_scores(models, judge_paths), pairs, config, seed)
    if suite is not None:
        rows += helm_cell_rows(suite, pairs, config, seed)
        columns = win_rate_columns(summary_rows, suite.scenarios)
        present = {(r["model"], r["family"], r["scenario"]) for r in summary_rows if r["value"]}
        rows += win_rate_rows(suite, columns, pairs, config, seed, present)
    return finish(rows, config.alpha)
