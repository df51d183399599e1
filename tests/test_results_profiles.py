"""The descriptive across-task summaries (time ratios, performance profiles, area score, expected
best after k trials, mean rank) against cases small enough to work out by hand, and against brute
enumeration or numerical integration where one exists."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from bench.results import profiles

INF = math.inf


# --- performance profiles and the area score --------------------------------------------------

TIMES = np.array([[1.0, 2.0, INF],    # task 1: opt0 fastest, opt1 twice as slow, opt2 missed
                  [INF, INF, INF],    # task 2: nobody reached the target
                  [2.0, 1.0, 4.0]])   # task 3: opt1 fastest; opt0 ×2, opt2 ×4


def test_time_ratios():
    expected = np.array([[1, 2, INF], [INF, INF, INF], [2, 1, 4]], dtype=float)
    np.testing.assert_array_equal(profiles.time_ratios(TIMES), expected)


def test_performance_profile_fractions():
    rho = profiles.performance_profile(profiles.time_ratios(TIMES), [1.0, 2.0, 3.9, 4.0])
    np.testing.assert_allclose(rho, [[1 / 3, 1 / 3, 0], [2 / 3, 2 / 3, 0], [2 / 3, 2 / 3, 0], [2 / 3, 2 / 3, 1 / 3]])


def test_area_score_is_the_exact_integral():
    # opt0: ratios 1, 2, inf → (4-1)/3 + (4-2)/3 + 0 = 5/3 over 3 tasks = 5/9; opt1 the same.
    # opt2: ratios inf, inf, 4 → a task solved only at tau = tau_max adds no area → 0.
    np.testing.assert_allclose(profiles.area_score(profiles.time_ratios(TIMES)), [5 / 9, 5 / 9, 0.0])
    # cross-check against a fine numerical integral of the profile
    taus = np.linspace(1, 4, 3001)  # grid step 1e-3 bounds the trapezoid error on a step function
    rho = profiles.performance_profile(profiles.time_ratios(TIMES), taus)
    np.testing.assert_allclose(np.trapezoid(rho, taus, axis=0) / 3, [5 / 9, 5 / 9, 0.0], atol=2e-3)


# --- expected best after k trials ---------------------------------------------------------------

def test_expected_best_after_k_by_hand():
    # Trials 3, 1, 2. k=1: mean = 2. k=2: subsets {3,1},{3,2},{1,2} → minima 1, 2, 1 → 4/3. k=3: 1.
    np.testing.assert_allclose(profiles.expected_best_after_k([3.0, 1.0, 2.0]), [2.0, 4 / 3, 1.0])
    # With a missed trial: k=1 may draw it (inf); k=2 minima 1, 1, 2 → 4/3; k=3 → 1.
    np.testing.assert_allclose(profiles.expected_best_after_k([1.0, INF, 2.0]), [INF, 4 / 3, 1.0])


def test_expected_best_after_k_matches_enumeration_with_ties():
    values = [0.5, 0.2, 0.9, 0.2, 0.7, 0.4]
    for k, got in enumerate(profiles.expected_best_after_k(values), 1):
        minima = [min(c) for c in itertools.combinations(values, k)]
        assert got == pytest.approx(sum(minima) / len(minima))


# --- mean rank ------------------------------------------------------------------------------

def test_mean_rank_by_hand():
    # task a: x (1) beats y (2); task b: y (1) beats x (3); z never ran, so it ranks last (3) twice.
    cells = {"a": {"x": [1.0, 1.0], "y": [2.0, 2.0]}, "b": {"x": [3.0, 3.0], "y": [1.0, 1.0]}}
    assert profiles.mean_rank(cells, ["x", "y", "z"]) == {"x": 1.5, "y": 1.5, "z": 3.0}
    tied = profiles.mean_rank({"a": {"x": [1.0], "y": [1.0], "z": [2.0]}}, ["x", "y", "z"])
    assert tied == {"x": 1.5, "y": 1.5, "z": 3.0}
