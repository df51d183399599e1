"""How many fresh seeds `bench tune` re-runs: the fixed default, and `seeds=auto`, which adds seeds
only to optimizers whose comparisons are still undecided. Pure: losses in, decisions out, so the
procedure can be simulated without training anything (tests/test_auto_seeds.py).

A task's table is judged as one Holm family of all k(k−1)/2 pairs of its k optimizers, each pair by
the exact two-sided rank test (`stats.compare_family`).

Default seeds: max(min_seeds(k(k−1)/2), seeds_for_median()) per point, i.e. the fewest with which
the family can reject at all *and* each median gets a 95% interval (the leaderboard prints one
only from 6 seeds): 6 for up to 7 optimizers per task, 7 for 8 to 13, 8 for 14 to 24.

`seeds=auto`, on one task. Planned sizes n_j = min(n_0 + j·step, cap), j = 0 .. L−1, so the
planned number of looks L = 1 + ⌈(cap − n_0) / step⌉ is fixed before any seed runs.
  look j  the pairs not yet decided form one Holm family, tested at alpha/L on each optimizer's
          first n_j seeds. A pair that is rejected is decided for good (better / worse).
  grow    every optimizer in an undecided pair gets `step` more seeds (never beyond the cap), and
          the next look follows. The procedure stops when no undecided pair can grow: every pair
          is decided, or the undecided ones are at the cap.
n_0 is the fewest seeds, from the fixed default up, with which the first look can reject at
alpha/L, so no look spends its share of alpha where it could never use it.

Why the family-wise error stays at or below alpha over all looks (Bonferroni over the L planned
looks, made exact by the schedule):
- A pair still undecided at look j was undecided at every earlier look, so both its optimizers
  grew at each of them: its sizes at look j are (n_j, n_j), fixed in advance. Its exact rank test
  at look j is therefore exact under "no difference", whatever happened to the other pairs.
- Let m0 be the number of true nulls. Before the first false rejection only false nulls leave the
  family, so at the look j where a true null is first rejected all m0 are still in it, and Holm
  rejects a true null first only with p ≤ (alpha/L)/m0 (Holm's argument). That is inside
  E_j = {some true null's p at (n_j, n_j) ≤ alpha/(L·m0)}, P(E_j) ≤ alpha/L, and
  P(any false rejection) ≤ Σ_j P(E_j) ≤ alpha.
- The leaderboard re-judges the final seeds as one Holm family of all pairs at alpha/L (each
  seeds-phase run records L as `tune.looks`). A true null it rejects was either rejected by the
  procedure, or undecided to the end and so at sizes (cap, cap) = n_{L−1}: inside E_{L−1}. Its
  family-wise error is at most alpha too.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from bench.results import stats

UNDECIDED = ("not significant", "n too small")
Family = Callable[..., list[stats.Comparison]]


def default_seeds(optimizers: int, alpha: float = stats.ALPHA) -> int:
    """Seeds per point when `seeds=` is not given, for `optimizers` compared on each task."""
    return max(stats.min_seeds(family_size(optimizers), alpha), stats.seeds_for_median())


def family_size(optimizers: int) -> int:
    return optimizers * (optimizers - 1) // 2


@dataclass(frozen=True)
class Schedule:
    """The planned seeds per optimizer at each look: n_j = min(initial + j·step, cap)."""

    initial: int
    cap: int
    step: int

    @property
    def looks(self) -> int:
        return 1 + max(0, math.ceil((self.cap - self.initial) / self.step))

    def size(self, look: int) -> int:
        return min(self.initial + look * self.step, self.cap)


def schedule(optimizers: int, cap: int, step: int, floor: int | None = None, alpha: float = stats.ALPHA) -> Schedule:
    """The schedule of `seeds=auto`: from `floor` (default: `default_seeds`) up, the fewest initial
    seeds with which the first look's family can reject at alpha/L. Needs cap ≥ floor."""
    floor = default_seeds(optimizers, alpha) if floor is None else floor
    m = family_size(optimizers)
    for initial in range(floor, cap + 1):
        plan = Schedule(initial, cap, step)
        if m == 0 or stats.min_seeds(m, alpha / plan.looks) <= initial:
            return plan
    raise ValueError(f"cap {cap} is below the floor {floor}")  # callers check the cap first


@dataclass
class Outcome:
    """The looks done on one task. `sizes`: the seeds each optimizer has at the current look;
    `finished` False means the next look needs `sizes` seeds that are not all there yet.
    `verdicts`: every pair's latest comparison (its p_adjusted is within that look's family, at
    alpha/L) and the look it comes from."""

    sizes: dict[str, int]
    finished: bool
    looks_done: int
    verdicts: dict[tuple[str, str], tuple[stats.Comparison, int]] = field(default_factory=dict)

    def decided(self) -> list[tuple[str, str]]:
        return [pair for pair, (c, _) in self.verdicts.items() if c.verdict not in UNDECIDED]


def pairs_of(names: Sequence[str]) -> list[tuple[str, str]]:
    return list(itertools.combinations(names, 2))


def run_looks(losses: Mapping[str, Sequence[float]], plan: Schedule, alpha: float = stats.ALPHA,
              family: Family = stats.compare_family) -> Outcome:
    """Replay the looks on the seeds there are (losses in seed order: lower is better, a miss is
    +inf), up to the first look whose seeds are missing. Deterministic, so a resumed sweep
    continues exactly where the seeds on disk leave it. `family` is `stats.compare_family` or an
    equivalent (the simulation passes a faster one, checked against it)."""
    names = list(losses)
    undecided = pairs_of(names)
    sizes = dict.fromkeys(names, plan.initial)
    out = Outcome(sizes, finished=False, looks_done=0)
    level = alpha / plan.looks
    for look in range(plan.looks):
        if any(len(losses[o]) < sizes[o] for o in names):
            return out
        sample = {o: np.asarray(losses[o], dtype=float)[: sizes[o]] for o in names}
        for c in family(sample, undecided, level) if undecided else []:
            out.verdicts[(c.a, c.b)] = (c, look)
        out.looks_done = look + 1
        undecided = [p for p in undecided if out.verdicts[p][0].verdict in UNDECIDED]
        grow = {o for pair in undecided for o in pair if sizes[o] < plan.cap}
        if not grow:
            break
        for o in grow:  # an undecided pair's optimizers grew at every look: both are at n_look
            sizes[o] = plan.size(look + 1)
    out.finished = True
    return out
