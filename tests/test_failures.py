"""Failures: a run that fails says so in one line and a non-zero exit, and is never cached as
done (the same command retries it); impossible numbers are refused before anything runs; a run
of 10^12 steps starts at once and stops on the first signal."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import only_run, read_run

from bench.runner import rundir
from bench.runner.checkpoint import FILE
from bench.tasks.logreg import LogReg

RUN = ("run", "task=logreg", "optimizer=adamw", "steps=20", "progress=off")
ORIGINAL_LOSS = LogReg.loss


def error_lines(res) -> list[str]:
    return [x for x in res.stderr.splitlines() if x.strip()]


def statuses(root: Path) -> list[str]:
    return [json.loads(p.read_text())["status"] for p in root.glob("*/summary.json")]


REJECTED = [
    ("optimizer.betas=[0.9,1.5]", "optimizer adamw rejected its settings: ValueError: Invalid beta parameter at index 1"),
    ("optimizer.lr=nan", "optimizer.lr must be a finite number, got nan"),
    ("optimizer.weight_decay=-1", "optimizer adamw rejected its settings: ValueError: Invalid weight_decay value: -1"),
    ("optimizer.betas=[0.9]", "optimizer.betas must be a list of 2 numbers like [0.9, 0.999], got [0.9]"),
    ("optimizer.lr=1e400", "optimizer.lr must be a finite number, got inf"),
    ("task.l2=inf", "task.l2 must be a finite number, got inf"),
    ("steps=10000000000000000", "steps must be at most 10^15"),
]


@pytest.mark.parametrize("override,message", REJECTED, ids=[o for o, _ in REJECTED])
def test_rejected_settings_exit_2_every_time_and_leave_nothing_done(bench_cli, runs_root, override, message):
    for _ in range(2):  # the second invocation is refused again, not "already done"
        res = bench_cli(*RUN, override, f"runs_root={runs_root}")
        assert res.code == 2, res.output
        lines = error_lines(res)
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], res.output
        assert "already done" not in res.output and "Traceback" not in res.output
    assert not runs_root.exists() or not any(runs_root.iterdir())  # no run directory at all


def crashing_loss(after_calls: int):
    """LogReg's loss, raising on its `after_calls`-th training call (call 1 is the warm-up)."""
    calls = {"n": 0}

    def loss(self, model, batch):
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] == after_calls:
            raise RuntimeError("boom: the data read was killed")
        return ORIGINAL_LOSS(self, model, batch)

    return loss


def test_a_crash_while_training_exits_1_and_the_same_command_retries_it(bench_cli, tmp_path, monkeypatch):
    args = ("run", "task=logreg", "optimizer=adam", "batch_size=64", "steps=40", "log_every=1", "eval_every=10",
            "checkpoint_every=10", "progress=off")
    reference = tmp_path / "reference"
    assert bench_cli(*args, f"runs_root={reference}").code == 0
    _, ref_lines = read_run(only_run(reference))

    root = tmp_path / "runs"
    monkeypatch.setattr(LogReg, "loss", crashing_loss(after_calls=27))  # inside step 25
    crashed = bench_cli(*args, f"runs_root={root}")
    assert crashed.code == 1, crashed.output
    lines = error_lines(crashed)
    assert len(lines) == 1 and lines[0].startswith("error: run failed: RuntimeError: boom"), crashed.output
    run_dir = only_run(root)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "boom" in summary["error"]  # a result a leaderboard counts
    assert not rundir.is_finished(rundir.read_summary(run_dir))  # but not done
    assert torch.load(run_dir / FILE, weights_only=True)["step"] == 20  # kept for the retry

    monkeypatch.setattr(LogReg, "loss", ORIGINAL_LOSS)  # the transient cause is gone
    retried = bench_cli(*args, f"runs_root={root}")
    assert retried.code == 0, retried.output
    assert "already done" not in retried.output
    summary, lines = read_run(run_dir)
    assert summary["status"] == "ok" and summary["resumed_from"] == [20] and "error" not in summary
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]
    assert strip(lines) == strip(ref_lines)  # resumed from the checkpoint as if never stopped
    assert not (run_dir / FILE).exists()
    assert "already done" in bench_cli(*args, f"runs_root={root}").output  # now it is done


def test_a_diverged_run_is_a_result_and_done(bench_cli, runs_root):
    args = ("run", "optimizer=sgd", "optimizer.lr=1e6", "task=logreg", "task.l2=1.0", "steps=30", "progress=off",
            f"runs_root={runs_root}")
    assert bench_cli(*args).code == 0
    assert statuses(runs_root) == ["diverged"]
    again = bench_cli(*args)
    assert again.code == 0 and "already done" in again.output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_while_starting_up_ends_the_command_at_once(bench_cli, runs_root, monkeypatch, sig):
    def build_task(cfg, device):  # a slow start-up (a data set loading) that a signal interrupts
        signal.raise_signal(sig)
        time.sleep(30)
        raise AssertionError("the signal was ignored")

    monkeypatch.setattr("bench.runner.build.build_task", build_task)
    started = time.monotonic()
    res = bench_cli(*RUN, f"runs_root={runs_root}")
    assert time.monotonic() - started < 20
    assert res.code == 128 + sig, res.output
    lines = error_lines(res)
    assert len(lines) == 1 and lines[0].startswith("interrupted"), res.output
    assert not runs_root.exists() or not any(runs_root.iterdir())
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handed back


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_trillion_steps_start_at_once_and_stop_on_a_signal(tmp_path, sig):
    root, stderr = tmp_path / "runs", tmp_path / "stderr"
    with open(stderr, "w") as err_file:
        proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "task=rosenbrock", "optimizer=sgd",
                                 "steps=1000000000000", "progress=off", f"runs_root={root}"],
                                stdout=subprocess.DEVNULL, stderr=err_file, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        deadline = time.monotonic() + 120  # interpreter and torch start-up on a loaded machine
        metrics = lambda: next(root.glob("*/metrics.jsonl"), None)
        while time.monotonic() < deadline and (metrics() is None or not metrics().read_text()):
            assert proc.poll() is None, stderr.read_text()
            time.sleep(0.05)
        assert metrics() is not None and metrics().read_text(), "step 0 was never logged"  # training started
        proc.send_signal(sig)
        sent = time.monotonic()
        while "interrupted" not in stderr.read_text() and time.monotonic() - sent < 10:
            time.sleep(0.02)
        # honoured at the next step; exiting then takes the interpreter ~1 s to tear torch down
        assert time.monotonic() - sent < 2, "the signal was not honoured promptly"
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = stderr.read_text()
    assert proc.returncode == 128 + sig, err
    assert err.splitlines()[0].startswith("interrupted: ") and "resume" in err, err
    run_dir = only_run(root)
    assert (run_dir / FILE).exists() and not (run_dir / "summary.json").exists()


def test_a_multirun_goes_on_past_a_failed_run_counts_it_and_retries_only_it(bench_cli, runs_root):
    args = ("run", "-m", "task=logreg", "optimizer=adamw", "steps=10", "progress=off",
            "optimizer.weight_decay=0.01,-1,0.1", f"runs_root={runs_root}")
    first = bench_cli(*args)
    assert first.code == 1, first.output
    assert "error: 1 of 3 runs failed" in first.output and "retry" in first.output
    assert sorted(statuses(runs_root)) == ["failed", "ok", "ok"]
    started = {p.parent.name: json.loads(p.read_text())["started_at"] for p in runs_root.glob("*/summary.json")}

    again = bench_cli(*args)
    assert again.code == 1 and "error: 1 of 3 runs failed" in again.output, again.output
    assert again.output.count("already done") == 2
    after = {p.parent.name: json.loads(p.read_text()) for p in runs_root.glob("*/summary.json")}
    retried = [name for name, s in after.items() if s["started_at"] != started[name]]
    assert len(retried) == 1 and after[retried[0]]["status"] == "failed"  # only the failed run ran again


def test_tune_counts_failed_trials_and_a_relaunch_retries_only_them(bench_cli, runs_root, monkeypatch):
    original = torch.optim.SGD.step

    def step(self, closure=None):
        if self.param_groups[0]["lr"] > 0.3:
            raise RuntimeError("boom: out of memory")
        return original(self, closure)

    args = ("tune", "optimizer=sgd", "task=logreg", "steps=10", "trials=6", "seeds=1", f"runs_root={runs_root}")
    monkeypatch.setattr(torch.optim.SGD, "step", step)
    first = bench_cli(*args)
    assert first.code == 1, first.output
    runs = {p.parent.name: json.loads(p.read_text()) for p in runs_root.glob("*/summary.json")}
    failed = {name for name, s in runs.items() if s["status"] == "failed"}
    assert failed and len(failed) < 6, runs  # the sweep went on past them, to the seeds phase
    assert [s["status"] for s in runs.values() if s["phase"] == "seeds"] == ["ok"]
    assert f"{len(failed)} of 7 runs failed" in first.output
    (sweep,) = {s["sweep"] for s in runs.values()}
    manifest = json.loads((runs_root / ".sweeps" / sweep / "manifest.json").read_text())
    assert set(manifest["failed"]) == failed

    monkeypatch.setattr(torch.optim.SGD, "step", original)  # the cause is gone: the retries succeed
    again = bench_cli(*args)
    assert again.code == 0, again.output
    assert f"7 cells: {7 - len(failed)} done, 0 resumed, {len(failed)} to run ({len(failed)} failed before" \
        in again.output
    after = {p.parent.name: json.loads(p.read_text()) for p in runs_root.glob("*/summary.json")}
    for name, s in runs.items():
        assert (after[name]["started_at"] != s["started_at"]) == (name in failed)  # only the failed ran again
    assert all(s["status"] == "ok" for s in after.values() if s["phase"] == "search")


def test_a_multirun_under_joblib_exits_1_when_a_job_failed(bench_cli, runs_root):
    # the jobs run in worker processes: their statuses still reach the command's exit code
    args = ("run", "-m", "task=rosenbrock", "optimizer=sgd", "steps=5", "progress=off", "launcher=parallel",
            "hydra.launcher.n_jobs=2", "optimizer.lr=1e-4", "optimizer.weight_decay=0.01,-1", f"runs_root={runs_root}")
    first = bench_cli(*args)
    assert first.code == 1, first.output
    assert "error: 1 of 2 runs failed" in first.output
    assert sorted(statuses(runs_root)) == ["failed", "ok"]
    assert not list(runs_root.glob(".sweeps/*/.job-status"))  # the markers are gone once counted
