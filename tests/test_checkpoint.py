"""Checkpoint and resume: a run stopped by a signal and resumed gives the same metrics, bit for
bit, as a run that was never stopped; checkpoints load with weights_only=True."""

import json
import random
import signal

import numpy as np
import pytest
import torch
from conftest import only_run, read_run

from bench.runner.checkpoint import FILE, INTERRUPTED
from bench.tasks.logreg import LogReg

ARGS = ("run", "task=logreg", "optimizer=adam", "batch_size=64", "steps=60", "log_every=1", "eval_every=7",
        "progress=off")
ORIGINAL_LOSS = LogReg.loss


def noisy_loss(signal_at_call=None):
    """LogReg's loss plus draws from every global RNG (torch, numpy, python), so the curve
    depends on all three generators being restored. Optionally sends SIGUSR1 to this process on
    the n-th training call (call 1 is the warm-up, call k + 1 computes step k)."""
    calls = {"n": 0}

    def loss(self, model, batch):
        calls["n"] += torch.is_grad_enabled()  # evaluation runs under no_grad
        if calls["n"] == signal_at_call and torch.is_grad_enabled():
            signal.raise_signal(signal.SIGUSR1)
        noise = torch.rand(()) + float(np.random.rand()) + random.random()
        return ORIGINAL_LOSS(self, model, batch) + 1e-3 * noise

    return loss


def curve(lines):
    return [{k: v for k, v in line.items() if not k.startswith("time/")} for line in lines]


def test_signal_checkpoints_and_resume_is_bit_identical(bench_cli, tmp_path, monkeypatch):
    monkeypatch.setattr(LogReg, "loss", noisy_loss())
    reference = tmp_path / "reference"
    assert bench_cli(*ARGS, f"runs_root={reference}").code == 0
    ref_summary, ref_lines = read_run(only_run(reference))

    root = tmp_path / "interrupted"
    monkeypatch.setattr(LogReg, "loss", noisy_loss(signal_at_call=38))  # inside step 37, between evals
    stopped = bench_cli(*ARGS, f"runs_root={root}")
    assert stopped.code == 128 + signal.SIGUSR1, stopped.output
    run_dir = only_run(root)
    assert not (run_dir / "summary.json").exists()  # nothing claims completion
    note = json.loads((run_dir / INTERRUPTED).read_text())
    assert note["status"] == "interrupted" and note["step"] == 37 and note["signal"] == "SIGUSR1"
    state = torch.load(run_dir / FILE, weights_only=True)
    assert state["step"] == 37 and set(state["rng"]) >= {"torch", "numpy", "python"}
    assert "interrupted" in stopped.output and "resume" in stopped.output

    monkeypatch.setattr(LogReg, "loss", noisy_loss())
    resumed = bench_cli(*ARGS, f"runs_root={root}")
    assert resumed.code == 0, resumed.output
    summary, lines = read_run(run_dir)
    assert summary["status"] == "ok" and summary["resumed_from"] == [37]
    assert curve(lines) == curve(ref_lines)
    for key in ("final", "best", "steps_to_target", "steps"):
        assert summary[key] == ref_summary[key]
    assert not (run_dir / FILE).exists() and not (run_dir / INTERRUPTED).exists()


def test_periodic_checkpoints_are_written_and_cleared(bench_cli, runs_root, monkeypatch):
    saved = []
    from bench.runner.checkpoint import Checkpointer

    original = Checkpointer.save
    monkeypatch.setattr(Checkpointer, "save", lambda self, step, loop: (saved.append(step), original(self, step, loop)))
    assert bench_cli(*ARGS, "checkpoint_every=25", f"runs_root={runs_root}").code == 0
    assert saved == [25, 50]  # not at the final step: a finished run needs none
    assert not (only_run(runs_root) / FILE).exists()


def test_unusable_checkpoint_is_set_aside(bench_cli, runs_root):
    args = (*ARGS, f"runs_root={runs_root}")
    assert bench_cli(*args, "steps=10").code == 0
    run_dir = only_run(runs_root)
    (run_dir / "summary.json").unlink()  # make it look unfinished, with a broken checkpoint
    (run_dir / FILE).write_bytes(b"not a checkpoint")
    res = bench_cli(*args, "steps=10")
    assert res.code == 0 and "cannot be resumed" in res.output
    summary, _ = read_run(run_dir)
    assert summary["status"] == "ok" and summary["resumed_from"] == []
    assert (run_dir / f"{FILE}.unusable").exists()


@pytest.mark.parametrize("keep", [None, 2])
def test_trim_metrics(tmp_path, keep):
    from bench.runner.rundir import trim_metrics

    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(5)) + '{"step": 5, "tr')
    trim_metrics(path, keep)
    if keep is None:
        assert not path.exists()
    else:
        assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [0, 1, 2]
