"""`bench tune`: equal-budget quasi-random search, then the winner re-run over fresh seeds.

Every grid point (each optimizer of `optimizer=adamw,lion`, × each task of `task=a,b`) gets the
same number of search runs at scrambled Sobol points of its own `search:` space, in `studies`
independent studies (AlgoPerf reports the median of the per-study bests), then its best point is
re-run with `seeds` fresh seeds. The sweep is resumable: every cell is a run directory keyed by
its config, so launching the same command again skips finished cells, resumes interrupted ones
from their checkpoints and reruns the rest. runs/.sweeps/<id>/manifest.json records the budget,
the search spaces, every cell and the results.
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

from bench import BenchError
from bench.runner import rundir
from bench.runner.checkpoint import has_checkpoint
from bench.runner.validate import validate
from bench.sweep import select
from bench.sweep.launch import HydraSession, run_in_process
from bench.sweep.plan import Budget, Cell, Point, search_cells, seed_cells, sweep_id
from bench.sweep.space import parse_space

OPTIONS = {"trials": 1, "studies": 1, "seeds": 0, "search_seed": 0}  # name → smallest allowed value
FORBIDDEN = {"seed": "one base seed only: study s trains with seed+s, the seeds phase with seed+studies+i",
             "force": "a sweep reuses finished runs; use another runs_root for a fresh sweep"}


def parse_args(args: list[str]) -> tuple[Budget, list[str], list[list[str]]]:
    """(budget, fixed overrides, sweep axes) of a `bench tune` command line."""
    budget: dict[str, int] = {}
    overrides = []
    for arg in args:
        key, eq, value = arg.partition("=")
        if arg.startswith("-") or not eq:
            raise BenchError(f"bench tune takes key=value arguments, got {arg!r}; see `bench tune --help`")
        if key in OPTIONS:
            if not value.isdigit() or int(value) < OPTIONS[key]:
                raise BenchError(f"{key} must be an integer >= {OPTIONS[key]}, got {value!r}")
            budget[key] = int(value)
        else:
            overrides.append(arg)
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise BenchError(f"cannot parse overrides: {str(exc).splitlines()[0]}") from exc
    fixed, axes = [], []
    for ov in parsed:
        key = ov.get_key_element().lstrip("+~")
        if key.startswith("tune.") or key == "tune":
            raise BenchError(f"{key} is set by bench tune itself")
        if ov.is_sweep_override():
            if key in FORBIDDEN:
                raise BenchError(f"cannot sweep {key} in bench tune: {FORBIDDEN[key]}")
            axes.append([f"{key}={v}" for v in ov.sweep_string_iterator()])
        else:
            if key == "force":
                raise BenchError(f"force is not supported by bench tune: {FORBIDDEN['force']}")
            fixed.append(ov.input_line)
    if not any(o.startswith("progress=") for o in fixed):
        fixed.append("progress=off")  # one line per run instead of a progress bar each
    return Budget(**budget), fixed, axes


def _check_not_fixed(space, overrides: list[str], label: str) -> None:
    keys = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    for dim in space:
        full = f"optimizer.{dim.key}"
        clash = [k for k in keys if k.startswith("optimizer.") and (full == k or full.startswith(k + "."))]
        if clash:
            raise BenchError(f"{clash[0]} is searched by bench tune for {label}; drop the override, or narrow "
                             f"optimizer.search.{dim.key}.low/high instead")


def plan_points(session: HydraSession, fixed: list[str], axes: list[list[str]]) -> list[Point]:
    points = []
    for combo in itertools.product(*axes):
        cfg = session.compose([*fixed, *combo])
        validate(cfg)
        label = "/".join(c.split("=", 1)[1] for c in combo) or cfg.optimizer.name
        search = OmegaConf.to_container(cfg.optimizer.get("search"), resolve=True) if cfg.optimizer.get("search") else None
        space = parse_space(search, f"optimizer/{cfg.optimizer.name}.yaml")
        _check_not_fixed(space, [*fixed, *combo], label)
        points.append(Point(list(combo), cfg, space))
    return points


def _finished(summary: dict | None) -> bool:
    return summary is not None and summary.get("status") in rundir.FINISHED


def _read(root: Path, cells: list[Cell], into: dict[str, dict]) -> dict[str, dict]:
    for cell in cells:
        summary = rundir.read_summary(root / cell.run_id)
        if summary is not None:
            into[cell.run_id] = summary
    return into


def _plan_seeds(points: list[Point], search: list[Cell], results: dict, budget: Budget) -> list[Cell] | None:
    """The seeds phase, once every search cell is finished (never from a partial search: that
    would give some points less budget than others)."""
    if not all(_finished(results.get(c.run_id)) for c in search):
        return None
    cells = []
    for index, point in enumerate(points):
        best = select.best_of([c for c in search if c.point == index], results)
        if best is None:
            print(f"warning: {point.label}: no search run finished ok (all diverged or failed); no seeds phase",
                  file=sys.stderr)
            continue
        cells.extend(seed_cells(index, point, best[0], budget))
    return cells


def _progress(root: Path, cells: list[Cell], results: dict, unplanned: int) -> str:
    done = sum(_finished(results.get(c.run_id)) for c in cells)
    resumed = sum(not _finished(results.get(c.run_id)) and has_checkpoint(root / c.run_id) for c in cells)
    return f"{len(cells) + unplanned} cells: {done} done, {resumed} resumed, {len(cells) + unplanned - done - resumed} to run"


def _run_phase(session: HydraSession, cells: list[Cell], points: list[Point], fixed: list[str],
               results: dict, first_index: int) -> None:
    pending = [c for c in cells if not _finished(results.get(c.run_id))]
    if not pending:
        return
    overrides = lambda c: c.overrides(fixed, points[c.point])
    if session.in_process:
        run_in_process(pending, describe=lambda c: f"{points[c.point].label} {c.describe()}", overrides=overrides)
        return
    print(f"launching {len(pending)} runs with hydra/launcher={session.launcher_name}", flush=True)
    for error in session.launch([overrides(c) for c in pending], first_index):
        print(f"warning: a job failed: {error}", file=sys.stderr)


def manifest(sid: str, command: str, budget: Budget, fixed: list[str], points: list[Point], search: list[Cell],
             seeds: list[Cell] | None, results: dict) -> dict[str, Any]:
    out = []
    for index, point in enumerate(points):
        mine = [c for c in search if c.point == index]
        again = [c for c in seeds or [] if c.point == index]
        best = select.best_of(mine, results) if all(_finished(results.get(c.run_id)) for c in mine) else None
        bests = select.study_bests(mine, results, budget.studies)
        seed_values = [v for v in (select.score(results.get(c.run_id)) for c in again) if v is not None]
        sample = next((results[c.run_id] for c in mine if c.run_id in results), {})
        out.append({
            "label": point.label, "overrides": point.overrides, "task": point.cfg.task.name,
            "optimizer": point.cfg.optimizer.name, "metric": sample.get("metric"), "mode": sample.get("mode"),
            "search_space": {d.key: d.describe() for d in point.space},
            "study_best": bests, "median_study_best": select.median(bests),
            "best": {"run_id": best[0].run_id, "params": best[0].params, "value": best[1]} if best else None,
            "seeds": {"run_ids": [c.run_id for c in again], "seeds": [c.seed for c in again],
                      "values": seed_values, **select.spread(seed_values)},
            "cells": [{"run_id": c.run_id, "phase": c.phase, "study": c.study, "trial": c.trial, "seed": c.seed,
                       "params": c.params, "status": (results.get(c.run_id) or {}).get("status"),
                       "value": select.score(results.get(c.run_id))} for c in [*mine, *again]],
        })
    return {"sweep": sid, "command": command, "updated_at": time.time(), "base_overrides": fixed,
            "budget": {**budget.__dict__, "runs_per_point": budget.runs_per_point}, "points": out}


def report(data: dict[str, Any]) -> str:
    rows = [("point", "metric", "median of study bests", "best point", "re-run seeds: median [95% CI]")]
    for p in data["points"]:
        fmt = lambda v: "-" if v is None else f"{v:.4g}"
        best = " ".join(f"{k}={v:.3g}" for k, v in p["best"]["params"].items()) if p["best"] else "-"
        s = p["seeds"]
        seeds = f"{fmt(s['median'])} [{fmt(s['lo'])}, {fmt(s['hi'])}] (n={s['n']})" if s["n"] else "-"
        metric = f"{p['metric']} ({'higher' if p['mode'] == 'max' else 'lower'} is better)"
        rows.append((p["label"], metric, f"{fmt(p['median_study_best'])} (of {len(p['study_best'])})", best, seeds))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"{data['sweep']}: {data['budget']['trials']} trials × {data['budget']['studies']} studies + "
             f"{data['budget']['seeds']} seeds per point"]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def tune(args: list[str]) -> int:
    """Run the sweep; 0 when every cell finished, 1 when some could not (run again to finish)."""
    budget, fixed, axes = parse_args(args)
    from bench.runner.preflight import preflight

    preflight(_preflight_args(fixed, axes))  # one-line errors for unknown groups, options and keys
    session = HydraSession(fixed)
    try:
        return _tune(session, budget, fixed, axes, "bench tune " + " ".join(args))
    finally:
        session.close()


def _preflight_args(fixed: list[str], axes: list[list[str]]) -> list[str]:
    sweeps = [f"{a[0].split('=', 1)[0]}={','.join(x.split('=', 1)[1] for x in a)}" for a in axes]
    return [*fixed, *sweeps]


def _tune(session: HydraSession, budget: Budget, fixed: list[str], axes: list[list[str]], command: str) -> int:
    points = plan_points(session, fixed, axes)
    sid = sweep_id(points, budget)
    root = rundir.ensure_root(Path(points[0].cfg.runs_root))
    sweep_dir = root / ".sweeps" / sid
    sweep_dir.mkdir(parents=True, exist_ok=True)
    session.set_sweep_dir(sweep_dir)
    search = search_cells(points, budget, sid)
    results = _read(root, search, {})
    seeds = _plan_seeds(points, search, results, budget)
    if seeds is not None:
        _read(root, seeds, results)
    unplanned = len(points) * budget.seeds if seeds is None else 0
    where = "in this process" if session.in_process else f"with hydra/launcher={session.launcher_name}"
    print(f"{sid}: {len(points)} point(s) × ({budget.studies} studies × {budget.trials} trials + {budget.seeds} "
          f"seeds), {where}; {sweep_dir / 'manifest.json'}")
    print(_progress(root, [*search, *(seeds or [])], results, unplanned), flush=True)
    save = lambda: rundir.write_json_atomic(sweep_dir / "manifest.json", manifest(
        sid, command, budget, fixed, points, search, seeds, results))
    save()
    try:
        _run_phase(session, search, points, fixed, results, 0)
        _read(root, search, results)
        seeds = _plan_seeds(points, search, results, budget)
        if seeds is None:
            left = sum(not _finished(results.get(c.run_id)) for c in search)
            save()
            print(f"{left} search runs did not finish (running elsewhere or failed to launch); "
                  "run the same command again to finish the sweep", file=sys.stderr)
            return 1
        _read(root, seeds, results)
        _run_phase(session, seeds, points, fixed, results, len(search))
        _read(root, seeds, results)
    except KeyboardInterrupt:
        save()
        print("\ninterrupted: run the same command again to finish (finished runs are kept, interrupted ones "
              "resume from their checkpoints)", file=sys.stderr)
        raise SystemExit(130) from None
    data = manifest(sid, command, budget, fixed, points, search, seeds, results)
    rundir.write_json_atomic(sweep_dir / "manifest.json", data)
    print(report(data))
    missing = sum(not _finished(results.get(c.run_id)) for c in seeds)
    return 1 if missing else 0
