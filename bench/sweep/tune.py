"""`bench tune`: equal-budget quasi-random search, then the winner re-run over fresh seeds.

Every grid point (each optimizer of `optimizer=adamw,lion`, × each task of `task=a,b`) gets the
same number of search runs at scrambled Sobol points of its own `search:` space, in `studies`
independent studies (AlgoPerf reports the median of the per-study bests), then its best point is
re-run with `seeds` fresh seeds. The sweep is resumable: every cell is a run directory keyed by
its config, so launching the same command again skips finished cells, resumes interrupted ones
from their checkpoints and reruns the rest. A failed run (a crash, or settings its optimizer
rejects) is a miss for this launch, which goes on, counts it and exits 1; the next launch
retries it, once. runs/.sweeps/<id>/manifest.json records the budget, the search spaces, every
cell, the results and the failed runs.

Seeds. Without `seeds=`, each point is re-run with the fewest seeds with which a task's table can
give verdicts and intervals: max(min_seeds(k(k−1)/2), 6) for k optimizers per task, i.e. enough
for one Holm family of all k(k−1)/2 exact rank tests to reject at all, and at least the 6 from
which a median gets a 95% interval (6 seeds up to 7 optimizers, 7 for 8 to 13). An explicit `seeds=N`
is kept as given (a sweep started with seeds=3 resumes as it was), with a warning where N is too
few for any verdict. `seeds=auto` starts there and adds `seed_step` (default 4) seeds to both
optimizers of every comparison still undecided, up to `max_seeds` (default 20), testing each look
at alpha/L for the L looks it plans (bench/sweep/auto_seeds.py has the procedure and why it keeps
the family-wise error at alpha); its seeds-phase runs record L as `tune.looks`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
from pathlib import Path

from omegaconf import OmegaConf

from bench import BenchError
from bench.config import semantic_config
from bench.results import stats
from bench.runner import rundir
from bench.runner.validate import validate
from bench.sweep import auto_seeds, record, select
from bench.sweep import search as searching
from bench.sweep.launch import HydraSession, run_in_process
from bench.sweep.plan import Budget, Cell, Point, seed_cells, sweep_id
from bench.sweep.space import parse_space
from bench.sweep.tune_args import parse_args


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


def _read(root: Path, cells: list[Cell], into: dict[str, dict]) -> dict[str, dict]:
    for cell in cells:
        summary = rundir.read_summary(root / cell.run_id)
        if summary is not None:
            into[cell.run_id] = summary
        else:  # e.g. a failed run being retried elsewhere: its old summary is gone
            into.pop(cell.run_id, None)
    return into


def tasks_of(points: list[Point]) -> dict[str, list[int]]:
    """Point indices per task, grouped as the leaderboard groups runs into one table: the task with
    its settings and its step budget. Keyed by a label: the task's name, plus the values of the
    other non-optimizer axes where there are any."""
    groups: dict[str, list[int]] = {}
    labels: dict[str, str] = {}
    for index, point in enumerate(points):
        key = json.dumps([semantic_config(point.cfg).get("task"), point.cfg.steps], sort_keys=True, default=str)
        rest = [o for o in point.overrides if not o.startswith(("optimizer", "task="))]
        labels.setdefault(key, str(point.cfg.task.name) + (f"[{','.join(rest)}]" if rest else ""))
        groups.setdefault(key, []).append(index)
    return {labels[k]: v for k, v in groups.items()}


def _names(points: list[Point], members: list[int]) -> dict[int, str]:
    """What a point is called in its task's comparisons: its optimizer, or its label where the
    grid has several points of one optimizer on the task."""
    names = {i: str(points[i].cfg.optimizer.name) for i in members}
    return names if len(set(names.values())) == len(names) else {i: points[i].label for i in members}


def resolve_budget(budget: Budget, points: list[Point], tasks: dict[str, list[int]]) -> Budget:
    """The seeds per point: as given, or the default for the number of optimizers compared on each
    task (auto_seeds.default_seeds), or seeds=auto's first look."""
    per_task = {label: {str(points[i].cfg.optimizer.name) for i in members} for label, members in tasks.items()}
    k = max(len(names) for names in per_task.values())
    family, default = auto_seeds.family_size(k), auto_seeds.default_seeds(k)
    if budget.auto:
        for label, members in tasks.items():
            if len(members) > len(per_task[label]):
                raise BenchError(f"seeds=auto compares one point per optimizer on each task, but {label} has "
                                 f"{len(members)} points of {len(per_task[label])} optimizer(s); sweep only optimizer "
                                 "and the task, one seeds=auto command per value of the other axes")
        if budget.max_seeds < default:
            raise BenchError(f"max_seeds={budget.max_seeds} is below the {default} seeds seeds=auto starts from with "
                             f"{k} optimizer(s) per task; raise max_seeds to at least {default}")
        return dataclasses.replace(budget, seeds=auto_seeds.schedule(k, budget.max_seeds, budget.seed_step).initial)
    if budget.seeds is None:
        return dataclasses.replace(budget, seeds=default)
    needed = stats.min_seeds(family)
    if family and 0 < budget.seeds < needed:
        which = f"any of the {family} comparisons" if family > 1 else "the comparison"
        print(f"warning: seeds={budget.seeds} cannot decide {which} per task: the exact two-sided test needs "
              f"{needed} seeds per optimizer (the default, {default}, also gives median intervals)", file=sys.stderr)
    return budget


def _bests(points: list[Point], search: list[Cell], results: dict, budget: Budget) -> dict[int, Cell] | None:
    """Each point's best search cell, once every search cell has a result (never from a partial
    search: that would give some points less budget than others). A point whose every search run
    diverged or failed has none, and no seeds phase."""
    if not searching.complete(search, points, budget) or not all(record.settled(results.get(c.run_id)) for c in search):
        return None
    out = {}
    for index in range(len(points)):
        best = select.best_of([c for c in search if c.point == index], results)
        if best is not None:
            out[index] = best[0]
    return out


def _losses(cells: list[Cell], results: dict) -> list[float]:
    """The losses of the seeds finished so far, in seed order, up to the first unfinished one (a
    look takes each optimizer's first n seeds, never a later seed in place of a missing one)."""
    out = []
    for cell in cells:
        summary = results.get(cell.run_id)
        if not record.settled(summary):
            break
        out.append(select.loss(summary))
    return out


def _seeds(points: list[Point], tasks: dict[str, list[int]], bests: dict[int, Cell], budget: Budget,
           root: Path, results: dict) -> tuple[list[Cell], dict[str, auto_seeds.Outcome]]:
    """The seeds phase as far as the runs on disk take it, and each task's comparisons: `seeds`
    cells per point; under seeds=auto, also the seeds that the looks replayed on the finished runs
    ask for (so a relaunch continues the looks where they stopped)."""
    if not budget.seeds:
        return [], {}
    plan = record.schedule_of(budget)
    counts = dict.fromkeys(bests, budget.seeds)
    while True:
        cells = {i: seed_cells(i, points[i], bests[i], budget, counts[i]) for i in bests}
        _read(root, [c for mine in cells.values() for c in mine], results)
        outcomes, wanted = {}, dict(counts)
        for label, members in tasks.items():
            names = _names(points, [i for i in members if i in cells])
            outcome = auto_seeds.run_looks({name: _losses(cells[i], results) for i, name in names.items()}, plan)
            outcomes[label] = outcome
            wanted.update({i: max(counts[i], outcome.sizes[name]) for i, name in names.items()})
        if wanted == counts:
            return [c for i in sorted(cells) for c in cells[i]], outcomes
        counts = wanted


def _run_phase(session: HydraSession, cells: list[Cell], points: list[Point], fixed: list[str],
               results: dict, first_index: int, tried: set[str]) -> None:
    """Run the cells that are not done, each at most once per launch (`tried`): a failed run is
    retried by the next launch, not in a loop by this one."""
    pending = [c for c in cells if not record.finished(results.get(c.run_id)) and c.run_id not in tried]
    tried.update(c.run_id for c in pending)
    if not pending:
        return
    overrides = lambda c: c.overrides(fixed, points[c.point])
    if session.in_process:
        run_in_process(pending, describe=lambda c: f"{points[c.point].label} {c.describe()}", overrides=overrides)
        return
    print(f"launching {len(pending)} runs with hydra/launcher={session.launcher_name}", flush=True)
    for error in session.launch([overrides(c) for c in pending], first_index):
        print(f"warning: a job failed: {error}", file=sys.stderr)


def tune(args: list[str]) -> int:
    """Run the sweep; 0 when every cell finished, 1 when some failed or could not run (run again to
    retry or finish them)."""
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


def _tune(session: HydraSession, given: Budget, fixed: list[str], axes: list[list[str]], command: str) -> int:
    points = plan_points(session, fixed, axes)
    tasks = tasks_of(points)
    budget = resolve_budget(given, points, tasks)
    sid = sweep_id(points, budget)
    root = rundir.ensure_root(Path(points[0].cfg.runs_root))
    sweep_dir = root / ".sweeps" / sid
    sweep_dir.mkdir(parents=True, exist_ok=True)
    session.set_sweep_dir(sweep_dir)
    results: dict[str, dict] = {}
    # search=tpe: each chain as far as its finished trials take it (replayed from the run directories)
    plan_search = lambda: searching.plan_search(points, budget, sid, lambda c: _read(root, [c], results).get(c.run_id))
    search = plan_search()
    _read(root, search, results)
    bests = _bests(points, search, results, budget)
    seeds, outcomes = _seeds(points, tasks, bests, budget, root, results) if bests is not None else ([], {})
    unplanned = (len(points) * budget.seeds if bests is None else 0) + searching.planned_total(points, budget) - len(search)
    where = "in this process" if session.in_process else f"with hydra/launcher={session.launcher_name}"
    print(f"{sid}: {len(points)} point(s) × ({budget.studies} studies × {budget.trials} {budget.search} trials + "
          f"{record.budget_text(budget, given)}), {where}; {sweep_dir / 'manifest.json'}")
    print(record.progress(root, [*search, *seeds], results, unplanned), flush=True)
    save = lambda: rundir.write_json_atomic(sweep_dir / "manifest.json", record.manifest(
        sid, command, budget, fixed, points, search, seeds, results, outcomes))
    save()
    tried: set[str] = set()
    try:
        while True:  # one round per trial of search=tpe; sobol and random run their search in one
            pending = [c for c in search if not record.finished(results.get(c.run_id)) and c.run_id not in tried]
            if not pending:
                break
            _run_phase(session, pending, points, fixed, results, len(search) - len(pending), tried)
            _read(root, pending, results)
            if budget.search == "tpe":  # the next trial of every chain that just finished one
                search = plan_search()
        bests = _bests(points, search, results, budget)
        if bests is None:
            left = searching.planned_total(points, budget) - sum(record.settled(results.get(c.run_id)) for c in search)
            save()
            failed = sum((results.get(c.run_id) or {}).get("status") == "failed" for c in search)
            why = (f"{failed} failed, and search=tpe proposes no trial past a failed one"
                   if failed and budget.search == "tpe" else "running elsewhere or failed to launch")
            print(f"{left} search runs did not finish ({why}); run the same command again to finish the sweep",
                  file=sys.stderr)
            return 1
        for index in sorted(set(range(len(points))) - set(bests)):
            print(f"warning: {points[index].label}: no search run finished ok (all diverged or failed); no seeds phase",
                  file=sys.stderr)
        while True:  # one round per look of seeds=auto; a fixed seeds phase is a single round
            seeds, outcomes = _seeds(points, tasks, bests, budget, root, results)
            pending = [c for c in seeds if not record.finished(results.get(c.run_id)) and c.run_id not in tried]
            if not pending:
                break
            if budget.auto and any(o.looks_done for o in outcomes.values()):
                print(record.undecided_text(outcomes, len(pending)), flush=True)
            save()
            _run_phase(session, pending, points, fixed, results, len(search) + len(seeds) - len(pending), tried)
            _read(root, pending, results)
            if not all(record.settled(results.get(c.run_id)) for c in pending):
                break
    except KeyboardInterrupt:
        save()
        print("\ninterrupted: run the same command again to finish (finished runs are kept, interrupted ones "
              "resume from their checkpoints)", file=sys.stderr)
        raise SystemExit(130) from None
    data = record.manifest(sid, command, budget, fixed, points, search, seeds, results, outcomes)
    rundir.write_json_atomic(sweep_dir / "manifest.json", data)
    print(record.report(data))
    missing = sum(not record.settled(results.get(c.run_id)) for c in seeds)
    if missing:
        print(f"{missing} seed runs did not finish; run the same command again to finish the sweep", file=sys.stderr)
    failed = len(data["failed"])
    if failed:
        print(f"{failed} of {len(search) + len(seeds)} runs failed (counted as misses; each summary.json says why); "
              "run the same command again to retry them", file=sys.stderr)
    return 1 if missing or failed else 0
