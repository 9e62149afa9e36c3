"""The statistics of evals/stats.py against independent computations: hand-computed cases,
exact enumeration, normal theory, scipy, and synthetic data with a known answer."""

import itertools
import math

import numpy as np
import pytest

from stylized_dpo.evals.stats import (
    bootstrap_mean_ci,
    fit_logistic,
    holm,
    length_controlled_ci,
    length_controlled_rates,
    length_features,
    mcnemar_exact,
    paired_binary_test,
    paired_test,
    percentile_interval,
    sign_flip_pvalue,
)


def test_mcnemar_hand_computed():
    # 8 discordant items, 1 one way and 7 the other: p = 2 * (C(8,0) + C(8,1)) / 2^8 = 18/256.
    a = [1] * 1 + [0] * 7 + [1] * 5 + [0] * 3
    b = [0] * 1 + [1] * 7 + [1] * 5 + [0] * 3
    a_only, b_only, p = mcnemar_exact(a, b)
    assert (a_only, b_only) == (1, 7)
    assert p == pytest.approx(18 / 256, abs=1e-15)
    # Symmetric in the two models.
    assert mcnemar_exact(b, a) == (7, 1, p)


def test_mcnemar_edge_cases():
    assert mcnemar_exact([1, 0, 1], [1, 0, 1]) == (0, 0, 1.0)  # no discordant item
    assert mcnemar_exact([1, 0], [0, 1])[2] == 1.0  # 1 each way: 2 * 3/4 capped at 1
    with pytest.raises(ValueError, match="0/1"):
        mcnemar_exact([0.5, 1], [0, 1])
    with pytest.raises(ValueError, match="differ in length"):
        mcnemar_exact([1, 0], [1])


def test_mcnemar_matches_scipy_binomial_test():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    for _ in range(20):
        n = int(rng.integers(5, 60))
        a = rng.integers(0, 2, n)
        b = np.where(rng.random(n) < 0.6, a, 1 - a)
        a_only, b_only, p = mcnemar_exact(a, b)
        if a_only + b_only == 0:
            continue
        expected = stats.binomtest(a_only, a_only + b_only, 0.5).pvalue
        assert p == pytest.approx(expected, rel=1e-9)


def test_holm_hand_computed():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([math.nan, 0.01, 0.04, 0.6])  # NaN stays NaN and does not count in m
    assert math.isnan(out[0])
    assert out[1:] == pytest.approx([0.03, 0.08, 0.6])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_paired_bootstrap_matches_normal_theory():
    # Differences from a known distribution: the percentile interval of the mean is close to
    # mean +- 1.96 sd / sqrt(n) for n = 400.
    rng = np.random.default_rng(1)
    b = rng.normal(3.0, 1.0, 400)
    a = b + rng.normal(0.5, 1.0, 400)
    result = paired_test(a, b, 4000, np.random.default_rng(2))
    d = a - b
    half = 1.96 * d.std(ddof=1) / math.sqrt(d.size)
    assert result.difference == pytest.approx(d.mean())
    assert result.ci_low == pytest.approx(d.mean() - half, abs=0.12 * half)
    assert result.ci_high == pytest.approx(d.mean() + half, abs=0.12 * half)
    assert result.p_value == pytest.approx(1 / 4001)  # a 10-sigma effect: no flip as extreme


def test_paired_bootstrap_covers_the_true_mean():
    # 95% interval over 200 repetitions of a paired sample with true difference 0.3.
    rng = np.random.default_rng(3)
    covered = 0
    for _ in range(200):
        b = rng.normal(0, 1, 60)
        a = b + rng.normal(0.3, 1, 60)
        low, high = bootstrap_mean_ci(a - b, 1000, rng)
        covered += low <= 0.3 <= high
    assert 0.89 <= covered / 200 <= 0.99


def test_sign_flip_matches_exact_enumeration():
    d = np.array([1.0, 2.0, 3.0, -0.5, 1.5, 0.7, 2.2, -1.0])
    observed = abs(d.mean())
    patterns = np.array(list(itertools.product((-1, 1), repeat=d.size)))
    exact = float((np.abs((patterns * d).mean(axis=1)) >= observed - 1e-12).mean())
    p = sign_flip_pvalue(d, 200_000, np.random.default_rng(4))
    assert p == pytest.approx(exact, abs=0.004)
    assert sign_flip_pvalue([0.0, 0.0], 100, np.random.default_rng(0)) == 1.0


def test_paired_binary_test_uses_mcnemar():
    a = [1] * 10 + [0] * 10
    b = [0] * 9 + [1] * 11
    r = paired_binary_test(a, b, 500, np.random.default_rng(0))
    assert r.difference == pytest.approx(0.5 - 0.55)
    assert r.p_value == mcnemar_exact(a, b)[2]


def test_fit_logistic_matches_scipy_optimizer():
    optimize = pytest.importorskip("scipy.optimize")
    rng = np.random.default_rng(5)
    x = np.column_stack([np.ones(300), rng.normal(size=300), rng.normal(size=300)])
    y = (rng.random(300) < 1 / (1 + np.exp(-(x @ [0.3, 1.2, -0.7])))).astype(float)
    y[:20] = 0.5  # ties count half

    def negative(b):
        z = x @ b
        return -(np.sum(y * z - np.logaddexp(0, z)) - 0.5 * 1e-2 * b @ b)

    expected = optimize.minimize(negative, np.zeros(3), method="BFGS", tol=1e-10).x
    assert fit_logistic(x, y, ridge=1e-2) == pytest.approx(expected, abs=1e-5)


def _synthetic(theta, phi, shifts, n, rng):
    """Pairs from the LC model itself: model m's answers are longer by `shifts[m]` on average."""
    groups, dl = [], []
    for m, shift in enumerate(shifts):
        groups.append(np.full(n, m))
        dl.append(rng.normal(shift, 30.0, n))
    g, dl = np.concatenate(groups), np.concatenate(dl)
    x = length_features(g, dl, len(theta), float(dl.std()))
    p = 1 / (1 + np.exp(-(x @ np.append(theta, phi))))
    return g, (rng.random(p.size) < p).astype(float), dl


def test_length_controlled_rates_recover_a_known_answer():
    rng = np.random.default_rng(6)
    theta = np.array([0.8, 0.0, -0.5])
    g, y, dl = _synthetic(theta, 2.0, [40.0, 0.0, -20.0], 20_000, rng)
    lc = length_controlled_rates(g, y, dl, 3)
    assert lc == pytest.approx(1 / (1 + np.exp(-theta)), abs=0.012)
    raw = np.array([y[g == m].mean() for m in range(3)])
    assert raw[0] > lc[0] + 0.1  # the long-answer model's raw win rate is inflated by length


def test_length_only_preference_gives_one_half():
    # A judge that prefers the longer answer and nothing else: raw win rate ~0.85, LC ~0.5.
    rng = np.random.default_rng(7)
    g, y, dl = _synthetic(np.array([0.0]), 4.0, [30.0], 4000, rng)
    assert y.mean() > 0.75
    assert length_controlled_rates(g, y, dl, 1)[0] == pytest.approx(0.5, abs=0.04)


def test_length_controlled_interval_and_separation():
    rng = np.random.default_rng(8)
    g, y, dl = _synthetic(np.array([0.5, -0.5]), 1.0, [10.0, -10.0], 150, rng)
    items = np.concatenate([np.arange(150), np.arange(150)])
    est, low, high = length_controlled_ci(g, y, dl, items, 2, 300, np.random.default_rng(0))
    assert np.all(low <= est) and np.all(est <= high)
    assert np.all(high - low < 0.35)
    # A model that wins every pair: the ridge keeps the fit finite and the rate near 1.
    won = length_controlled_rates([0] * 30, [1.0] * 30, rng.normal(0, 5, 30), 1)
    assert 0.99 < won[0] <= 1.0


def test_percentile_interval_refuses_a_shifted_bootstrap():
    rng = np.random.default_rng(9)
    draws = rng.normal(1.0, 0.5, 100_000)
    assert percentile_interval(draws, 1.0) == pytest.approx((1 - 0.98, 1 + 0.98), abs=0.01)
    # Resamples far above the estimate (as ECE's on few instances): no interval.
    low, high = percentile_interval(draws + 2.0, 1.0)
    assert math.isnan(low) and math.isnan(high)
    assert percentile_interval([2.0] * 10, 2.0) == (2.0, 2.0)
