"""Every statistic against a case small enough to work out by hand (the working is in comments)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bench.results import stats
from bench.results.stats import Estimate

INF = math.inf


# --- bootstrap intervals ---------------------------------------------------------------------

def test_bootstrap_median_of_two_values_covers_both():
    # Resampled medians of [0, 1] are 0 (p=1/4), 0.5 (p=1/2), 1 (p=1/4): the 2.5% point is 0 and
    # the 97.5% point is 1, so the 95% interval is [0, 1] around the median 0.5.
    assert stats.bootstrap([0.0, 1.0]) == Estimate(0.5, 0.0, 1.0, 2)


def test_bootstrap_median_of_three_values():
    # Medians of 3 draws from {0, 1, 2}: P(0) = P(at least two 0s) = 3·(1/3)²·(2/3) + (1/3)³ = 7/27,
    # P(2) = 7/27, P(1) = 13/27; both tails exceed 2.5%, so the interval is [0, 2].
    assert stats.bootstrap([2.0, 0.0, 1.0]) == Estimate(1.0, 0.0, 2.0, 3)


def test_bootstrap_constant_values_give_a_zero_width_interval():
    assert stats.bootstrap([3.0] * 5) == Estimate(3.0, 3.0, 3.0, 5)


def test_bootstrap_single_value_has_no_interval_and_empty_has_nothing():
    one = stats.bootstrap([0.7])
    assert (one.value, one.n) == (0.7, 1) and math.isnan(one.lo) and math.isnan(one.hi)
    assert stats.bootstrap([]).n == 0 and math.isnan(stats.bootstrap([]).value)


def test_bootstrap_is_seeded():
    values = np.random.default_rng(1).normal(size=12)
    assert stats.bootstrap(values, seed=3) == stats.bootstrap(values, seed=3)
    e = stats.bootstrap(values, stat=np.mean)
    assert e.lo < values.mean() < e.hi
    assert values.min() <= e.lo and e.hi <= values.max()


def test_bootstrap_counts_misses_as_infinite():
    # Two of three runs missed: the median run missed, and so does the upper end of the interval.
    e = stats.bootstrap([1.0, INF, INF])
    assert e.value == INF and e.lo == 1.0 and e.hi == INF
    # One of three missed: the median is the larger finite value, the interval still reaches inf.
    e = stats.bootstrap([1.0, 2.0, INF])
    assert e.value == 2.0 and e.lo == 1.0 and e.hi == INF


# --- probability of improvement and the ranking rule -----------------------------------------

def test_probability_of_improvement_counts_pairs():
    # Lower is better. Pairs (a, b): (1,1.5) win, (1,3) win, (2,1.5) loss, (2,3) win → 3/4.
    assert stats.probability_of_improvement([1.0, 2.0], [1.5, 3.0]).value == 0.75
    # Equal values and two misses are ties, each worth a half.
    assert stats.probability_of_improvement([1.0, 1.0], [1.0, 1.0]).value == 0.5
    assert stats.probability_of_improvement([INF], [INF]).value == 0.5
    # A miss loses to any finite value.
    assert stats.probability_of_improvement([5.0], [INF]).value == 1.0


def test_clear_separation_is_better_and_worse_overlap_is_a_tie():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0]
    p = stats.probability_of_improvement(a, b)
    # Every resample of a is below every resample of b: P = 1 in all of them.
    assert p == Estimate(1.0, 1.0, 1.0, 3)
    assert stats.verdict(p) == "better"
    assert stats.verdict(stats.probability_of_improvement(b, a)) == "worse"
    overlap = stats.probability_of_improvement([1.0, 3.0, 5.0], [2.0, 4.0, 6.0])
    assert overlap.value == pytest.approx(6 / 9)  # wins: 1<2,4,6; 3<4,6; 5<6
    assert stats.verdict(overlap) == "tie"


def test_verdict_needs_an_interval():
    assert stats.verdict(Estimate(1.0, math.nan, math.nan, 1)) == "tie"
    assert stats.verdict(Estimate(0.9, 0.51, 1.0, 5)) == "better"
    assert stats.verdict(Estimate(0.1, 0.0, 0.49, 5)) == "worse"
    assert stats.verdict(Estimate(0.8, 0.5, 1.0, 5)) == "tie"  # touching 1/2 is not enough


# --- performance profiles and the area score --------------------------------------------------

TIMES = np.array([[1.0, 2.0, INF],    # task 1: opt0 fastest, opt1 twice as slow, opt2 missed
                  [INF, INF, INF],    # task 2: nobody reached the target
                  [2.0, 1.0, 4.0]])   # task 3: opt1 fastest; opt0 ×2, opt2 ×4


def test_time_ratios():
    expected = np.array([[1, 2, INF], [INF, INF, INF], [2, 1, 4]], dtype=float)
    np.testing.assert_array_equal(stats.time_ratios(TIMES), expected)


def test_performance_profile_fractions():
    rho = stats.performance_profile(stats.time_ratios(TIMES), [1.0, 2.0, 3.9, 4.0])
    np.testing.assert_allclose(rho, [[1 / 3, 1 / 3, 0], [2 / 3, 2 / 3, 0], [2 / 3, 2 / 3, 0], [2 / 3, 2 / 3, 1 / 3]])


def test_area_score_is_the_exact_integral():
    # opt0: ratios 1, 2, inf → (4-1)/3 + (4-2)/3 + 0 = 5/3 over 3 tasks = 5/9; opt1 the same.
    # opt2: ratios inf, inf, 4 → a task solved only at tau = tau_max adds no area → 0.
    np.testing.assert_allclose(stats.area_score(stats.time_ratios(TIMES)), [5 / 9, 5 / 9, 0.0])
    # cross-check against a fine numerical integral of the profile
    taus = np.linspace(1, 4, 3001)  # grid step 1e-3 bounds the trapezoid error on a step function
    rho = stats.performance_profile(stats.time_ratios(TIMES), taus)
    np.testing.assert_allclose(np.trapezoid(rho, taus, axis=0) / 3, [5 / 9, 5 / 9, 0.0], atol=2e-3)


# --- expected best after k trials ---------------------------------------------------------------

def test_expected_best_after_k_by_hand():
    # Trials 3, 1, 2. k=1: mean = 2. k=2: subsets {3,1},{3,2},{1,2} → minima 1, 2, 1 → 4/3. k=3: 1.
    np.testing.assert_allclose(stats.expected_best_after_k([3.0, 1.0, 2.0]), [2.0, 4 / 3, 1.0])
    # With a missed trial: k=1 may draw it (inf); k=2 minima 1, 1, 2 → 4/3; k=3 → 1.
    np.testing.assert_allclose(stats.expected_best_after_k([1.0, INF, 2.0]), [INF, 4 / 3, 1.0])


def test_expected_best_after_k_matches_enumeration_with_ties():
    values = [0.5, 0.2, 0.9, 0.2, 0.7, 0.4]
    for k, got in enumerate(stats.expected_best_after_k(values), 1):
        minima = [min(c) for c in itertools.combinations(values, k)]
        assert got == pytest.approx(sum(minima) / len(minima))


def test_budget_curve_band_surrounds_the_curve():
    k, mean, lo, hi = stats.budget_curve([0.3, 0.1, 0.5, 0.2, 0.4])
    assert list(k) == [1, 2, 3, 4, 5]
    assert np.all(np.diff(mean) <= 0) and mean[0] == pytest.approx(0.3) and mean[-1] == pytest.approx(0.1)
    assert np.all(lo <= mean + 1e-12) and np.all(mean <= hi + 1e-12)
    k, mean, lo, hi = stats.budget_curve([0.3])
    assert list(mean) == [0.3] and np.isnan(lo).all()


# --- mean rank ------------------------------------------------------------------------------

def test_mean_rank_by_hand():
    # task a: x (1) beats y (2); task b: y (1) beats x (3); z never ran, so it ranks last (3) twice.
    cells = {"a": {"x": [1.0, 1.0], "y": [2.0, 2.0]}, "b": {"x": [3.0, 3.0], "y": [1.0, 1.0]}}
    ranks = stats.mean_rank(cells, ["x", "y", "z"])
    assert ranks["x"] == Estimate(1.5, 1.5, 1.5, 2)
    assert ranks["y"] == Estimate(1.5, 1.5, 1.5, 2)
    assert ranks["z"] == Estimate(3.0, 3.0, 3.0, 2)


def test_mean_rank_ties_share_the_average_and_noise_widens_the_interval():
    tied = stats.mean_rank({"a": {"x": [1.0], "y": [1.0], "z": [2.0]}}, ["x", "y", "z"])
    assert (tied["x"].value, tied["y"].value, tied["z"].value) == (1.5, 1.5, 3.0)
    noisy = stats.mean_rank({"a": {"x": [1.0, 3.0, 1.0, 3.0], "y": [2.0, 2.0, 2.0, 2.0]}}, ["x", "y"])
    assert noisy["x"].lo == 1.0 and noisy["x"].hi == 2.0
