"""Descriptive summaries across tasks: AlgoPerf time ratios, performance profiles and their area
score, the expected best value after k tuning trials, and the mean rank over tasks. None of these
carries an interval or a verdict (with a handful of tasks none would cover), so they live apart
from stats.py, whose every number is an exact test or an interval with known coverage; they share
its conventions (losses, lower is better; a miss is +inf and is never dropped).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy.special import gammaln
from scipy.stats import rankdata

from bench.results.stats import median

# --- across tasks (descriptive: no interval) ----------------------------------------------------------

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


def expected_best_after_k(values: Sequence[float]) -> np.ndarray:
    """Expected best (lowest) value after k trials drawn without replacement from these trials,
    k = 1..len(values): the tuning-budget curve (Dodge et al. 2019, but without replacement).
    A missed trial (inf) makes the expectation inf exactly when it can be the best one."""
    v = np.sort(np.asarray(values, dtype=float))
    weights = _best_of_k_weights(len(v))
    miss = np.isinf(v)
    out = np.where(miss, 0.0, v) @ weights.T
    return np.where((miss.astype(float) @ weights.T) > 0, np.inf, out)


def mean_rank(cells: Mapping[str, Mapping[str, Sequence[float]]], optimizers: Sequence[str]) -> dict[str, float]:
    """Mean over tasks of each optimizer's rank (1 = best) by median loss; ties share the average
    rank, and an optimizer absent from a task ranks last there. Descriptive: with a handful of
    tasks no interval on it would cover, so none is given."""
    tasks = list(cells)
    if not tasks:
        return dict.fromkeys(optimizers, math.nan)
    points = np.array([[median(np.asarray(cells[t][o], dtype=float)) if len(cells[t].get(o, [])) else np.inf
                        for o in optimizers] for t in tasks], dtype=float)
    ranks = rankdata(points, axis=1).mean(axis=0)
    return {o: float(ranks[i]) for i, o in enumerate(optimizers)}
