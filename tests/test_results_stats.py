"""Every statistic against a case small enough to work out by hand (the working is in comments),
and against scipy.stats where both compute the same thing (to 1e-12)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from bench.results import stats
from bench.results.stats import Estimate

INF = math.inf


# --- medians: order-statistic intervals ---------------------------------------------------------

def test_median_interval_by_hand():
    # n = 6: [x_(1), x_(6)] covers the median unless all six fall on one side: 1 − 2·(1/2)^6 = 62/64.
    e = stats.median_ci([6.0, 1.0, 5.0, 2.0, 4.0, 3.0])
    assert e == Estimate(3.5, 1.0, 6.0, 6, 62 / 64)
    # n = 5: even [min, max] covers with only 1 − 2/32 = 93.75% < 95%: no interval, 6 seeds needed.
    e = stats.median_ci([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (e.value, e.needs, e.has_interval) == (3.0, 6, False)
    assert stats.seeds_for_median() == 6


def test_median_interval_equals_scipy_quantile_test():
    rng = np.random.default_rng(0)
    for n in (6, 7, 10, 13, 20, 50):
        x = rng.normal(size=n)
        ours = stats.median_ci(x)
        theirs = scipy.stats.quantile_test(x, q=np.median(x), p=0.5).confidence_interval(0.95)
        assert (ours.lo, ours.hi) == (theirs.low, theirs.high)
        j = int(np.searchsorted(np.sort(x), ours.lo)) + 1  # 1-based order of the lower end
        assert ours.coverage == pytest.approx(1 - 2 * scipy.stats.binom.cdf(j - 1, n, 0.5), abs=1e-12)


def test_median_counts_misses_as_infinite():
    # Four of seven runs missed: the median run missed, and so may the upper end.
    e = stats.median_ci([1.0, 2.0, 3.0, INF, INF, INF, INF])
    assert e.value == INF and e.lo == 1.0 and e.hi == INF
    e = stats.median_ci([1.0, 2.0, 3.0, 4.0, 5.0, math.nan])  # nan: a run with no number, a miss
    assert e.value == 3.5 and e.hi == INF


# --- the exact rank test, Holm, and how many seeds a family needs ---------------------------------

def test_rank_test_equals_scipy_mannwhitneyu_exact_without_ties():
    rng = np.random.default_rng(1)
    for na, nb in ((3, 3), (4, 7), (5, 5), (10, 10), (12, 9), (20, 20)):
        a, b = rng.normal(size=na), rng.normal(size=nb) + 0.7
        for alternative in ("two-sided", "less", "greater"):
            theirs = scipy.stats.mannwhitneyu(a, b, method="exact", alternative=alternative).pvalue
            assert stats.rank_test(a, b, alternative) == pytest.approx(theirs, abs=1e-12, rel=0)


def _rank_sum(x, y, axis):
    pooled = np.concatenate([x, y], axis=axis)
    return scipy.stats.rankdata(pooled, axis=axis)[..., : x.shape[axis]].sum(axis=axis)


@pytest.mark.parametrize("a,b", [
    ([1.0, 2.0, INF, 2.0, 5.0], [2.0, INF, INF, 3.0, 3.0, 0.5]),  # ties and misses on both sides
    ([INF, INF, INF], [1.0, 2.0, 3.0, 4.0]),                          # every seed of A missed
    ([1.0, 1.0, 1.0, 2.0], [1.0, 2.0, 2.0, 2.0, INF]),               # heavy ties
])
def test_rank_test_with_ties_equals_scipy_full_permutation_test(a, b):
    for alternative in ("two-sided", "less", "greater"):
        theirs = scipy.stats.permutation_test((np.array(a), np.array(b)), _rank_sum, permutation_type="independent",
                                              alternative=alternative, n_resamples=np.inf, vectorized=True).pvalue
        assert stats.rank_test(a, b, alternative) == pytest.approx(theirs, abs=1e-12, rel=0)


def test_midranks_equal_scipy_rankdata():
    x = np.array([3.0, 1.0, INF, 2.0, 2.0, INF, 0.5, 2.0])
    np.testing.assert_array_equal(stats.doubled_midranks(x), 2 * scipy.stats.rankdata(x))


def test_three_seeds_per_side_can_never_reach_five_percent():
    # The most extreme split of 3 vs 3 has probability 1/C(6,3) = 1/20 per tail: p ≥ 0.10.
    assert stats.smallest_p(3, 3) == pytest.approx(0.1)
    assert stats.rank_test([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.1)
    # 7 optimizers against AdamW (7 tests) need 6 seeds each; all 21 pairs of 7 as well; 28 pairs 7.
    assert [stats.min_seeds(m) for m in (1, 3, 6, 7, 21, 28)] == [4, 5, 5, 6, 6, 7]
    assert stats.min_seeds(18, sides=1) == 6


def test_holm_by_hand():
    # sorted p 0.01, 0.03, 0.04 → ×3, ×2, ×1 = 0.03, 0.06, 0.04 → running max 0.03, 0.06, 0.06
    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03, math.nan]), [0.03, 0.06, 0.06, math.nan])
    assert list(stats.holm([0.5, 0.9])) == [1.0, 1.0]


def test_compare_family_verdicts():
    losses = {"a": [1, 2, 3, 4, 5, 6], "b": [7, 8, 9, 10, 11, 12], "c": [1, 2, 3], "d": [6.5, 7.5, 8.5, 9.5, 10.5, 11.5]}
    family = {(c.a, c.b): c for c in stats.compare_family(losses, [("a", "b"), ("c", "b"), ("a", "c"), ("b", "d")])}
    assert family[("a", "b")].verdict == "better" and family[("a", "b")].p_adjusted <= 0.05
    assert family[("a", "b")].p_adjusted == pytest.approx(4 * 2 / 924)  # smallest of four: × 4
    # 3 vs 6 seeds: smallest p 2/84 = 0.024, × 4 in this family > 0.05 — it can never be decided;
    # a family of 4 needs 5 seeds per side (4 · 2/C(10,5) = 0.032)
    assert (family[("a", "c")].verdict, family[("a", "c")].needs) == ("n too small", 5)
    assert family[("b", "d")].verdict == "not significant"


# --- effect sizes ----------------------------------------------------------------------------------

def test_p_beats_counts_pairs_and_equals_scipy_u():
    # Lower is better. Pairs (a, b): (1,1.5) win, (1,3) win, (2,1.5) loss, (2,3) win → 3/4.
    assert stats.p_beats([1.0, 2.0], [1.5, 3.0]) == 0.75
    assert stats.p_beats([1.0, 1.0], [1.0, 1.0]) == 0.5  # ties count half
    assert stats.p_beats([INF], [INF]) == 0.5 and stats.p_beats([5.0], [INF]) == 1.0
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=7).round(1), rng.normal(size=9).round(1)  # rounding makes ties
    u = scipy.stats.mannwhitneyu(b, a).statistic  # U of b counts b > a plus half the ties
    assert stats.p_beats(a, b) == pytest.approx(u / 63, abs=1e-12)


def test_p_beats_interval_is_newcombes_score_interval():
    # At θ̂ = 1 the lower bound solves (1 − t)² = z²·V(t); check it satisfies the equation.
    e = stats.p_beats_ci([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    t, z, half = e.lo, scipy.stats.norm.ppf(0.975), 5
    v = t * (1 - t) / 25 * ((2 * half - 1) - 3 * (half - 1) / ((2 - t) * (1 + t)))
    assert (e.value, e.hi) == (1.0, 1.0) and (1 - t) ** 2 == pytest.approx(z * z * v, rel=1e-9)
    assert 0.5 < e.lo < 0.8
    assert stats.p_beats_ci([1, 2, 3, 4], [5, 6, 7, 8]).needs == stats.P_BEATS_MIN_N  # 4 per side: none


def test_shift_interval_is_the_moses_interval():
    # 4 vs 4: U ≤ 0 has probability 1/70; k = 1 gives coverage 1 − 2/70, k = 2 would give
    # 1 − 2·2/70 = 0.943 < 0.95. So the interval is [min, max] of the 16 differences.
    a, b = [1.0, 2.0, 3.0, 4.0], [2.0, 3.0, 4.0, 5.0]
    e = stats.shift_ci(a, b)
    d = sorted(x - y for x in a for y in b)
    assert (e.value, e.lo, e.hi, e.coverage) == (float(np.median(d)), -4.0, 2.0, pytest.approx(68 / 70))
    assert stats.shift_ci([1.0, 2.0, 3.0], [2.0, 3.0, 4.0]).needs == 4  # 3 vs 3: no 95% interval
    # the interval is where the exact test does not reject: just inside, p > 0.05; outside, p ≤ 0.05
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=10), rng.normal(size=10)
    e = stats.shift_ci(a, b)
    assert stats.rank_test(a - (e.lo + 1e-9), b) > 0.05 and stats.rank_test(a - (e.lo - 1e-6), b) <= 0.05


def test_ratio_of_medians():
    e = stats.ratio_ci([10, 20, 30, 40, 50], [20, 40, 60, 80, 100])
    assert e.value == 0.5 and e.lo < 0.5 < e.hi
    assert stats.ratio_ci([10, 20, INF, INF, INF], [1, 2, 3, 4, 5]).value == INF
