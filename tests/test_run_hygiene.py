"""What runs leave behind and what they say: a resumed run names its step, an interrupted run
leaves what README's run-directory table says, finished runs keep no `.lock`, multiruns leave no
empty folders, and submitit jobs' lines reach the terminal."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import torch
from conftest import only_run, read_run

from bench.runner.checkpoint import FILE, INTERRUPTED
from bench.runner.rundir import RunLock
from bench.tasks.logreg import LogReg

README = Path(__file__).resolve().parents[1] / "README.md"
ARGS = ("run", "task=logreg", "optimizer=adam", "steps=20", "log_every=1", "eval_every=5", "progress=off")
ORIGINAL_LOSS = LogReg.loss


def signal_at(call: int):
    """LogReg's loss, sending SIGUSR1 to this process on the n-th training call (call 1 is the
    warm-up, call k + 1 computes step k)."""
    calls = {"n": 0}

    def loss(self, model, batch):
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] == call and torch.is_grad_enabled():
            signal.raise_signal(signal.SIGUSR1)
        return ORIGINAL_LOSS(self, model, batch)

    return loss


def leftovers(root: Path) -> tuple[list[str], list[str]]:
    """(empty folders, .lock files) under root."""
    empty, locks = [], []
    for folder, dirs, files in os.walk(root):
        if not dirs and not files:
            empty.append(folder)
        locks += [os.path.join(folder, f) for f in files if f == ".lock"]
    return empty, locks


def test_resumed_run_says_from_which_step(bench_cli, runs_root, monkeypatch):
    monkeypatch.setattr(LogReg, "loss", signal_at(11))  # inside step 10
    stopped = bench_cli(*ARGS, f"runs_root={runs_root}")
    assert stopped.code == 128 + signal.SIGUSR1, stopped.output
    run_dir = only_run(runs_root)
    assert "resuming" not in stopped.output
    assert leftovers(runs_root)[1] == []  # an interrupted run keeps no lock either

    monkeypatch.setattr(LogReg, "loss", ORIGINAL_LOSS)
    resumed = bench_cli(*ARGS, f"runs_root={runs_root}")
    assert resumed.code == 0, resumed.output
    assert re.findall(r"^resuming .*$", resumed.stdout, re.M) == [f"resuming {run_dir} from step 10 (checkpoint)"]
    assert resumed.stdout.index("resuming") < resumed.stdout.index("ok: ")
    summary, _ = read_run(run_dir)
    assert summary["status"] == "ok" and summary["resumed_from"] == [10]
    assert leftovers(runs_root) == ([], [])

    fresh = bench_cli(*ARGS, "force=true", f"runs_root={runs_root}")  # a run from step 0 says nothing of resuming
    assert fresh.code == 0 and "resuming" not in fresh.output


def _readme_row(name: str) -> str:
    rows = [line for line in README.read_text().splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"README's run-directory table has no single row for {name}"
    return rows[0]


def test_interrupted_run_leaves_what_readme_says(bench_cli, runs_root, monkeypatch):
    assert "an interrupted run has none" in _readme_row("summary.json")
    row = _readme_row(INTERRUPTED)
    assert "status interrupted" in row and "checkpoint.pt" in row and "resuming <dir> from step N" in row

    monkeypatch.setattr(LogReg, "loss", signal_at(8))
    assert bench_cli(*ARGS, f"runs_root={runs_root}").code == 128 + signal.SIGUSR1
    run_dir = only_run(runs_root)
    assert sorted(p.name for p in run_dir.iterdir()) == ["checkpoint.pt", "config.yaml", INTERRUPTED, "metrics.jsonl"]
    note = json.loads((run_dir / INTERRUPTED).read_text())
    assert note["status"] == "interrupted" and note["step"] == 7 and note["checkpoint"] == FILE

    monkeypatch.setattr(LogReg, "loss", ORIGINAL_LOSS)
    assert bench_cli(*ARGS, f"runs_root={runs_root}").code == 0
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.yaml", "metrics.jsonl", "summary.json"]


def test_multirun_leaves_no_empty_folders_and_no_locks(bench_cli, runs_root):
    res = bench_cli("run", "-m", "optimizer=adamw,sgd", "task=rosenbrock", "steps=20", "progress=off",
                    f"runs_root={runs_root}")
    assert res.code == 0, res.output
    statuses = sorted(json.loads(p.read_text())["status"] for p in runs_root.glob("*/summary.json"))
    assert statuses == ["diverged", "ok"]  # sgd's default lr diverges on rosenbrock: both outcomes covered
    assert leftovers(runs_root) == ([], [])
    assert len(list((runs_root / ".sweeps").glob("*/multirun.yaml"))) == 1  # the sweep's record stays


def test_failed_run_keeps_no_lock(bench_cli, runs_root, monkeypatch):
    def crash(self, model, batch):
        raise RuntimeError("boom")

    monkeypatch.setattr(LogReg, "loss", crash)
    res = bench_cli(*ARGS, f"runs_root={runs_root}")
    assert res.code == 1 and "boom" in res.stderr
    assert json.loads((only_run(runs_root) / "summary.json").read_text())["status"] == "failed"
    assert leftovers(runs_root)[1] == []


def test_run_lock_is_exclusive_and_deleted_on_release(tmp_path):
    first, second = RunLock(tmp_path), RunLock(tmp_path)
    assert first.acquire() and not second.acquire()
    assert int((tmp_path / ".lock").read_text()) == os.getpid()
    stale = os.open(tmp_path / ".lock", os.O_RDONLY)  # opened by a process about to flock it
    first.release()
    assert not (tmp_path / ".lock").exists()
    assert second.acquire()  # a new file, which the stale descriptor does not refer to
    assert not second._is_current(stale)
    os.close(stale)
    second.release()
    assert not (tmp_path / ".lock").exists()


def test_submitit_local_prints_each_run_and_leaves_no_literal_job_folder(tmp_path):
    root = tmp_path / "runs"
    res = subprocess.run([sys.executable, "-m", "bench", "run", "-m", "launcher=submitit_local", "task=rosenbrock",
                          "optimizer=adamw,sgd", "steps=20", "progress=off", f"runs_root={root}"],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"})
    assert res.returncode == 0, res.stdout + res.stderr
    lines = sorted(res.stdout.splitlines())
    assert len(lines) == 2 and lines[0].startswith(f"diverged: {root}/rosenbrock-sgd-"), res.stdout
    assert lines[1].startswith(f"ok: {root}/rosenbrock-adamw-"), res.stdout
    assert "submitit INFO" not in res.stdout + res.stderr  # the launcher's own chatter stays in its logs
    assert not [p for p in root.rglob("*") if "%" in p.name]
    assert leftovers(root) == ([], [])
    assert len(list(root.glob(".sweeps/*/.submitit/*_log.out"))) == 2  # the jobs' logs are kept


def test_job_logs_are_replayed_in_job_order_without_submitit_lines(tmp_path, capsys):
    from omegaconf import OmegaConf

    from bench.sweep.launch import replay_job_logs

    folder = tmp_path / ".submitit"
    for job, status in (("10_1", "ok"), ("10_0", "diverged"), ("9_0", "old")):
        (folder / job).mkdir(parents=True)
        (folder / job / f"{job}_0_log.out").write_text(f"submitit INFO (t) - Starting\n{status}: runs/{job}\n")
        (folder / job / f"{job}_0_log.err").write_text(f"[{job}] step 5/5\nsubmitit INFO (t) - Exiting\n")
    os.utime(folder / "9_0" / "9_0_0_log.out", (0, 0))  # an earlier launch's job into the same folder
    config = OmegaConf.create({"hydra": {"launcher": {
        "_target_": "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
        "submitit_folder": f"{folder}/%j"}}})
    replay_job_logs(config, since=100.0)
    out = capsys.readouterr()
    assert out.out == "diverged: runs/10_0\nok: runs/10_1\n"
    assert out.err == "[10_0] step 5/5\n[10_1] step 5/5\n"

    config.hydra.launcher._target_ = "hydra._internal.core_plugins.basic_launcher.BasicLauncher"
    replay_job_logs(config, since=100.0)  # the basic launcher's jobs printed here already
    assert capsys.readouterr().out == ""
