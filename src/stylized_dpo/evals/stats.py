"""Bootstrap confidence intervals, seeded so that every table is reproducible."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence

import numpy as np


def seeded_rng(seed: int, *names: str) -> np.random.Generator:
    """A generator for one quantity (e.g. a model and criterion): independent of run order."""
    return np.random.default_rng([seed, *(zlib.crc32(n.encode("utf-8")) for n in names)])


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
