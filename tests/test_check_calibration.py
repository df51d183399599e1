"""The regression gate of `bench check` keeps its promise: a seeded simulation of a 9-cell gate,
judged by `check_rule.compare` (the function `bench check` calls), measures

- the family-wise false-alarm rate: baseline and new seeds drawn from one distribution, the
  fraction of gates in which any cell "regressed" stays at or below alpha = 0.05, for normal,
  log-normal and t(3) seeds, with and without misses, at 3, 5, 6 and 10 seeds;
- the power: with every cell's new seeds one standard deviation worse, the fraction of gates
  that fail rises with the seeds and reaches 0.8 at 10.

Each simulated cell has both quantities the gate tests: a final metric (the kind's draw) and
steps-to-target (evaluated every 4 steps, so with ties), and a seed that misses (+inf) misses both.
"""

import math

import numpy as np
import pytest

from bench.results.check_rule import Cell, compare
from bench.sweep.check_sweep import DEFAULT_TOLERANCE

ALPHA = 0.05
CELLS = 9  # as bench/conf/check/ci.yaml: 18 tests in one family
KINDS = ("normal", "lognormal", "t3")
#: the floors at zero, so that the rank tests and Holm alone are measured (a floor can only turn
#: a "regressed" into a "holds"); the one-step floor of steps-to-target stays, and steps move in 4s
NO_FLOORS = {"rel": 0.0, "abs": 0.0, "steps_rel": 0.0}
SD = 0.05  # the normal seeds' spread around 1: a 5% seed-to-seed spread
#: gates per (n, kind, misses); n = 3 and 5 cannot reject at all, so fewer gates show it
GATES = {3: 25, 5: 25, 6: 100, 10: 100}
POWER_GATES = {3: 25, 5: 25, 6: 100, 10: 150}


def draw(rng: np.random.Generator, kind: str, n: int, miss_rate: float, shift: float = 0.0) -> tuple:
    """n seeds of one cell: (final losses, steps-to-target, status)."""
    if kind == "normal":
        final = 1.0 + SD * rng.standard_normal(n)
    elif kind == "lognormal":
        final = np.exp(0.5 * rng.standard_normal(n))
    else:
        final = 1.0 + SD * rng.standard_t(3, n)
    final = final + shift
    steps = 4.0 * np.ceil(rng.lognormal(math.log(25), 0.2, n))
    missed = rng.random(n) < miss_rate
    final[missed], steps[missed] = math.inf, math.inf
    return final.tolist(), steps.tolist(), ["diverged" if m else "ok" for m in missed]


def sweep(rng, kind, n, miss_rate, shift=0.0) -> dict[str, Cell]:
    cells = {}
    for i in range(CELLS):
        final, steps, status = draw(rng, kind, n, miss_rate, shift)
        cells[f"task{i}/opt"] = Cell(f"task{i}/opt", "loss", "min", list(range(n)), final, final, steps, status)
    return cells


def failure_rate(n, kind, miss_rate, gates, tol, shift=0.0, seed=0) -> float:
    """The fraction of simulated gates with at least one regressed cell."""
    rng = np.random.default_rng([seed, n, KINDS.index(kind), int(miss_rate * 100)])
    failed = 0
    for _ in range(gates):
        base, now = sweep(rng, kind, n, miss_rate), sweep(rng, kind, n, miss_rate, shift)
        gate = compare(base, now, tol, ALPHA)
        assert gate.family == 2 * CELLS
        failed += any(r.verdict == "regressed" for r in gate.rows)
    return failed / gates


def bound(gates: int) -> float:
    """alpha plus three Monte-Carlo standard errors of a rate of alpha measured over `gates`."""
    return ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / gates)


@pytest.mark.parametrize("n", sorted(GATES))
def test_family_wise_false_alarm_rate_is_at_most_alpha(n):
    rates = {(kind, miss): failure_rate(n, kind, miss, GATES[n], NO_FLOORS) for kind in KINDS for miss in (0.0, 0.1)}
    for (kind, miss), rate in rates.items():
        assert rate <= bound(GATES[n]), \
            f"n={n} {kind} misses={miss:.0%}: {rate:.3f} of gates failed under the null, more than " \
            f"alpha + 3 Monte-Carlo SE = {bound(GATES[n]):.3f} ({GATES[n]} gates)"
    pooled, total = float(np.mean(list(rates.values()))), GATES[n] * len(rates)
    assert pooled <= bound(total), f"n={n}: {pooled:.3f} over {total} gates > {bound(total):.3f}"
    if n < 6:
        # 18 × 1/C(2n, n) > 0.05: no outcome at all can fail the gate (it warns instead)
        assert pooled == 0.0


def test_power_rises_with_seeds_and_finds_a_one_sd_regression_at_ten():
    # every cell's new seeds 1 SD (0.05 = 5% of the metric) worse; the default floors (2%) apply
    power = {n: failure_rate(n, "normal", 0.0, gates, DEFAULT_TOLERANCE, shift=SD, seed=1)
             for n, gates in POWER_GATES.items()}
    assert power[3] == power[5] == 0.0, power  # the family cannot reject below 6 seeds
    assert 0.0 < power[6] < power[10], power
    # Monte-Carlo SE of a rate near 0.9 over 150 gates: 0.025
    assert power[10] >= 0.8, power
