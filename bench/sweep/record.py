"""What a sweep writes and prints about itself: runs/.sweeps/<id>/manifest.json (budget, search
spaces, cells, results, failed runs, each task's comparisons), the report printed at the end, the
progress lines printed along the way, and the cell states they count (finished, settled, failed).
Kept apart from bench/sweep/tune.py, which drives the sweep (arguments, planning, phases, looks),
so that what a sweep records can be read and changed without the machinery that runs it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from bench.results import stats
from bench.runner import rundir
from bench.runner.checkpoint import has_checkpoint
from bench.sweep import auto_seeds, select
from bench.sweep.plan import Budget, Cell, Point


def finished(summary: dict | None) -> bool:
    """Done: a relaunch skips it (ok or diverged)."""
    return rundir.is_finished(summary)


def settled(summary: dict | None) -> bool:
    """Has a result this launch can use: finished, or failed (a miss, retried by the next launch)."""
    return summary is not None and summary.get("status") in rundir.RESULTS


def _failed(cells: list[Cell], results: dict) -> int:
    return sum((results.get(c.run_id) or {}).get("status") == "failed" for c in cells)


def schedule_of(budget: Budget) -> auto_seeds.Schedule:
    """seeds=auto's schedule; a fixed seeds phase is a single look at alpha."""
    return budget.schedule or auto_seeds.Schedule(budget.seeds, budget.seeds, 1)


def progress(root: Path, cells: list[Cell], results: dict, unplanned: int) -> str:
    done = sum(finished(results.get(c.run_id)) for c in cells)
    resumed = sum(not finished(results.get(c.run_id)) and has_checkpoint(root / c.run_id) for c in cells)
    failed = _failed(cells, results)
    retried = f" ({failed} failed before: retried)" if failed else ""
    return (f"{len(cells) + unplanned} cells: {done} done, {resumed} resumed, "
            f"{len(cells) + unplanned - done - resumed} to run{retried}")


def budget_text(budget: Budget, given: Budget) -> str:
    if budget.auto:
        return (f"{budget.seeds} seeds, then +{budget.seed_step} up to {budget.max_seeds} where undecided "
                f"(seeds=auto: {budget.schedule.looks} looks at alpha/{budget.schedule.looks})")
    return f"{budget.seeds} seeds" + (" (default)" if given.seeds is None else "")


def undecided_text(outcomes: dict[str, auto_seeds.Outcome], runs: int) -> str:
    parts = []
    for label, o in outcomes.items():
        undecided = sum(c.verdict in auto_seeds.UNDECIDED for c, _ in o.verdicts.values())
        parts.append(f"{label}: {undecided} of {len(o.verdicts)} undecided after look {o.looks_done}")
    return f"seeds=auto: {runs} more seed runs ({'; '.join(parts)})"


def _families(outcomes: dict[str, auto_seeds.Outcome], plan: auto_seeds.Schedule) -> list[dict[str, Any]]:
    """Each task's comparisons for the manifest, from the look that gave each its verdict (the
    last one it was tested in), with the seeds per side it had there. p_adjusted is Holm's within
    that look times the planned looks: comparable with alpha whatever the number of looks."""
    out, looks = [], plan.looks
    for label, outcome in outcomes.items():
        comparisons = [{"a": c.a, "b": c.b, "verdict": c.verdict, "p": c.p, "p_adjusted": min(1.0, looks * c.p_adjusted),
                        "p_beats": c.p_beats, "needs": c.needs, "look": look + 1, "seeds": plan.size(look)}
                       for c, look in outcome.verdicts.values()]
        out.append({"task": label, "alpha": stats.ALPHA, "looks": looks, "looks_done": outcome.looks_done,
                    "finished": outcome.finished, "seeds": dict(outcome.sizes), "comparisons": comparisons})
    return out


def manifest(sid: str, command: str, budget: Budget, fixed: list[str], points: list[Point], search: list[Cell],
             seeds: list[Cell], results: dict, outcomes: dict[str, auto_seeds.Outcome]) -> dict[str, Any]:
    out = []
    for index, point in enumerate(points):
        mine = [c for c in search if c.point == index]
        again = [c for c in seeds if c.point == index]
        best = select.best_of(mine, results) if all(settled(results.get(c.run_id)) for c in mine) else None
        bests = select.study_bests(mine, results, budget.studies)
        finished = [results[c.run_id] for c in again if settled(results.get(c.run_id))]
        seed_values = [select.score(s) for s in finished]  # None: a miss (diverged or failed)
        sample = next((results[c.run_id] for c in mine if c.run_id in results), {})
        out.append({
            "label": point.label, "overrides": point.overrides, "task": point.cfg.task.name,
            "optimizer": point.cfg.optimizer.name, "metric": sample.get("metric"), "mode": sample.get("mode"),
            "search_space": {d.key: d.describe() for d in point.space},
            "study_best": bests, "median_study_best": select.median(bests),
            "best": {"run_id": best[0].run_id, "params": best[0].params, "value": best[1]} if best else None,
            "seeds": {"run_ids": [c.run_id for c in again], "seeds": [c.seed for c in again],
                      "values": seed_values, **select.spread(seed_values, sample.get("mode"))},
            "cells": [{"run_id": c.run_id, "phase": c.phase, "study": c.study, "trial": c.trial, "seed": c.seed,
                       "params": c.params, "status": (results.get(c.run_id) or {}).get("status"),
                       "value": select.score(results.get(c.run_id))} for c in [*mine, *again]],
        })
    return {"sweep": sid, "command": command, "updated_at": time.time(), "base_overrides": fixed,
            "failed": [c.run_id for c in [*search, *seeds] if (results.get(c.run_id) or {}).get("status") == "failed"],
            "search": budget.search, "budget": {**budget.spec(), "runs_per_point": budget.runs_per_point}, "points": out,
            "families": _families(outcomes, schedule_of(budget))}


def _fmt(value: float | None) -> str:
    return "miss" if value is None else f"{value:.4g}"


def _seeds_text(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "-"
    misses = f", {s['misses']} missed" if s["misses"] else ""
    if s["needs"]:
        return f"{_fmt(s['median'])} (n={s['n']}{misses}; interval: n too small (needs ≥ {s['needs']}))"
    return f"{_fmt(s['median'])} [{_fmt(s['lo'])}, {_fmt(s['hi'])}] (n={s['n']}{misses}, covers {stats.percent_down(s['coverage'])})"


def _verdict_text(c: dict[str, Any]) -> str:
    if c["verdict"] in ("better", "worse"):
        return f"{c['a']} {c['verdict']} than {c['b']} (p_adj {c['p_adjusted']:.2g}, look {c['look']}, {c['seeds']} seeds)"
    if c["verdict"] == "n too small":
        return f"{c['a']} vs {c['b']}: n too small (needs ≥ {c['needs']} seeds)"
    return f"{c['a']} vs {c['b']}: not significant (p_adj {c['p_adjusted']:.2g}, {c['seeds']} seeds)"


def report(data: dict[str, Any]) -> str:
    rows = [("point", "metric", "median of study bests", "best point", "re-run seeds: median [95% CI]")]
    for p in data["points"]:
        fmt = lambda v: "-" if v is None else f"{v:.4g}"
        best = " ".join(f"{k}={v:.3g}" for k, v in p["best"]["params"].items()) if p["best"] else "-"
        metric = f"{p['metric']} ({'higher' if p['mode'] == 'max' else 'lower'} is better)"
        rows.append((p["label"], metric, f"{fmt(p['median_study_best'])} (of {len(p['study_best'])})", best,
                     _seeds_text(p["seeds"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    b = data["budget"]
    seeds = (f"{b['initial_seeds']} seeds, up to {b['max_seeds']} where undecided (seeds=auto)" if b["seeds"] == "auto"
             else f"{b['seeds']} seeds")
    lines = [f"{data['sweep']}: {b['trials']} {data.get('search', 'sobol')} trials × {b['studies']} studies + {seeds} per point"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    for fam in data["families"]:
        if not fam["comparisons"]:
            continue
        looks = f"; {fam['looks']} looks planned, each at {fam['alpha'] / fam['looks']:.3g}" if fam["looks"] > 1 else ""
        state = "" if fam["finished"] else f" (after look {fam['looks_done']}: not finished, run again)"
        lines.append(f"  {fam['task']}: {len(fam['comparisons'])} comparison(s), one Holm family at "
                     f"{fam['alpha']:g}{looks}{state}")
        lines += [f"    {_verdict_text(c)}" for c in fam["comparisons"]]
    return "\n".join(lines)
