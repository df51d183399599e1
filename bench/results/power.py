"""Power: how large a difference the exact rank test can see at a given n. Beside a verdict, the
leaderboard and `bench check` print the difference the test would detect with 80% power at these
seeds and the observed spread, so a `not significant` row says how large an effect could hide."""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Sequence

import numpy as np

from bench.results.stats import ALPHA, _clean, _u_cdf


@lru_cache(maxsize=256)
def detectable_shift(na: int, nb: int, alpha: float = ALPHA, power: float = 0.8, draws: int = 4000) -> float:
    """The normal location shift, in standard deviations, that the exact two-sided rank test at
    level `alpha` detects with probability `power` at these sample sizes (seeded simulation,
    bisection); inf where the test can never reject."""
    cdf = _u_cdf(na, nb)
    # two-sided rejection when U ≤ c or U ≥ na·nb − c; the null of U is symmetric
    c = int(np.searchsorted(cdf, alpha / 2, side="right")) - 1
    if c < 0:
        return math.inf
    rng = np.random.default_rng(12345)
    za, zb = rng.standard_normal((draws, na)), rng.standard_normal((draws, nb))

    def detected(delta: float) -> float:
        wins = ((za + delta)[:, :, None] < zb[:, None, :]).sum(axis=(1, 2))  # U of the shifted sample
        return float(((wins <= c) | (wins >= na * nb - c)).mean())

    lo, hi = 0.0, 1.0
    while detected(hi) < power:
        hi *= 2
        if hi > 1e3:
            return math.inf
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if detected(mid) >= power else (mid, hi)
    return hi


def spread(values: Sequence[float]) -> float:
    """A robust standard deviation of the finite values: 1.4826 · MAD, or the sample SD where
    more than half the values agree exactly (MAD 0); nan with fewer than two finite values."""
    x = _clean(values)
    x = x[np.isfinite(x)]
    if len(x) < 2:
        return math.nan
    mad = 1.4826 * float(np.median(np.abs(x - np.median(x))))
    return mad if mad > 0 else float(np.std(x, ddof=1))


def detectable_difference(a: Sequence[float], b: Sequence[float], alpha: float) -> float:
    """The difference of A and B's values that the two-sided exact test at `alpha` detects with
    80% power: `detectable_shift` times the pooled robust spread of the two samples (nan where
    neither has two finite values)."""
    spreads = [spread(a), spread(b)]
    if not any(np.isfinite(spreads)):
        return math.nan
    pooled = math.sqrt(np.nanmean([s ** 2 for s in spreads]))
    return detectable_shift(len(_clean(a)), len(_clean(b)), alpha) * pooled
