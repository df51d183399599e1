"""`bench tune search=sobol|random|tpe`: sobol sweeps unchanged, random and Sobol points checked
against scipy's QMC module, TPE deterministic and replayed from run directories on relaunch; the
search_method experiment's verdict rule on hand-made cases."""

import json
import math
import shutil
from pathlib import Path

import pytest

from bench import BenchError
from bench.sweep.space import parse_space, random_points, sobol_points

TINY = ("task=rosenbrock", "steps=10", "log_every=5", "eval_every=10")


def _planned(args: list[str]):
    from bench.sweep.launch import HydraSession
    from bench.sweep.plan import search_cells, sweep_id
    from bench.sweep.tune import parse_args, plan_points, resolve_budget, tasks_of

    budget, fixed, axes = parse_args(args)
    session = HydraSession(fixed)
    try:
        points = plan_points(session, fixed, axes)
        budget = resolve_budget(budget, points, tasks_of(points))
    finally:
        session.close()
    sid = sweep_id(points, budget)
    return budget, points, sid, (search_cells(points, budget, sid) if budget.search != "tpe" else None)


def test_search_option_is_checked_and_sobol_is_the_unchanged_default():
    from bench.sweep.plan import Budget
    from bench.sweep.tune import parse_args

    with pytest.raises(BenchError, match="search must be one of sobol, random, tpe, got 'bayes'"):
        parse_args(["search=bayes"])
    assert parse_args(["search=tpe"])[0].search == "tpe"
    # a sobol sweep is identified by the keys it had before there was a choice; the others are not
    assert Budget(trials=4, seeds=6).spec() == {"trials": 4, "studies": 1, "seeds": 6, "search_seed": 0}
    assert Budget(trials=4, seeds=6, search="tpe").spec()["search"] == "tpe"
    base = ["optimizer=adam,sgd", *TINY, "trials=3", "seeds=0", "runs_root=/nonexistent"]
    default, explicit, random = _planned(base), _planned([*base, "search=sobol"]), _planned([*base, "search=random"])
    assert default[2] == explicit[2] != random[2]
    assert [c.run_id for c in default[3]] == [c.run_id for c in explicit[3]]
    # today's points: the first `trials` of the study's scrambled Sobol sequence
    space = default[1][0].space
    assert [c.params for c in default[3][:3]] == sobol_points(space, 3, _study_seed(0))
    assert [c.params for c in random[3][:3]] == random_points(space, 3, _study_seed(0))
    assert {c.values()["tune.search"] for c in random[3]} == {"random"}


def _study_seed(study: int) -> int:
    from bench.sweep.plan import study_seed

    return study_seed(0, study)


def test_sobol_points_cross_checked_against_scipy_qmc():
    """No QMC sampler in the installed Optuna (2.x), so scipy.stats.qmc is the reference: the same
    unscrambled sequence (Joe–Kuo direction numbers), and our scrambled points keep what makes Sobol
    worth using: every 1/n-wide slice of each axis holds exactly one of n = 2^m points, and a lower
    discrepancy than independent uniform points."""
    import numpy as np
    import torch
    from scipy.stats import qmc

    ours = torch.quasirandom.SobolEngine(4, scramble=False).draw(64, dtype=torch.float64).numpy()
    assert np.array_equal(ours, qmc.Sobol(4, scramble=False).random(64))
    unit = parse_space({f"x{i}": {"low": 0.0, "high": 1.0} for i in range(4)}, "unit")
    n = 64
    for seed in (0, 1, 2):
        sobol = np.array([[p[d.key] for d in unit] for p in sobol_points(unit, n, seed)])
        rand = np.array([[p[d.key] for d in unit] for p in random_points(unit, n, seed)])
        for axis in range(4):
            assert sorted(np.floor(sobol[:, axis] * n).astype(int)) == list(range(n))
        assert qmc.discrepancy(sobol) < qmc.discrepancy(rand)
    assert random_points(unit, 8, 5) == random_points(unit, 8, 5) != random_points(unit, 8, 6)


def test_tpe_chain_is_a_function_of_its_finished_trials(monkeypatch):
    """Planning round by round, from scratch (a new process: no cached proposals) or after an
    interruption, gives the same points and run ids; a failed trial holds its chain there."""
    from bench.sweep import search

    budget, points, sid, _ = _planned(["optimizer=adam", *TINY, "trials=6", "seeds=0", "search=tpe",
                                       "runs_root=/nonexistent"])

    def loss(params):  # a smooth bowl around lr = 1e-2
        return (math.log10(params["lr"]) + 2) ** 2 + params["betas.0"]

    def run_all(results, stop_after=None):
        while True:
            cells = search.plan_search(points, budget, sid, lambda c: results.get(c.run_id))
            todo = [c for c in cells if c.run_id not in results]
            if not todo or (stop_after is not None and len(results) >= stop_after):
                return cells
            for c in todo:
                results[c.run_id] = {"status": "ok", "metric": "m", "mode": "min", "final": {"m": loss(c.params)}}

    first = run_all({})
    assert len(first) == 6 and search.complete(first, points, budget)
    assert [c.trial for c in first] == list(range(6)) and {c.search for c in first} == {"tpe"}
    monkeypatch.setattr(search, "_proposed", {})
    partial: dict = {}
    run_all(partial, stop_after=3)
    monkeypatch.setattr(search, "_proposed", {})  # the relaunch replays trials 0-2 from their results
    again = run_all(partial)
    assert [c.run_id for c in again] == [c.run_id for c in first]
    assert [c.params for c in again] == [c.params for c in first]
    results = {c.run_id: {"status": "ok", "metric": "m", "mode": "min", "final": {"m": loss(c.params)}} for c in first}
    results[first[2].run_id] = {"status": "failed", "metric": "m", "mode": "min"}
    held = search.plan_search(points, budget, sid, lambda c: results.get(c.run_id))
    assert [c.run_id for c in held] == [c.run_id for c in first[:3]] and not search.complete(held, points, budget)


def summaries(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted(root.glob("*/summary.json"))}


def test_tune_tpe_runs_in_rounds_and_resumes_without_rerunning(bench_cli, runs_root):
    args = ("tune", "optimizer=adam,sgd", *TINY, "trials=3", "seeds=1", "search=tpe", f"runs_root={runs_root}")
    first = bench_cli(*args)
    assert first.code == 0, first.output
    assert "× (1 studies × 3 tpe trials + 1 seeds)" in first.output and "8 cells: 0 done, 0 resumed, 8 to run" in first.output
    runs = summaries(runs_root)
    search_runs = [s for s in runs.values() if s["phase"] == "search"]
    assert len(search_runs) == 6 and {s["search"] for s in runs.values()} == {"tpe"}
    (sweep,) = {s["sweep"] for s in runs.values()}
    manifest = json.loads((runs_root / ".sweeps" / sweep / "manifest.json").read_text())
    assert manifest["search"] == "tpe" and manifest["budget"]["search"] == "tpe"

    again = bench_cli(*args)
    assert again.code == 0, again.output
    assert f"{len(runs)} cells: {len(runs)} done, 0 resumed, 0 to run" in again.output
    assert summaries(runs_root) == runs  # nothing re-ran

    # a trial in the middle of a chain lost: the relaunch proposes it again from the trials before
    # it, re-runs that one alone, and finds every later trial where it was
    lost = next(rid for rid, s in runs.items() if s["phase"] == "search" and s["trial"] == 1 and s["optimizer"] == "adam")
    shutil.rmtree(runs_root / lost)
    third = bench_cli(*args)
    assert third.code == 0, third.output
    assert third.output.count(" search s0/t") == 1 and "adam search s0/t1" in third.output, third.output
    after = summaries(runs_root)
    assert set(after) == set(runs)
    assert all(after[rid] == s for rid, s in runs.items() if rid != lost)


def test_leaderboard_header_names_the_search_method(bench_cli, runs_root):
    res = bench_cli("tune", "optimizer=adam", *TINY, "trials=2", "seeds=1", "search=random", f"runs_root={runs_root}")
    assert res.code == 0, res.output
    board = bench_cli("leaderboard", "--runs", str(runs_root), "--baseline", "adam", "--wide")
    assert "random search" in board.output, board.output


def test_search_method_verdict_rule():
    from bench.experiments.search_method import Tuned, judge

    low, high = [1.0, 1.1, 1.2, 1.3, 1.4, 1.5], [5.0, 5.1, 5.2, 5.3, 5.4, 5.5]
    t = lambda losses: Tuned("m", "min", losses, [])
    same = {("a", m): {"x": t(low), "y": t(high)} for m in ("sobol", "tpe")}
    assert judge(same, ["sobol", "tpe"]).verdict == "reproduced"
    flipped = {("a", "sobol"): {"x": t(low), "y": t(high)}, ("a", "tpe"): {"x": t(high), "y": t(low)}}
    j = judge(flipped, ["sobol", "tpe"])
    assert j.verdict == "not reproduced at this scale"
    assert j.effect[("a", "x", "tpe")].verdict == "worse" and j.effect[("a", "y", "tpe")].verdict == "better"
    mixed = {**same, ("b", "sobol"): {"x": t(low), "y": t(high)}, ("b", "tpe"): {"x": t(low), "y": t(low[::-1])}}
    assert judge(mixed, ["sobol", "tpe"]).verdict == "partly reproduced"  # one task agrees, one no longer decides
    few = {("a", m): {"x": t(low[:2]), "y": t(high[:2])} for m in ("sobol", "tpe")}
    assert judge(few, ["sobol", "tpe"]).verdict == "not reproduced at this scale"  # n too small decides nothing
