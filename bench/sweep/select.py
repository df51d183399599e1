"""Reading a phase's results: a cell's score, each study's best, the point to re-run.

A cell's score is its run's final value of the task's metric. Runs that diverged or failed have
no score: they still count against the budget (they were tried), they just cannot win.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench.sweep.plan import Cell


def score(summary: dict[str, Any] | None) -> float | None:
    if not summary or summary.get("status") != "ok":
        return None
    value = (summary.get("final") or {}).get(summary.get("metric"))
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _better(a: float, b: float | None, mode: str) -> bool:
    return b is None or (a > b if mode == "max" else a < b)


def best_of(cells: list[Cell], results: dict[str, dict]) -> tuple[Cell, float] | None:
    best: tuple[Cell, float] | None = None
    for cell in cells:
        summary = results.get(cell.run_id)
        value = score(summary)
        if value is not None and _better(value, best[1] if best else None, summary.get("mode", "min")):
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
    return statistics.median(finite) if finite else None


def spread(values: list[float]) -> dict[str, Any]:
    """The seeds' median with its 95% bootstrap interval (as the leaderboard computes it), plus
    mean and standard deviation; None where undefined (no values; an interval of one value)."""
    from bench.results.stats import bootstrap

    if not values:
        return {"n": 0, "median": None, "lo": None, "hi": None, "mean": None, "std": None}
    est = bootstrap(values)
    finite = lambda x: x if math.isfinite(x) else None
    return {"n": len(values), "median": finite(est.value), "lo": finite(est.lo), "hi": finite(est.hi),
            "mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
