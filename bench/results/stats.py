"""The statistics behind every number we print. Pure numpy, seeded, no pandas.

Conventions, so that "better" is never ambiguous:
- values are *losses*: lower is better. Callers negate metrics where higher is better.
- a run that missed (diverged, failed, never reached the target) is `+inf`, as in AlgoPerf;
  medians and order statistics handle it, so no miss is silently dropped.
- intervals are percentile bootstrap intervals taken conservatively: the lower end rounds down
  and the upper end rounds up to an actual bootstrap value (no interpolation, which would also
  turn `inf - inf` into nan).
- fewer than two values give no interval (nan, nan): one seed says nothing about spread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

import numpy as np
from scipy.special import gammaln
from scipy.stats import rankdata

N_BOOT = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval and the number of values behind it."""

    value: float
    lo: float
    hi: float
    n: int


def _interval(samples: np.ndarray, level: float, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    tail = 100 * (1 - level) / 2
    lo = np.percentile(samples, tail, axis=axis, method="lower")
    hi = np.percentile(samples, 100 - tail, axis=axis, method="higher")
    return lo, hi


def median(x: np.ndarray, axis: int = 0) -> np.ndarray:
    # np.median averages the two middle values; (inf + inf) / 2 is fine, (x + inf) / 2 = inf is
    # the honest answer when half the runs missed.
    with np.errstate(invalid="ignore"):
        return np.median(x, axis=axis)


def bootstrap(values: Sequence[float], stat: Callable = median, n_boot: int = N_BOOT, level: float = LEVEL,
              seed: int = 0) -> Estimate:
    """`stat(values)` with a percentile bootstrap interval. `stat(array, axis)` must reduce along
    `axis` (np.median, np.mean, ...). Same seed, same interval."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Estimate(np.nan, np.nan, np.nan, 0)
    point = float(stat(x, axis=0))
    if n < 2:
        return Estimate(point, np.nan, np.nan, n)
    rng = np.random.default_rng(seed)
    samples = stat(x[rng.integers(0, n, size=(n_boot, n))], axis=1)
    lo, hi = _interval(samples, level)
    return Estimate(point, float(lo), float(hi), n)


def _p_better(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(a random run of A beats a random run of B), ties (inf vs inf included) counting half.
    Works on the last two axes: a (..., na), b (..., nb)."""
    a, b = a[..., :, None], b[..., None, :]
    return (a < b).mean(axis=(-2, -1)) + 0.5 * (a == b).mean(axis=(-2, -1))


def probability_of_improvement(a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT,
                               level: float = LEVEL, seed: int = 0) -> Estimate:
    """P(A < B) (lower is better) as in Agarwal et al. 2021 (rliable): the Mann-Whitney
    statistic, with an interval from resampling each side's runs independently. n = min(na, nb)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return Estimate(np.nan, np.nan, np.nan, 0)
    point = float(_p_better(a, b))
    n = min(len(a), len(b))
    if n < 2:
        return Estimate(point, np.nan, np.nan, n)
    rng = np.random.default_rng(seed)
    ra = a[rng.integers(0, len(a), size=(n_boot, len(a)))]
    rb = b[rng.integers(0, len(b), size=(n_boot, len(b)))]
    lo, hi = _interval(_p_better(ra, rb), level)
    return Estimate(point, float(lo), float(hi), n)


def verdict(p: Estimate) -> str:
    """The ranking rule: A is better than B only if the whole interval of P(A beats B) lies above
    1/2, worse only if it lies below; otherwise the two are tied. No interval, no claim."""
    if not np.isfinite(p.lo) or not np.isfinite(p.hi):
        return "tie"
    if p.lo > 0.5:
        return "better"
    if p.hi < 0.5:
        return "worse"
    return "tie"


def time_ratios(times: np.ndarray) -> np.ndarray:
    """AlgoPerf performance ratios: times (tasks × optimizers; inf = missed) divided by each
    task's best time. A task nobody solved gives every optimizer an infinite ratio."""
    t = np.asarray(times, dtype=float)
    best = np.min(t, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(np.isfinite(best), t / best, np.inf)
    return np.where(np.isnan(r), np.inf, r)


def performance_profile(ratios: np.ndarray, taus: Sequence[float]) -> np.ndarray:
    """rho(tau) per optimizer: the fraction of tasks it solved within tau times the best.
    ratios: tasks × optimizers → (len(taus) × optimizers)."""
    r = np.asarray(ratios, dtype=float)
    return np.stack([(r <= tau).mean(axis=0) for tau in taus])


def area_score(ratios: np.ndarray, tau_max: float = 4.0) -> np.ndarray:
    """AlgoPerf's normalised area under the profile, (1/(tau_max-1)) ∫_1^tau_max rho(tau) dtau, in
    [0, 1]. Exact for the step function: a task solved at ratio r adds (tau_max - r)/(tau_max - 1)."""
    r = np.asarray(ratios, dtype=float)
    inside = np.where(r <= tau_max, (tau_max - np.maximum(r, 1.0)) / (tau_max - 1.0), 0.0)
    return inside.mean(axis=0)


def _best_of_k_weights(n: int) -> np.ndarray:
    """W[k-1, i]: probability that the i-th smallest of n values is the minimum of a uniformly
    random k-subset, C(n-1-i, k-1) / C(n, k) (0-based i), computed in log space."""
    k = np.arange(1, n + 1)[:, None]
    i = np.arange(n)[None, :]
    top, bottom = n - 1 - i, k - 1

    def log_comb(a, b):
        ok = (b >= 0) & (b <= a)
        with np.errstate(invalid="ignore"):
            out = gammaln(a + 1) - gammaln(b + 1) - gammaln(np.maximum(a - b, 0) + 1)
        return np.where(ok, out, -np.inf)

    return np.exp(log_comb(top, bottom) - log_comb(np.full_like(k, n), k))


def _expected_best(sorted_values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """E[min of a random k-subset] for k = 1..n; rows of sorted_values are independent sets.
    A missed trial (inf) makes the expectation inf exactly when it can be the best one."""
    miss = np.isinf(sorted_values)
    finite = np.where(miss, 0.0, sorted_values)
    out = finite @ weights.T
    return np.where((miss.astype(float) @ weights.T) > 0, np.inf, out)


def expected_best_after_k(values: Sequence[float]) -> np.ndarray:
    """Expected best (lowest) value after k trials drawn without replacement from these trials,
    k = 1..len(values): the tuning-budget curve (Dodge et al. 2019, but without replacement)."""
    v = np.sort(np.asarray(values, dtype=float))
    return _expected_best(v, _best_of_k_weights(len(v)))


def budget_curve(values: Sequence[float], n_boot: int = N_BOOT, level: float = LEVEL,
                 seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(k, expected best, band lo, band hi): the band resamples the trials with replacement."""
    v = np.asarray(values, dtype=float)
    n = len(v)
    k = np.arange(1, n + 1)
    mean = expected_best_after_k(v)
    if n < 2:
        return k, mean, np.full(n, np.nan), np.full(n, np.nan)
    rng = np.random.default_rng(seed)
    resampled = np.sort(v[rng.integers(0, n, size=(n_boot, n))], axis=1)
    lo, hi = _interval(_expected_best(resampled, _best_of_k_weights(n)), level)
    return k, mean, lo, hi


def mean_rank(cells: Mapping[str, Mapping[str, Sequence[float]]], optimizers: Sequence[str],
              n_boot: int = N_BOOT, level: float = LEVEL, seed: int = 0) -> dict[str, Estimate]:
    """Mean over tasks of each optimizer's rank (1 = best) by median loss; ties share the average
    rank, and an optimizer absent from a task ranks last there. The interval is a stratified
    bootstrap (runs resampled within each task × optimizer cell, as in rliable). n = tasks."""
    tasks = list(cells)
    if not tasks:
        return {o: Estimate(np.nan, np.nan, np.nan, 0) for o in optimizers}
    rng = np.random.default_rng(seed)
    points = np.zeros((len(tasks), len(optimizers)))
    boots = np.zeros((n_boot, len(tasks), len(optimizers)))
    for t, task in enumerate(tasks):
        for o, opt in enumerate(optimizers):
            x = np.asarray(cells[task].get(opt, []), dtype=float)
            if len(x) == 0:
                points[t, o] = boots[:, t, o] = np.inf
                continue
            points[t, o] = median(x, 0)
            boots[:, t, o] = median(x[rng.integers(0, len(x), size=(n_boot, len(x)))], 1)
    ranks = rankdata(points, axis=1).mean(axis=0)
    lo, hi = _interval(rankdata(boots, axis=2).mean(axis=1), level)
    return {opt: Estimate(float(ranks[o]), float(lo[o]), float(hi[o]), len(tasks)) for o, opt in enumerate(optimizers)}
