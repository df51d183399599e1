"""The rule `bench check` applies: each cell (task × optimizer over seeds) against its baseline,
every cell of a sweep judged within one family of tests.

Values are oriented as in the results store: lower is better, and a miss (a diverged or failed
run, a target never reached) is +inf and takes part in the ranks, tied with other misses. For
each cell the final metric and steps-to-target are each tested with the one-sided exact
Wilcoxon–Mann–Whitney rank test, `stats.rank_test(now, baseline, "greater")`: do the new seeds
tend to be worse? The 2 × cells p-values are Holm-adjusted as one family, so when nothing changed
but the random draws, the whole gate fails with probability ≤ alpha (tests/test_check_calibration.py
measures it). A quantity regresses when its adjusted p ≤ alpha and its median moved the wrong
way by more than a practical floor:

    floor = max(rel · |median(baseline)|, abs)            final metric
    floor = max(steps_rel · |median(baseline)|, 1 step)   steps-to-target

The floors keep a difference that is real but negligible (the last bits of float noise on
deterministic runs, a 0.1% drift that many seeds can resolve) from failing CI. The same test the
other way ("less", its own Holm family) reports an improvement, which never fails. With few
seeds no test can reach alpha at all (family × smallest attainable p > alpha): such a cell is
`n too small` and says how many seeds per side the family needs (`stats.min_seeds`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from bench.results import power, stats
from bench.results.stats import median

FAILING = ("regressed", "missing", "changed")
#: steps-to-target never counts a change smaller than one step
STEP_FLOOR = 1.0
#: the detectable regression is the one found this often
POWER = 0.8


def _losses(xs: Sequence[float]) -> np.ndarray:
    x = np.asarray(xs, dtype=float)
    return np.where(np.isnan(x), np.inf, x)  # as stats does: a nan is a run without a number, a miss


def floor_of(baseline: Sequence[float], rel: float, abs_floor: float) -> float:
    """The smallest median change that counts: rel · |median(baseline)|, at least abs_floor."""
    b = median(baseline)
    return max(rel * abs(b) if math.isfinite(b) else 0.0, abs_floor)


@dataclass(frozen=True)
class Judgement:
    """One quantity of one cell (final metric or steps-to-target) against its baseline."""

    verdict: str  # holds | regressed | improved | n too small
    baseline: float  # oriented medians
    now: float
    floor: float
    p_worse: float  # Holm-adjusted p of "the new seeds tend to be worse"
    p_better: float  # the same for "better", in its own family

    @property
    def change(self) -> float:
        return 0.0 if self.now == self.baseline else self.now - self.baseline  # inf − inf: no change


def judge_family(cases: Sequence[tuple[Sequence[float], Sequence[float], float]], alpha: float) -> list[Judgement]:
    """Judge (baseline, now, floor) cases — oriented losses, misses +inf — as one family: a one-sided
    exact rank test each way, Holm-adjusted over all cases, and the floor on the median change."""
    m = len(cases)
    worse = stats.holm([stats.rank_test(now, base, "greater") for base, now, _ in cases])
    better = stats.holm([stats.rank_test(now, base, "less") for base, now, _ in cases])
    out = []
    for (base, now, floor), q_worse, q_better in zip(cases, worse, better, strict=True):
        b, n = median(base), median(now)
        change = 0.0 if n == b else n - b
        if q_worse <= alpha and change > floor:
            verdict = "regressed"
        elif q_better <= alpha and change < -floor:
            verdict = "improved"
        elif m * stats.smallest_p(len(base), len(now), sides=1) > alpha:
            verdict = "n too small"  # no outcome of these seeds could have reached alpha
        else:
            verdict = "holds"
        out.append(Judgement(verdict, b, n, floor, float(q_worse), float(q_better)))
    return out


def rule_text(tol: dict[str, float], alpha: float, family: int) -> str:
    return (f"rule: each cell's final metric and steps-to-target (a miss counts as never) are tested against the "
            f"baseline seeds with a one-sided exact Wilcoxon–Mann–Whitney rank test, the {family} p-values "
            f"Holm-adjusted as one family at alpha {alpha:g} (so a change that only reshuffles random draws fails "
            f"the gate with probability ≤ {alpha:g}); a cell regresses when its adjusted p ≤ {alpha:g} and its "
            f"median is worse by more than max({tol['rel']:.0%} of |baseline|, {tol['abs']:g}) for the metric or "
            f"max({tol['steps_rel']:.0%} of baseline, 1 step) for steps-to-target; the same test the other way is "
            "an improvement, which never fails")


@dataclass
class Row:
    label: str
    metric: str
    mode: str
    verdict: str  # holds | holds (identical) | improved | regressed | n too small (...) | missing | new | changed
    final: Judgement | None = None
    steps: Judgement | None = None
    misses: tuple[str, str] = ("", "")  # (baseline, now) as "k/n"
    notes: list[str] = field(default_factory=list)
    seeds: tuple[int, int] = (0, 0)  # (baseline, now)
    spread: float = math.nan  # robust SD of the baseline's final metric
    detectable: float = math.nan  # the regression of the final metric found with POWER, in its units
    can_reject: bool = True  # False: at these seeds no outcome could reach alpha
    identical: bool = False

    @property
    def failing(self) -> bool:
        return self.verdict in FAILING


@dataclass
class Cell:
    """One task × optimizer over its seeds. `losses` and `steps` are oriented: lower is better,
    a miss is +inf (the results store's convention)."""

    label: str
    metric: str
    mode: str
    seeds: list[int]
    values: list[float]  # the final metric as reported
    losses: list[float]
    steps: list[float]
    status: list[str]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    budget: int | None = None

    def to_json(self) -> dict[str, Any]:
        finite = lambda xs: [x if math.isfinite(x) else None for x in xs]  # JSON has no inf
        sign = -1.0 if self.mode == "max" else 1.0
        return {"metric": self.metric, "mode": self.mode, "seeds": self.seeds, "final": finite(self.values),
                "steps_to_target": finite(self.steps), "status": self.status,
                "hyperparameters": self.hyperparameters, "steps": self.budget,
                # for readers of the file; the check recomputes both from the per-seed lists
                "median_final": finite([sign * median(self.losses)])[0],
                "median_steps_to_target": finite([median(self.steps)])[0]}

    @classmethod
    def from_json(cls, label: str, data: dict[str, Any]) -> "Cell":
        sign = -1.0 if data["mode"] == "max" else 1.0
        values = [math.nan if v is None else float(v) for v in data["final"]]
        losses = [sign * v if s == "ok" and math.isfinite(v) else math.inf for v, s in zip(values, data["status"], strict=True)]
        steps = [math.inf if s is None else float(s) for s in data["steps_to_target"]]
        return cls(label, data["metric"], data["mode"], list(data["seeds"]), values, losses, steps,
                   list(data["status"]), dict(data.get("hyperparameters") or {}), data.get("steps"))


def _bad(cell: Cell) -> tuple[int, int]:
    return sum(s != "ok" for s in cell.status), len(cell.status)


def identical(base: Cell, now: Cell) -> bool:
    """Every seed's final metric, steps-to-target and status bit for bit as in the baseline."""
    same = lambda a, b: len(a) == len(b) and bool(np.array_equal(_losses(a), _losses(b)))
    return base.seeds == now.seeds and base.status == now.status and same(base.losses, now.losses) \
        and same(base.steps, now.steps)


def _setting_notes(base: Cell, now: Cell) -> list[str]:
    notes = []
    keys = sorted(set(base.hyperparameters) | set(now.hyperparameters))
    changed = [f"{k} {base.hyperparameters.get(k)} → {now.hyperparameters.get(k)}" for k in keys
               if base.hyperparameters.get(k) != now.hyperparameters.get(k)]
    if changed:
        notes.append("hyperparameters changed: " + ", ".join(changed))
    if base.budget and now.budget and base.budget != now.budget:
        notes.append(f"steps {base.budget} → {now.budget}")
    if base.seeds != now.seeds:
        notes.append(f"seeds {base.seeds} → {now.seeds}")
    return notes


def _quantity_notes(name: str, j: Judgement, alpha: float) -> list[str]:
    if j.verdict in ("regressed", "improved"):
        p = j.p_worse if j.verdict == "regressed" else j.p_better
        word = "worse" if j.verdict == "regressed" else "better"
        return [f"{name} {word} (p {p:.2g} after Holm), beyond the floor ±{j.floor:.3g}"]
    if j.p_worse <= alpha:
        return [f"{name} worse (p {j.p_worse:.2g} after Holm) but its median moved less than the floor {j.floor:.3g}"]
    return []


def _cell_row(base: Cell, now: Cell, final: Judgement, steps: Judgement, gate: "Gate") -> Row:
    same = identical(base, now)
    (bb, bn), (nb, nn) = _bad(base), _bad(now)
    notes = ["bit-identical to the baseline"] if same else []
    notes += _quantity_notes(now.metric, final, gate.alpha) + _quantity_notes("steps-to-target", steps, gate.alpha)
    if nn and bn and nb / nn > bb / bn:  # reported; the rank test (misses rank last) decides
        kinds = sorted({s for s in now.status if s != "ok"})
        notes.append(f"{nb}/{nn} seeds {'/'.join(kinds)} (baseline {bb}/{bn})")
    notes += _setting_notes(base, now)
    verdicts = {final.verdict, steps.verdict}
    can_reject = gate.family * stats.smallest_p(len(base.losses), len(now.losses), sides=1) <= gate.alpha
    if "regressed" in verdicts:
        verdict = "regressed"
    elif "improved" in verdicts:
        verdict = "improved"
    elif same:
        verdict = "holds (identical)"
    elif "n too small" in verdicts:
        verdict = f"n too small (needs ≥ {gate.needs} seeds)"
    else:
        verdict = "holds"
    spread = power.spread(base.losses)
    shift = power.detectable_shift(len(base.losses), len(now.losses), gate.test_level, POWER)
    detectable = shift if math.isinf(shift) else shift * spread  # inf: no regression is ever found
    return Row(now.label, now.metric, now.mode, verdict, final, steps, (f"{bb}/{bn}", f"{nb}/{nn}"), notes,
               (len(base.losses), len(now.losses)), spread, detectable, can_reject, same)


@dataclass
class Gate:
    """Every row of one check, and the family its tests were judged in."""

    rows: list[Row]
    alpha: float
    family: int  # tests judged together: final metric and steps-to-target of each compared cell
    tol: dict[str, float]

    @property
    def needs(self) -> int:
        """Seeds per side with which this family can reject at all."""
        return stats.min_seeds(self.family, self.alpha, sides=1) if self.family else 0

    @property
    def test_level(self) -> float:
        """A one-sided test at alpha/family (Holm's first step) is a two-sided one at twice that."""
        return min(1.0, 2 * self.alpha / self.family) if self.family else self.alpha

    def rule(self) -> str:
        return rule_text(self.tol, self.alpha, self.family)

    def warning(self, where: str = "the sweep") -> str | None:
        """One line where some compared cell has too few seeds for any outcome to reach alpha."""
        weak = [r for r in self.rows if r.final is not None and not r.can_reject]
        if not weak:
            return None
        judged = sum(r.final is not None for r in self.rows)
        nb, nn = Counter(r.seeds for r in weak).most_common(1)[0][0]
        return (f"warning: {len(weak)} of {judged} cells cannot fail at {nb} baseline / {nn} new seeds "
                f"({self.family} tests at alpha {self.alpha:g}: even the clearest regression stays above it); "
                + _fix(self.needs, where))

    def power(self) -> str | None:
        """The regression the gate finds with probability POWER, in baseline standard deviations."""
        judged = [r for r in self.rows if r.final is not None]
        if not judged:
            return None
        nb, nn = Counter(r.seeds for r in judged).most_common(1)[0][0]
        shift = power.detectable_shift(nb, nn, self.test_level, POWER)
        level = (f"power: at {nb} baseline / {nn} new seeds a cell's test runs at alpha/{self.family} "
                 f"= {self.alpha / self.family:.2g} one-sided")
        if math.isinf(shift):
            return f"{level} and cannot find a regression of any size"
        return (f"{level} and finds a regression of {shift:.2g} baseline SDs (normal seeds) {POWER:.0%} of the "
                "time; the `detectable` column gives it in each cell's units")


def _fix(needs: int, where: str) -> str:
    return (f"the gate needs ≥ {needs} seeds per side: set `seeds:` in {where} to {needs} seeds "
            "and rewrite the baseline with --update")


def sweep_warning(cells: int, seeds: int, alpha: float, where: str) -> str | None:
    """The same warning for a sweep before it has a baseline: can `cells` cells at `seeds` seeds
    per side ever fail?"""
    family = 2 * cells
    if not cells or family * stats.smallest_p(seeds, seeds, sides=1) <= alpha:
        return None
    return (f"warning: at {seeds} seeds per cell no cell can ever fail ({family} tests at alpha {alpha:g}); "
            + _fix(stats.min_seeds(family, alpha, sides=1), where))


def compare(baseline: dict[str, Cell], current: dict[str, Cell], tol: dict[str, float], alpha: float) -> Gate:
    """One row per cell in either side, sorted by label; the cells in both form one family."""
    labels = sorted(set(baseline) | set(current))
    both = [label for label in labels if label in baseline and label in current
            and (baseline[label].metric, baseline[label].mode) == (current[label].metric, current[label].mode)]
    pairs = [(baseline[label], current[label]) for label in both]
    cases = [(b.losses, c.losses, floor_of(b.losses, tol["rel"], tol["abs"])) for b, c in pairs]
    cases += [(b.steps, c.steps, floor_of(b.steps, tol["steps_rel"], STEP_FLOOR)) for b, c in pairs]
    judgements = judge_family(cases, alpha)
    gate = Gate([], alpha, len(cases), tol)
    judged = {label: (*pairs[i], judgements[i], judgements[len(pairs) + i]) for i, label in enumerate(both)}
    for label in labels:
        if label in judged:
            gate.rows.append(_cell_row(*judged[label], gate))
        elif label not in current:
            b = baseline[label]
            gate.rows.append(Row(label, b.metric, b.mode, "missing", notes=["in the baseline but not in these results"]))
        elif label not in baseline:
            c = current[label]
            gate.rows.append(Row(label, c.metric, c.mode, "new", notes=["not in the baseline; --update adds it"]))
        else:
            b, c = baseline[label], current[label]
            gate.rows.append(Row(c.label, c.metric, c.mode, "changed",
                                 notes=[f"metric {b.metric} ({b.mode}) → {c.metric} ({c.mode}); update the baseline"]))
    return gate


COLUMNS = ("cell", "metric", "baseline", "now", "change (floor)", "p worse", "detectable", "steps to target",
           "misses", "verdict", "why")


def _raw(x: float, mode: str) -> float:
    return -x if mode == "max" and math.isfinite(x) else x


def _num(x: float) -> str:
    return "miss" if not math.isfinite(x) else f"{x:.4g}"


def row_cells(row: Row) -> list[str]:
    """The row as text, in COLUMNS order, metric values as reported (not oriented)."""
    if row.final is None:
        return [row.label, row.metric, "", "", "", "", "", "", "", row.verdict, "; ".join(row.notes)]
    f, s = row.final, row.steps
    spread = f" ± {row.spread:.2g}" if math.isfinite(row.spread) and row.spread > 0 else ""
    change = _raw(f.change, row.mode) + 0.0 if math.isfinite(f.change) else f.change  # + 0.0: no "-0"
    sign = "+" if change > 0 else ""
    detectable = "never" if row.detectable == math.inf else "" if math.isnan(row.detectable) \
        else f"{row.detectable:.2g}"
    return [row.label, row.metric, _num(_raw(f.baseline, row.mode)) + spread, _num(_raw(f.now, row.mode)),
            f"{sign}{change:.3g} ({f.floor:.2g})" if math.isfinite(change) else "miss", f"{f.p_worse:.2g}",
            detectable, f"{_num(s.baseline)} → {_num(s.now)} (p {s.p_worse:.2g})",
            f"{row.misses[0]} → {row.misses[1]}", row.verdict, "; ".join(row.notes)]
