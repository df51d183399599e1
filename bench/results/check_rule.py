"""The rule `bench check` applies to one cell (task × optimizer over seeds) against its baseline.

Values are oriented as in the results store: lower is better, a miss is +inf. For the final
metric and for steps-to-target alike:

    change    = median(now) − median(baseline)
    tolerance = max(k · 1.4826 · MAD(baseline seeds), rel · |median(baseline)|, abs)
    regressed when change > tolerance, improved when change < −tolerance, else it holds.

The MAD (median absolute deviation, scaled to a standard deviation) is robust to one diverged
seed; the floors keep a cell whose seeds agree exactly (deterministic CPU runs) from failing on
the last bits of float noise. Steps-to-target use `steps_rel` and a floor of one step. Separately,
a larger fraction of seeds that diverged or failed than in the baseline is a regression.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

MAD_TO_SD = 1.4826
FAILING = ("regressed", "missing", "changed")


@dataclass(frozen=True)
class Judgement:
    verdict: str  # holds | regressed | improved
    baseline: float  # oriented medians
    now: float
    spread: float  # 1.4826 · MAD of the baseline seeds
    tolerance: float

    @property
    def change(self) -> float:
        return 0.0 if self.now == self.baseline else self.now - self.baseline


def median(xs: list[float]) -> float:
    return float(np.median(xs)) if len(xs) else math.nan


def spread(xs: list[float]) -> float:
    """1.4826 · median absolute deviation; 0 when the median itself is a miss (no scale)."""
    m = median(xs)
    if not math.isfinite(m):
        return 0.0
    return MAD_TO_SD * median([abs(x - m) for x in xs])


def judge(baseline: list[float], now: list[float], k: float, rel: float, floor: float) -> Judgement:
    b, n, s = median(baseline), median(now), spread(baseline)
    tol = max(k * s, rel * abs(b) if math.isfinite(b) else 0.0, floor)
    change = 0.0 if n == b else n - b  # inf - inf (both missed) is no change
    verdict = "regressed" if change > tol else "improved" if change < -tol else "holds"
    return Judgement(verdict, b, n, s, tol)


def rule_text(tol: dict[str, float]) -> str:
    return (f"rule: a cell regresses when its median over seeds is worse than the baseline median by more than "
            f"max({tol['k']:g} × 1.4826·MAD of the baseline seeds, {tol['rel']:.0%} of |baseline|, {tol['abs']:g}) "
            f"for the final metric, or max({tol['k']:g} × 1.4826·MAD, {tol['steps_rel']:.0%}, 1 step) for "
            "steps-to-target (a miss counts as never), or when more of its seeds diverge or fail; "
            "the same margin the other way is an improvement")


@dataclass
class Row:
    label: str
    metric: str
    mode: str
    verdict: str  # holds | improved | regressed | missing | new | changed
    final: Judgement | None = None
    steps: Judgement | None = None
    misses: tuple[str, str] = ("", "")  # (baseline, now) as "k/n"
    notes: list[str] = field(default_factory=list)

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


def compare_cell(base: Cell, now: Cell, tol: dict[str, float]) -> Row:
    if base.metric != now.metric or base.mode != now.mode:
        return Row(now.label, now.metric, now.mode, "changed",
                   notes=[f"metric {base.metric} ({base.mode}) → {now.metric} ({now.mode}); update the baseline"])
    final = judge(base.losses, now.losses, tol["k"], tol["rel"], tol["abs"])
    steps = judge(base.steps, now.steps, tol["k"], tol["steps_rel"], 1.0)
    (bb, bn), (nb, nn) = _bad(base), _bad(now)
    more_misses = nn and bn and nb / nn > bb / bn
    notes = []
    if final.verdict != "holds":
        notes.append(f"{now.metric} {final.verdict} beyond ±{final.tolerance:.3g}")
    if steps.verdict != "holds":
        notes.append(f"steps-to-target {steps.verdict} beyond ±{steps.tolerance:.3g}")
    if more_misses:
        kinds = sorted({s for s in now.status if s != "ok"})
        notes.append(f"{nb}/{nn} seeds {'/'.join(kinds)} (baseline {bb}/{bn})")
    notes += _setting_notes(base, now)
    verdicts = {final.verdict, steps.verdict}
    verdict = "regressed" if "regressed" in verdicts or more_misses else "improved" if "improved" in verdicts \
        else "holds"
    return Row(now.label, now.metric, now.mode, verdict, final, steps, (f"{bb}/{bn}", f"{nb}/{nn}"), notes)


def compare(baseline: dict[str, Cell], current: dict[str, Cell], tol: dict[str, float]) -> list[Row]:
    """One row per cell in either side, sorted by label."""
    rows = []
    for label in sorted(set(baseline) | set(current)):
        if label not in current:
            b = baseline[label]
            rows.append(Row(label, b.metric, b.mode, "missing", notes=["in the baseline but not in these results"]))
        elif label not in baseline:
            c = current[label]
            rows.append(Row(label, c.metric, c.mode, "new", notes=["not in the baseline; --update adds it"]))
        else:
            rows.append(compare_cell(baseline[label], current[label], tol))
    return rows


COLUMNS = ("cell", "metric", "baseline", "now", "change (tolerance)", "steps to target", "misses", "verdict", "why")


def _raw(x: float, mode: str) -> float:
    return -x if mode == "max" and math.isfinite(x) else x


def _num(x: float) -> str:
    return "miss" if not math.isfinite(x) else f"{x:.4g}"


def row_cells(row: Row) -> list[str]:
    """The row as text, in COLUMNS order, metric values as reported (not oriented)."""
    if row.final is None:
        return [row.label, row.metric, "", "", "", "", "", row.verdict, "; ".join(row.notes)]
    f, s = row.final, row.steps
    spread = f" ± {f.spread:.2g}" if f.spread else ""
    change = _raw(f.change, row.mode) + 0.0 if math.isfinite(f.change) else f.change  # + 0.0: no "-0"
    sign = "+" if change > 0 else ""
    return [row.label, row.metric, _num(_raw(f.baseline, row.mode)) + spread, _num(_raw(f.now, row.mode)),
            f"{sign}{change:.3g} (±{f.tolerance:.2g})" if math.isfinite(change) else "miss",
            f"{_num(s.baseline)} → {_num(s.now)}", f"{row.misses[0]} → {row.misses[1]}", row.verdict,
            "; ".join(row.notes)]
