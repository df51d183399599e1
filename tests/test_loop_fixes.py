"""The loop's fixes: grad_clip reaches closure optimizers (SAM), and peak_mem_bytes is each run's
own peak, not the process's so far (in-process sweeps run many trials in one process)."""

import json

import torch
from conftest import only_run

from bench.runner.clock import peak_memory_bytes

ARGS = ("run", "task=logreg", "steps=5", "log_every=1", "eval_every=5", "device=cpu", "progress=off")


def test_grad_clip_applies_between_each_closure_backward_and_the_step(bench_cli, tmp_path, monkeypatch):
    norms = []
    original = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda params, clip: norms.append(original(params, clip)))
    assert bench_cli(*ARGS, "optimizer=sam", "grad_clip=1e-3", f"runs_root={tmp_path / 'clip'}").code == 0
    assert len(norms) == 2 * 5  # SAM evaluates the closure twice per step
    clipped = json.loads((only_run(tmp_path / "clip") / "summary.json").read_text())
    assert bench_cli(*ARGS, "optimizer=sam", f"runs_root={tmp_path / 'free'}").code == 0
    free = json.loads((only_run(tmp_path / "free") / "summary.json").read_text())
    assert clipped["final"]["train/loss"] != free["final"]["train/loss"]  # the clip changed the updates


def test_peak_memory_is_per_run_on_cpu(bench_cli, runs_root):
    cpu = torch.device("cpu")
    big = torch.ones(100_000_000)  # 400 MB, freed before the run
    big.add_(1)
    del big
    process_peak = peak_memory_bytes(cpu)
    assert bench_cli(*ARGS, "optimizer=adamw", f"runs_root={runs_root}").code == 0
    summary = json.loads((only_run(runs_root) / "summary.json").read_text())
    assert 0 < summary["peak_mem_bytes"] < process_peak - 150e6
