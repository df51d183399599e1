"""The statistics behind every verdict and interval bench prints. numpy + scipy, deterministic.

Conventions, so that "better" is never ambiguous:
- values are *losses*: lower is better. Callers negate metrics where higher is better.
- a run that missed (diverged, failed, never reached the target) is `+inf`, as in AlgoPerf: it
  ranks below every finite value and ties with other misses. Nothing is ever dropped.

What each number means (each is proven by simulation in tests/test_calibration.py):
- `rank_test`: the exact two-sided permutation test of the Wilcoxon–Mann–Whitney rank sum, with
  mid-ranks for ties (misses included), its null distribution counted exactly (no normal
  approximation, no random permutations). With 3 seeds per side its smallest p is 0.10, so it can
  never decide at 5%: `min_seeds` says how many seeds a family of comparisons needs.
- `holm`: Holm's step-down adjustment; a table of comparisons is one family, and its family-wise
  false-positive rate stays at or below the level.
- `median_ci`: the distribution-free order-statistic interval of a median, with its exact
  binomial coverage; where no pair of order statistics reaches the level, no interval (`needs`).
- `shift_ci` / `ratio_ci`: Hodges–Lehmann shift (difference of final metrics) and the ratio of
  medians (steps or time to target) with the Moses interval from inverting the exact rank test.
- `p_beats_ci`: P(a seed of A beats a seed of B) (ties count half) with Newcombe's score interval
  (Newcombe 2006, method 5), printed from `P_BEATS_MIN_N` seeds per side, where it covers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Mapping, Sequence

import numpy as np
from scipy.special import comb
from scipy.stats import binom, norm

from bench.results.order import median  # noqa: F401  (stats.median: the one median)

LEVEL = 0.95
ALPHA = 1 - LEVEL
#: seeds per side from which Newcombe's interval for P(A beats B) covers (tests/test_calibration.py)
P_BEATS_MIN_N = 5


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its interval, the number of values behind it, the interval's exact
    coverage where it is known (nan otherwise), and, where n is too small for any interval at the
    level asked, how many values per side it needs (`needs` > 0, lo and hi nan)."""

    value: float
    lo: float
    hi: float
    n: int
    coverage: float = math.nan
    needs: int = 0

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.lo) or math.isnan(self.hi))


def percent_down(p: float) -> str:
    """A coverage as a percentage rounded down: 62/64 prints as 96.8%, never as more than it is."""
    return f"{math.floor(p * 1000 + 1e-9) / 10:.1f}%"


def _clean(values: Sequence[float]) -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()
    nan = np.isnan(x)
    # a nan loss is a run that produced no number: a miss
    return np.where(nan, np.inf, x) if nan.any() else x


# --- intervals of one sample's median -------------------------------------------------------------

@lru_cache(maxsize=256)
def _median_order(n: int, level: float) -> tuple[int, float]:
    """(j, coverage): [x_(j), x_(n+1-j)] (1-based) is the narrowest symmetric order-statistic
    interval that covers the median with probability ≥ level; j = 0 when none does."""
    best = (0, math.nan)
    for j in range(1, n // 2 + 1):
        coverage = 1 - 2 * binom.cdf(j - 1, n, 0.5)
        if coverage < level:
            break
        best = (j, float(coverage))
    return best


def seeds_for_median(level: float = LEVEL) -> int:
    """The fewest values whose [min, max] covers the median at `level`: 1 − 2·0.5^n ≥ level."""
    return math.ceil(math.log2(2 / (1 - level)) - 1e-12)


def median_ci(values: Sequence[float], level: float = LEVEL) -> Estimate:
    """The median with its distribution-free interval [x_(j), x_(n+1−j)], j from the binomial
    (Conover, Practical Nonparametric Statistics, §3.2). Covers the population median with
    probability ≥ `coverage` ≥ level for any continuous distribution; misses (+inf) sort last, so
    an upper end of inf says "may be a miss"."""
    x = np.sort(_clean(values))
    n = len(x)
    if n == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, needs=seeds_for_median(level))
    point = float(median(x))
    j, coverage = _median_order(n, level)
    if j == 0:
        return Estimate(point, math.nan, math.nan, n, needs=seeds_for_median(level))
    return Estimate(point, float(x[j - 1]), float(x[n - j]), n, coverage)


# --- the exact rank test ------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _rank_sum_distribution(doubled_ranks: tuple[int, ...], k: int) -> np.ndarray:
    """counts[s]: how many k-subsets of the pooled sample have doubled rank sum s. Mid-ranks are
    multiples of 1/2, so doubled they are integers and the permutation distribution with ties is
    counted exactly (the classic subset-sum recursion)."""
    total = sum(sorted(doubled_ranks)[-k:]) if k else 0
    counts = np.zeros((k + 1, total + 1))
    counts[0, 0] = 1.0
    for r in doubled_ranks:
        # in place on overlapping slices: numpy buffers the right-hand side, so each rank is used once
        counts[1:, r:] += counts[:-1, : total + 1 - r]
    return counts[k]


@lru_cache(maxsize=4096)
def _tails(doubled_ranks: tuple[int, ...], k: int) -> tuple[np.ndarray, np.ndarray]:
    """(P(S ≤ s), P(S ≥ s)) for every doubled rank sum s: cached, so a simulation that meets the
    same tie pattern again pays only for ranking."""
    prob = _rank_sum_distribution(doubled_ranks, k)
    prob = prob / prob.sum()
    return np.cumsum(prob), np.cumsum(prob[::-1])[::-1]


def doubled_midranks(pooled: np.ndarray) -> np.ndarray:
    """2 × the mid-ranks of `pooled` (1-based; a tie group spanning sorted positions i..j gets
    i + j + 2), as integers. Equal to 2 · scipy.stats.rankdata, at a tenth of its cost, which
    matters to the calibration simulations; inf == inf, so misses tie."""
    order = np.argsort(pooled, kind="stable")
    ordered = pooled[order]
    new_group = np.ones(len(pooled), dtype=bool)
    new_group[1:] = ordered[1:] != ordered[:-1]
    starts = np.flatnonzero(new_group)
    ends = np.empty_like(starts)
    ends[:-1], ends[-1] = starts[1:] - 1, len(pooled) - 1
    out = np.empty(len(pooled), dtype=int)
    out[order] = np.repeat(starts + ends + 2, ends - starts + 1)
    return out


def _doubled_ranks(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
    doubled = doubled_midranks(np.concatenate([a, b]))
    return doubled, int(doubled[: len(a)].sum())


def rank_test(a: Sequence[float], b: Sequence[float], alternative: str = "two-sided") -> float:
    """Exact p-value of the Wilcoxon–Mann–Whitney permutation test of A against B (lower is
    better). alternative: "two-sided"; "less" (A tends lower = better than B); "greater".
    Equals scipy.stats.mannwhitneyu(method="exact") without ties and the full-enumeration
    scipy.stats.permutation_test of the rank sum with ties (tests check both to 1e-12)."""
    a, b = _clean(a), _clean(b)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be two-sided, less or greater, not {alternative!r}")
    doubled, observed = _doubled_ranks(a, b)
    below, above = _tails(tuple(sorted(doubled.tolist())), len(a))
    less, greater = float(below[observed]), float(above[observed])
    # two-sided as scipy defines it: twice the smaller tail. With ties the null distribution is not
    # symmetric, and this stays a valid level-alpha test (a union of two alpha/2 tests).
    return {"less": less, "greater": greater}.get(alternative, min(1.0, 2 * min(less, greater)))


def smallest_p(na: int, nb: int, sides: int = 2) -> float:
    """The smallest p-value the exact rank test can give with these sample sizes (no ties)."""
    return min(1.0, sides / comb(na + nb, na, exact=True)) if na and nb else 1.0


def min_seeds(family: int = 1, alpha: float = ALPHA, sides: int = 2) -> int:
    """The fewest seeds per side with which a family of `family` exact rank tests, Holm-adjusted,
    can reject at all: the first Holm step needs family · smallest_p ≤ alpha."""
    n = 1
    while family * smallest_p(n, n, sides) > alpha:
        n += 1
    return n


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (nan stays nan and does not count towards the family)."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = np.flatnonzero(~np.isnan(p))
    m = len(ok)
    order = ok[np.argsort(p[ok], kind="stable")]
    running = 0.0
    for i, idx in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[idx]))
        out[idx] = running
    return out


@dataclass(frozen=True)
class Comparison:
    """A against B within a family: exact p, Holm-adjusted p, and the verdict for A:
    better | worse | not significant | n too small (then `needs` seeds per side would do)."""

    a: str
    b: str
    p: float
    p_adjusted: float
    p_beats: float
    verdict: str
    needs: int = 0


def compare_family(losses: Mapping[str, Sequence[float]], pairs: Sequence[tuple[str, str]],
                   alpha: float = ALPHA) -> list[Comparison]:
    """Every pair in `pairs` tested with `rank_test`, one Holm family. A comparison the family
    could never reject at its n (family size × smallest attainable p > alpha) is `n too small`
    with the seeds per side it needs, unless Holm rejected it anyway after others fell."""
    m = len(pairs)
    raw = [rank_test(losses[a], losses[b]) for a, b in pairs]
    adjusted = holm(raw)
    out = []
    for (a, b), p, q in zip(pairs, raw, adjusted, strict=True):
        beats = p_beats(losses[a], losses[b])
        na, nb = len(losses[a]), len(losses[b])
        if q <= alpha:
            verdict, needs = ("better" if beats > 0.5 else "worse"), 0
        elif m * smallest_p(na, nb) > alpha:
            verdict, needs = "n too small", min_seeds(m, alpha)
        else:
            verdict, needs = "not significant", 0
        out.append(Comparison(a, b, float(p), float(q), beats, verdict, needs))
    return out


# --- effect sizes with intervals --------------------------------------------------------------

def p_beats(a: Sequence[float], b: Sequence[float]) -> float:
    """P(a random seed of A beats a random seed of B), ties (a miss against a miss included)
    counting half: the Mann–Whitney U over na·nb."""
    a, b = _clean(a)[:, None], _clean(b)[None, :]
    if a.size == 0 or b.size == 0:
        return math.nan
    return (int(np.count_nonzero(a < b)) + 0.5 * int(np.count_nonzero(a == b))) / (a.size * b.size)


def _newcombe_interval(theta: float, na: int, nb: int, z: float) -> tuple[float, float]:
    """The t around θ̂ with (θ̂ − t)² ≤ z²·V(t), V Hanley–McNeil's variance at t with N = (na+nb)/2
    (Newcombe 2006, method 5). Times (2 − t)(1 + t) it is a quartic in t: its real roots on each
    side of θ̂ are the bounds (0 or 1 where there is none)."""
    half = (na + nb) / 2
    mul = np.polynomial.polynomial.polymul  # coefficients lowest power first
    guard = np.array([2.0, 1.0, -1.0])  # (2 − t)(1 + t)
    left = mul([theta * theta, -2 * theta, 1.0], guard) * (na * nb)
    right = z * z * mul([0.0, 1.0, -1.0], (2 * half - 1) * guard - [3 * (half - 1), 0.0, 0.0])
    roots = np.roots((left - right)[::-1])
    real = np.sort(roots[np.abs(roots.imag) < 1e-9].real)
    # strict: at an interior θ̂ the quartic is negative; at θ̂ ∈ {0, 1} its root there is trivial
    below, above = real[real < theta - 1e-12], real[real > theta + 1e-12]
    lo = float(below.max()) if len(below) and theta > 0 else 0.0
    hi = float(above.min()) if len(above) and theta < 1 else 1.0
    return max(0.0, min(lo, theta)), min(1.0, max(hi, theta))


def p_beats_ci(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Estimate:
    """P(A beats B) with Newcombe's score interval; none below P_BEATS_MIN_N seeds per side."""
    a, b = _clean(a), _clean(b)
    point = p_beats(a, b)
    n = min(len(a), len(b))
    if n < P_BEATS_MIN_N:
        return Estimate(point, math.nan, math.nan, n, needs=P_BEATS_MIN_N)
    lo, hi = _newcombe_interval(point, len(a), len(b), float(norm.ppf(1 - (1 - level) / 2)))
    return Estimate(point, lo, hi, n)


def _differences(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        d = (a[:, None] - b[None, :]).ravel()
    return np.sort(np.where(np.isnan(d), 0.0, d))  # a miss minus a miss: a tie


@lru_cache(maxsize=1024)
def _u_cdf(na: int, nb: int) -> np.ndarray:
    """P(U ≤ u) for u = 0..na·nb: the exact null distribution of the Mann–Whitney U without ties,
    counted from the rank-sum distribution of 1..na+nb (U = rank sum − na(na+1)/2). The Moses
    interval and the power calculation both read it."""
    counts = _rank_sum_distribution(tuple(range(2, 2 * (na + nb) + 1, 2)), na)
    offset = na * (na + 1)  # doubled rank sum of the smallest possible sample
    u = np.zeros(na * nb + 1)
    for s in np.flatnonzero(counts):
        u[(s - offset) // 2] += counts[s]
    cdf = np.cumsum(u / u.sum())
    cdf.flags.writeable = False  # cached and shared: nobody may change it
    return cdf


@lru_cache(maxsize=1024)
def _moses_order(na: int, nb: int, level: float) -> tuple[int, float]:
    """(k, coverage): [D_(k), D_(na·nb+1−k)] of the sorted pairwise differences is the Moses
    interval, coverage 1 − 2·P(U ≤ k−1) from the exact null distribution of U; k = 0 when even
    [min, max] falls short of the level."""
    cdf = _u_cdf(na, nb)
    best = (0, math.nan)
    for k in range(1, na * nb // 2 + 1):
        coverage = 1 - 2 * cdf[k - 1]
        if coverage < level:
            break
        best = (k, float(coverage))
    return best


def seeds_for_shift(level: float = LEVEL) -> int:
    """The fewest seeds per side (equal sides) for which a Moses interval exists at `level`."""
    n = 1
    while _moses_order(n, n, level)[0] == 0:
        n += 1
    return n


def shift_ci(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Estimate:
    """Hodges–Lehmann shift A − B (median of the pairwise differences) with the Moses interval,
    exact under a location-shift model; misses make differences of ±inf (inf − inf: 0)."""
    a, b = _clean(a), _clean(b)
    if len(a) == 0 or len(b) == 0:
        return Estimate(math.nan, math.nan, math.nan, 0, needs=seeds_for_shift(level))
    d = _differences(a, b)
    point = float(median(d))
    n = min(len(a), len(b))
    k, coverage = _moses_order(len(a), len(b), level)
    if k == 0:
        return Estimate(point, math.nan, math.nan, n, needs=seeds_for_shift(level))
    return Estimate(point, float(d[k - 1]), float(d[len(d) - k]), n, coverage)


def ratio_ci(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Estimate:
    """median(A) / median(B) for positive quantities (steps, seconds), with the Moses interval on
    the log scale: exact under a scale model (A distributed as c·B). Misses are inf on both scales."""
    a, b = _clean(a), _clean(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        point = float(median(a) / median(b)) if len(a) and len(b) else math.nan
        logs = shift_ci(np.log(np.maximum(a, 0)), np.log(np.maximum(b, 0)), level)
    if not logs.has_interval:
        return Estimate(point, math.nan, math.nan, logs.n, needs=logs.needs)
    return Estimate(point, math.exp(logs.lo), math.exp(logs.hi), logs.n, logs.coverage)
