"""Bootstrap confidence intervals, paired tests, multiple-comparison correction and length-
controlled win rates, seeded so that every table is reproducible."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def bootstrap_mean_ci(
    values: Sequence[float], n_resamples: int, rng: np.random.Generator, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean: resample `values` with replacement.

    Returns (nan, nan) for no values. With one value, or identical values, the interval is that
    value (the bootstrap cannot show uncertainty the sample does not have).
    """
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return math.nan, math.nan
    idx = rng.integers(0, x.size, size=(n_resamples, x.size))
    means = x[idx].mean(axis=1)
    alpha = (1 - level) / 2
    low, high = np.quantile(means, [alpha, 1 - alpha])
    return float(low), float(high)


def percentile_interval(
    draws: Sequence[float], estimate: float, level: float = 0.95
) -> tuple[float, float]:
    """Percentile interval of bootstrap draws, or (nan, nan) where the bootstrap is not valid.

    Where the estimate itself lies outside the interval, the resamples are shifted from it by
    more than their spread and the interval would describe another quantity. ECE on a few
    instances is the case seen: a resample repeats instances, equal-mass bins then hold
    copies of one point, and the resampled ECE sits above the estimate almost always. No
    interval is reported then (counted by the callers), rather than a misleading one.
    """
    x = np.asarray(draws, dtype=float)
    if x.size == 0 or math.isnan(estimate):
        return math.nan, math.nan
    alpha = (1 - level) / 2
    low, high = (float(v) for v in np.quantile(x, [alpha, 1 - alpha]))
    tol = 1e-12 * max(1.0, abs(estimate))
    if not low - tol <= estimate <= high + tol:
        return math.nan, math.nan
    return low, high


# ---- paired comparisons ---------------------------------------------------------------------
# Two models answered the same items; each test below looks at the per-item pairs, so that
# item difficulty cancels out. The p-values are two-sided.


@dataclass(frozen=True)
class PairedResult:
    """One paired comparison: mean of `a - b`, its interval and a two-sided p-value."""

    n: int
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    test: str


def paired_bootstrap_ci(
    a: Sequence[float],
    b: Sequence[float],
    n_resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a - b), resampling items (pairs stay together)."""
    d = _paired(a, b)
    return bootstrap_mean_ci(d, n_resamples, rng, level)


def sign_flip_pvalue(
    differences: Sequence[float], n_permutations: int, rng: np.random.Generator
) -> float:
    """Two-sided paired randomisation test of mean difference 0.

    Under the null the two answers of an item are exchangeable, so each difference keeps or flips
    its sign with probability 1/2. Monte Carlo with `n_permutations` sign draws; the observed
    assignment counts as one of them, so p >= 1 / (n_permutations + 1) (a valid p-value, never
    0). All-zero differences give p = 1.
    """
    d = np.asarray(differences, dtype=float)
    if d.size == 0:
        return math.nan
    observed = abs(d.mean())
    if not np.any(d):
        return 1.0
    signs = rng.integers(0, 2, size=(n_permutations, d.size)) * 2 - 1
    means = np.abs((signs * d).mean(axis=1))
    # A relative tolerance so that float rounding of equal means counts them as equal.
    extreme = int((means >= observed * (1 - 1e-12)).sum())
    return (1 + extreme) / (1 + n_permutations)


def paired_test(
    a: Sequence[float],
    b: Sequence[float],
    n_resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
    n_permutations: int | None = None,
) -> PairedResult:
    """Mean of a - b with a paired bootstrap interval (`n_resamples`) and the sign-flip p-value
    (`n_permutations` draws, default `n_resamples`)."""
    d = _paired(a, b)
    low, high = bootstrap_mean_ci(d, n_resamples, rng, level)
    return PairedResult(
        n=int(d.size),
        difference=float(d.mean()) if d.size else math.nan,
        ci_low=low,
        ci_high=high,
        p_value=sign_flip_pvalue(d, n_permutations or n_resamples, rng),
        test="paired bootstrap CI, sign-flip p",
    )


def mcnemar_exact(a_correct: Sequence[float], b_correct: Sequence[float]) -> tuple[int, int, float]:
    """McNemar's exact test on paired 0/1 outcomes: (a right b wrong, a wrong b right, p).

    Only the discordant items carry information; under the null each is equally likely to go
    either way, so the smaller count is Binomial(n_discordant, 1/2) and the two-sided p-value
    is twice its lower tail, capped at 1.
    """
    a, b = _paired(a_correct, b_correct, values=True)
    if not np.all(np.isin(a, (0.0, 1.0))) or not np.all(np.isin(b, (0.0, 1.0))):
        raise ValueError("McNemar's test needs 0/1 outcomes")
    a_only = int(((a == 1) & (b == 0)).sum())
    b_only = int(((a == 0) & (b == 1)).sum())
    n = a_only + b_only
    if n == 0:
        return a_only, b_only, 1.0
    k = min(a_only, b_only)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return a_only, b_only, min(1.0, 2 * tail)


def paired_binary_test(
    a: Sequence[float],
    b: Sequence[float],
    n_resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> PairedResult:
    """Difference in accuracy of paired 0/1 outcomes: bootstrap interval, McNemar's exact p."""
    d = _paired(a, b)
    low, high = bootstrap_mean_ci(d, n_resamples, rng, level)
    _, _, p = mcnemar_exact(a, b)
    return PairedResult(
        n=int(d.size),
        difference=float(d.mean()) if d.size else math.nan,
        ci_low=low,
        ci_high=high,
        p_value=p,
        test="McNemar exact, paired bootstrap CI",
    )


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), NaN entries left out and kept.

    Sorted ascending, the i-th smallest of m is multiplied by (m - i + 1); a running maximum keeps
    the adjusted values in the order of the raw ones; capped at 1.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, math.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * p[i]))
        out[i] = running
    return out.tolist()


def _paired(
    a: Sequence[float], b: Sequence[float], values: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {x.size} vs {y.size}")
    return (x, y) if values else x - y


# ---- length-controlled win rates ------------------------------------------------------------
# AlpacaEval 2's length control (Dubois et al. 2024): a logistic regression of the preference
# on each model's identity and on the (squashed, scaled) length difference between the two
# answers; the length-controlled win rate is the predicted preference at zero length difference.

LC_RIDGE = 1e-2
"""L2 penalty of the length-controlled fit: keeps the coefficients finite when a model wins or
loses every pair (the estimate is then within ~1e-3 of 1 or 0); negligible otherwise."""


def fit_logistic(
    features: np.ndarray, outcomes: np.ndarray, ridge: float = LC_RIDGE, max_iter: int = 100
) -> np.ndarray:
    """Coefficients of a logistic regression with outcomes in [0, 1] (a tie is 1/2: half a
    win, half a loss), by Newton's method on the ridge-penalised log-likelihood (convex, so
    the optimum is unique)."""
    x = np.asarray(features, dtype=float)
    y = np.asarray(outcomes, dtype=float)
    beta = np.zeros(x.shape[1])
    penalty = ridge * np.eye(x.shape[1])

    def objective(b: np.ndarray) -> float:
        z = x @ b
        return float(np.sum(y * z - np.logaddexp(0.0, z)) - 0.5 * ridge * b @ b)

    current = objective(beta)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(x @ beta)))
        gradient = x.T @ (y - p) - ridge * beta
        hessian = (x * (p * (1 - p))[:, None]).T @ x + penalty
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while scale > 1e-8:  # step halving: Newton can overshoot far from the optimum
            candidate = beta + scale * step
            value = objective(candidate)
            if value >= current - 1e-12:
                break
            scale /= 2
        beta, previous, current = candidate, current, value
        if abs(current - previous) < 1e-10 and np.max(np.abs(scale * step)) < 1e-8:
            break
    return beta


def length_features(
    groups: Sequence[int], length_difference: Sequence[float], n_groups: int, scale: float
) -> np.ndarray:
    """Design matrix: one indicator per model (its intercept), then tanh(length diff / scale)."""
    g = np.asarray(groups, dtype=int)
    x = np.zeros((g.size, n_groups + 1))
    x[np.arange(g.size), g] = 1.0
    dl = np.asarray(length_difference, dtype=float)
    x[:, -1] = np.tanh(dl / scale) if scale > 0 else 0.0
    return x


def length_controlled_rates(
    groups: Sequence[int],
    outcomes: Sequence[float],
    length_difference: Sequence[float],
    n_groups: int,
) -> np.ndarray:
    """Each model's length-controlled win rate: sigmoid of its intercept in a joint fit of
    logit P(model preferred) = theta_model + phi * tanh(length diff / sd(length diff)),
    one length slope phi shared by the models (it is the judge's length preference)."""
    dl = np.asarray(length_difference, dtype=float)
    scale = float(dl.std()) if dl.size > 1 else 0.0
    beta = fit_logistic(length_features(groups, dl, n_groups, scale), np.asarray(outcomes, float))
    return 1.0 / (1.0 + np.exp(-beta[:n_groups]))


def length_controlled_ci(
    groups: Sequence[int],
    outcomes: Sequence[float],
    length_difference: Sequence[float],
    items: Sequence[int],
    n_groups: int,
    n_resamples: int,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(estimates, lows, highs) per model: the fit on the data, and a percentile bootstrap that
    resamples items (prompts), keeping every model's pair on a drawn prompt together."""
    g = np.asarray(groups, dtype=int)
    y = np.asarray(outcomes, dtype=float)
    dl = np.asarray(length_difference, dtype=float)
    it = np.asarray(items)
    estimate = length_controlled_rates(g, y, dl, n_groups)
    unique, inverse = np.unique(it, return_inverse=True)
    rows_of = [np.flatnonzero(inverse == k) for k in range(unique.size)]
    draws = np.full((n_resamples, n_groups), math.nan)
    for r in range(n_resamples):
        picked = rng.integers(0, unique.size, size=unique.size)
        rows = np.concatenate([rows_of[k] for k in picked]) if unique.size else np.array([], int)
        present = np.unique(g[rows])
        rates = length_controlled_rates(g[rows], y[rows], dl[rows], n_groups)
        draws[r, present] = rates[present]
    alpha = (1 - level) / 2
    with np.errstate(all="ignore"):
        lows = np.nanquantile(draws, alpha, axis=0)
        highs = np.nanquantile(draws, 1 - alpha, axis=0)
    return estimate, lows, highs
