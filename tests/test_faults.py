"""Faults: kill -9 mid-run, four workers sharing one runs root, diverging and failing trials
(more on failures in test_failures.py)."""

import contextlib
import io
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import only_run, read_run

from bench.runner.checkpoint import FILE
from bench.runner.rundir import RunLock

RUN = ("task=logreg", "optimizer=adam", "batch_size=64", "steps=1500", "log_every=50", "eval_every=500",
       "progress=off")


def curve(lines):
    return [{k: v for k, v in x.items() if not k.startswith("time/")} for x in lines]


def wait_for(condition, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize("checkpoint_every", [0, 300])
def test_kill_9_leaves_nothing_finished_and_a_rerun_redoes_it(bench_cli, tmp_path, checkpoint_every):
    args = (*RUN, f"checkpoint_every={checkpoint_every}")
    root = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", *args, f"runs_root={root}"],
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    metrics = lambda: next(root.glob("*/metrics.jsonl"), None)
    if checkpoint_every:
        wait_for(lambda: next(root.glob(f"*/{FILE}"), None) is not None)
    else:
        wait_for(lambda: metrics() is not None and len(metrics().read_text().splitlines()) >= 4)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_dir = only_run(root)
    assert not (run_dir / "summary.json").exists()  # nothing claims completion
    lock = RunLock(run_dir)
    assert lock.acquire()  # the kernel released the dead process's lock
    lock.release()
    resume_step = torch.load(run_dir / FILE, weights_only=True)["step"] if checkpoint_every else None

    rerun = bench_cli("run", *args, f"runs_root={root}")
    assert rerun.code == 0, rerun.output
    summary, lines = read_run(run_dir)
    assert summary["status"] == "ok" and summary["steps"] == 1500
    assert summary["resumed_from"] == ([resume_step] if checkpoint_every else [])
    assert bench_cli("run", *args, f"runs_root={tmp_path / 'reference'}").code == 0
    _, reference = read_run(only_run(tmp_path / "reference"))
    assert curve(lines) == curve(reference)  # no line lost, none twice


def _worker(cfgs, order, queue):
    from bench.runner.main import execute

    results = []
    for i in order:
        with contextlib.redirect_stdout(io.StringIO()):
            summary = execute(cfgs[i])
        results.append((i, summary["status"], summary["run_dir"]))
    queue.put(results)


def test_four_workers_sharing_a_runs_root_lose_and_clobber_nothing(runs_root):
    from hydra import compose, initialize_config_dir

    from bench.config import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfgs = [compose("config", overrides=["task=logreg", "steps=200", "log_every=10", f"seed={i}",
                                             f"runs_root={runs_root}", "progress=off"]) for i in range(6)]
    orders = [[0, 1, 2, 3, 4, 5], [5, 4, 3, 2, 1, 0], [2, 0, 4, 1, 5, 3], [3, 5, 1, 4, 0, 2]]
    ctx = multiprocessing.get_context("fork")  # torch is imported already: no start-up per worker
    queue = ctx.Queue()
    workers = [ctx.Process(target=_worker, args=(cfgs, order, queue)) for order in orders]
    for w in workers:
        w.start()
    results = [r for _ in workers for r in queue.get(timeout=300)]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0

    dirs = sorted(d for d in runs_root.iterdir() if not d.name.startswith("."))
    assert len(dirs) == 6  # one directory per config: nothing duplicated
    for i in range(6):
        trained = [r for r in results if r[0] == i and r[1] == "ok"]
        assert len(trained) == 1, results  # every config trained exactly once, by someone
    for d in dirs:
        summary, lines = read_run(d)
        assert summary["status"] == "ok"
        assert [x["step"] for x in lines] == list(range(0, 201, 10))  # one writer per curve


def test_a_diverged_trial_does_not_stop_the_sweep(bench_cli, runs_root):
    res = bench_cli("tune", "optimizer=sgd", "task=logreg", "task.l2=1.0", "steps=30", "trials=6", "seeds=1",
                    "optimizer.search.lr.low=0.01", "optimizer.search.lr.high=1e6", f"runs_root={runs_root}")
    assert res.code == 0, res.output
    runs = [json.loads(p.read_text()) for p in runs_root.glob("*/summary.json")]
    search = [s["status"] for s in runs if s["phase"] == "search"]
    assert len(search) == 6 and "diverged" in search and "ok" in search
    assert [s["status"] for s in runs if s["phase"] == "seeds"] == ["ok"]


def test_a_failing_trial_is_recorded_and_the_sweep_goes_on(bench_cli, runs_root, monkeypatch):
    original = torch.optim.SGD.step

    def step(self, closure=None):
        if self.param_groups[0]["lr"] > 1.0:
            raise RuntimeError("boom: a trial that crashes mid-run")
        return original(self, closure)

    monkeypatch.setattr(torch.optim.SGD, "step", step)
    res = bench_cli("tune", "optimizer=sgd", "task=logreg", "steps=20", "trials=8", "seeds=1",
                    "+optimizer.search.momentum={low: -0.9, high: 0.9}", f"runs_root={runs_root}")
    runs = [json.loads(p.read_text()) for p in runs_root.glob("*/summary.json")]
    failed = [s for s in runs if s["status"] == "failed"]
    # the sweep finished, but a failed run is not done: exit 1, counted, retried by a relaunch
    assert res.code == 1 and f"{len(failed)} of 9 runs failed" in res.output, res.output
    assert any("boom" in s["error"] for s in failed)  # raised while training
    assert any("momentum" in s["error"] for s in failed)  # rejected by the constructor
    assert len([s for s in runs if s["phase"] == "search"]) == 8
    assert [s["status"] for s in runs if s["phase"] == "seeds"] == ["ok"]
