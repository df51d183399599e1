"""`bench tune`: seeded Sobol search spaces, equal budgets, provenance in summaries and the
manifest, and resumable sweeps (re-launch, Ctrl-C)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import BenchError
from bench.sweep.space import parse_space, sobol_points

TINY = ("task=logreg", "steps=20", "log_every=5", "eval_every=10")


def summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/summary.json"))]


def test_sobol_points_are_seeded_scrambled_and_in_range():
    space = parse_space({"lr": {"low": 1e-4, "high": 1.0, "log": True}, "betas.0": {"low": 0.8, "high": 0.99}}, "x")
    a, b, other = sobol_points(space, 8, seed=1), sobol_points(space, 8, seed=1), sobol_points(space, 8, seed=2)
    assert a == b and a != other
    assert all(1e-4 <= p["lr"] <= 1.0 and 0.8 <= p["betas.0"] <= 0.99 for p in a)
    decades = {int(-__import__("math").log10(p["lr"])) for p in a}
    assert len(decades) >= 3  # log scale: spread over decades, not crowded near the top


@pytest.mark.parametrize("spec", [{"lr": {"low": 1.0, "high": 0.1}}, {"lr": {"low": 0.0, "high": 1.0, "log": True}},
                                  {"lr": {"low": 1e-3}}, {"lr": {"low": 1e-3, "high": 1.0, "step": 2}}, {}])
def test_bad_search_spaces_are_one_line_errors(spec):
    with pytest.raises(BenchError, match="optimizer/x.yaml"):
        parse_space(spec, "optimizer/x.yaml")


def test_cells_are_what_hydra_composes():
    """The in-process path derives cell configs; launchers compose them from overrides. Both must
    land on the same run ids, or a parallel re-launch would not see the serial sweep's runs."""
    from bench.config import run_id
    from bench.sweep.launch import HydraSession
    from bench.sweep.plan import Budget, search_cells, seed_cells, sweep_id
    from bench.sweep.tune import parse_args, plan_points, resolve_budget, tasks_of

    budget, fixed, axes = parse_args(["optimizer=adam,sgd", *TINY, "trials=2", "runs_root=/nonexistent"])
    session = HydraSession(fixed)
    try:
        points = plan_points(session, fixed, axes)
        budget = resolve_budget(budget, points, tasks_of(points))
        cells = search_cells(points, budget, sweep_id(points, budget))
        for cell in (cells[0], cells[-1]):
            assert cell.run_id == run_id(session.compose(cell.overrides(fixed, points[cell.point])))
        auto = resolve_budget(parse_args(["optimizer=adam,sgd", "seeds=auto"])[0], points, tasks_of(points))
        best = cells[0]
        (again,) = seed_cells(0, points[0], best, auto, 1)  # seeds=auto records its looks: run id unchanged
        assert again.values()["tune.looks"] == auto.schedule.looks
        assert again.run_id == run_id(session.compose(again.overrides(fixed, points[0])))
        assert again.run_id == seed_cells(0, points[0], best, budget, 1)[0].run_id
    finally:
        session.close()
    # without seeds=: enough for the one comparison of 2 optimizers (4) and a median interval (6)
    assert budget == Budget(trials=2, studies=1, seeds=6, search_seed=0)
    assert [c.point for c in cells] == [0, 0, 1, 1]  # the same number of trials per optimizer


def test_explicit_seeds_keep_their_sweep_id():
    """A sweep started with seeds=3 before the default changed resumes into the same sweep: a fixed
    budget identifies the sweep by exactly the keys it always had."""
    from bench.sweep.plan import Budget

    fixed = Budget(trials=16, studies=1, seeds=3, search_seed=0)
    assert fixed.spec() == {"trials": 16, "studies": 1, "seeds": 3, "search_seed": 0}
    auto = Budget(trials=16, seeds=8, auto=True)
    assert auto.spec()["seeds"] == "auto" and auto.spec()["initial_seeds"] == 8 and auto.spec()["looks"] == 4


def test_tune_runs_equal_budgets_records_provenance_and_skips_on_relaunch(bench_cli, runs_root):
    args = ("tune", "optimizer=sgd,adam", *TINY, "trials=3", "studies=2", "seeds=2", f"runs_root={runs_root}")
    first = bench_cli(*args)
    assert first.code == 0, first.output
    assert "16 cells: 0 done, 0 resumed, 16 to run" in first.output
    # kept as asked, with the seeds the one comparison would need; 2 seeds give no median interval
    assert "warning: seeds=2 cannot decide the comparison per task: the exact two-sided test needs 4 seeds" in first.output
    assert "(n=2; interval: n too small (needs ≥ 6))" in first.output
    assert "sgd vs adam: n too small (needs ≥ 4 seeds)" in first.output
    runs = summaries(runs_root)
    assert len(runs) == 16 and all(s["status"] == "ok" for s in runs)
    for opt in ("sgd", "adam"):
        mine = [s for s in runs if s["optimizer"] == opt]
        search = [s for s in mine if s["phase"] == "search"]
        assert len(search) == 6 and sorted((s["study"], s["trial"]) for s in search) == \
            [(st, t) for st in (0, 1) for t in range(3)]
        assert {s["seed"] for s in search if s["study"] == 1} == {1}  # study s trains with seed + s
        seeds = [s for s in mine if s["phase"] == "seeds"]
        assert sorted(s["seed"] for s in seeds) == [2, 3]  # fresh seeds, after the studies'
        assert len({json.dumps(s["hyperparameters"], sort_keys=True) for s in seeds}) == 1
    (sweep,) = {s["sweep"] for s in runs}
    manifest = json.loads((runs_root / ".sweeps" / sweep / "manifest.json").read_text())
    assert manifest["budget"] == {"trials": 3, "studies": 2, "seeds": 2, "search_seed": 0, "runs_per_point": 8}
    sgd = manifest["points"][0]
    assert sgd["search_space"]["lr"]["log"] is True and len(sgd["study_best"]) == 2
    assert sgd["best"]["run_id"] in {c["run_id"] for c in sgd["cells"] if c["phase"] == "search"}
    assert sgd["seeds"]["n"] == 2 and len(sgd["cells"]) == 8

    again = bench_cli(*args, "launcher=local")  # the launcher does not change the sweep's identity
    assert again.code == 0, again.output
    assert "16 cells: 16 done, 0 resumed, 0 to run" in again.output
    assert summaries(runs_root) == runs


def test_tune_rejects_what_it_sets_itself(bench_cli, runs_root):
    for bad, says in (("seed=0,1", "cannot sweep seed"), ("optimizer.lr=0.1", "searched by bench tune"),
                      ("force=true", "force is not supported"), ("trials=0", "trials must be")):
        res = bench_cli("tune", "optimizer=sgd", *TINY, bad, f"runs_root={runs_root}")
        assert res.code == 2 and says in res.output, res.output
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_ctrl_c_then_relaunch_finishes_without_redoing(bench_cli, runs_root):
    # long runs (a few seconds each), so that Ctrl-C lands while the second one is early on,
    # whatever the machine's load
    args = ["tune", "optimizer=sgd", "task=logreg", "steps=20000", "log_every=500", "eval_every=10000",
            "checkpoint_every=0", "trials=3", "seeds=0", f"runs_root={runs_root}"]
    proc = subprocess.Popen([sys.executable, "-m", "bench", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:  # one run finished and the next under way
        done = list(runs_root.glob("*/summary.json"))
        running = [p for p in runs_root.glob("*/metrics.jsonl") if not (p.parent / "summary.json").exists()]
        if done and running and len(running[0].read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, output
    assert "run the same command again" in output
    finished = {s["run_id"]: s["started_at"] for s in summaries(runs_root)}
    assert len(finished) == 1
    interrupted = [p.parent for p in runs_root.glob("*/checkpoint.pt")]
    assert len(interrupted) == 1

    res = bench_cli(*args)
    assert res.code == 0, res.output
    assert "3 cells: 1 done, 1 resumed, 1 to run" in res.output
    after = {s["run_id"]: s for s in summaries(runs_root)}
    assert len(after) == 3 and all(s["status"] == "ok" for s in after.values())
    for rid, started in finished.items():
        assert after[rid]["started_at"] == started  # not redone
    assert after[interrupted[0].name]["resumed_from"]
