"""Reading a phase's results: a cell's score, each study's best, the point to re-run.

A cell's score is its run's final value of the task's metric. Runs that diverged or failed have
no score: they still count against the budget (they were tried), they just cannot win. Where
seeds are compared, such a run is a miss: a loss of +inf, never dropped (`loss`).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench.results import order
from bench.results.order import better
from bench.sweep.plan import Cell


def score(summary: dict[str, Any] | None) -> float | None:
    if not summary or summary.get("status") != "ok":
        return None
    value = (summary.get("final") or {}).get(summary.get("metric"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def best_of(cells: list[Cell], results: dict[str, dict]) -> tuple[Cell, float] | None:
    best: tuple[Cell, float] | None = None
    for cell in cells:
        summary = results.get(cell.run_id)
        value = score(summary)
        if value is not None and better(value, best[1] if best else None, summary.get("mode", "min")):
            best = (cell, value)
    return best


def study_bests(cells: list[Cell], results: dict[str, dict], studies: int) -> list[float | None]:
    """Each study's best score (AlgoPerf reports the median of these)."""
    out = []
    for study in range(studies):
        found = best_of([c for c in cells if c.study == study], results)
        out.append(found[1] if found else None)
    return out


def median(values: list[float | None]) -> float | None:
    finite = [v for v in values if v is not None]
    return order.median(finite) if finite else None


def loss(summary: dict[str, Any] | None) -> float:
    """The run's final metric as a loss (negated where higher is better); +inf for a miss."""
    value = score(summary)
    if value is None:
        return math.inf
    return -value if summary.get("mode") == "max" else value


def spread(values: list[float | None], mode: str | None) -> dict[str, Any]:
    """The seeds' median with its distribution-free 95% interval (`stats.median_ci`, exact
    coverage), as the leaderboard computes it; `needs` > 0 where n is too small for one. Values
    are final metrics, None for a miss, which counts as the worst value (never dropped); a median
    or bound that is a miss is None, `misses` says how many there were. Mean and SD of the
    finite values are descriptive."""
    from bench.results import stats

    sign = -1.0 if mode == "max" else 1.0
    est = stats.median_ci([math.inf if v is None else sign * v for v in values])
    back = lambda x: sign * x if math.isfinite(x) else None
    finite = [v for v in values if v is not None]
    lo, hi = (est.hi, est.lo) if sign < 0 else (est.lo, est.hi)
    return {"n": len(values), "misses": len(values) - len(finite), "median": back(est.value),
            "lo": back(lo) if est.has_interval else None, "hi": back(hi) if est.has_interval else None,
            "coverage": est.coverage if est.has_interval else None, "needs": est.needs,
            "mean": statistics.fmean(finite) if finite else None,
            "std": statistics.stdev(finite) if len(finite) > 1 else None}
