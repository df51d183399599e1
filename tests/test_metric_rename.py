"""`val/subopt` was renamed `train/subopt` (F − f* is the training objective's suboptimality):
run directories, checkpoints and summaries written under the old name are read under the new
one, so old and new runs rank, plot and resume as one metric."""

from __future__ import annotations

import json
import math
import signal

import torch
from conftest import only_run, read_run

from bench.results import store
from bench.results.names import RENAMED_METRICS, canonical_keys, canonical_metric, canonical_summary
from bench.results.synthetic import write_run
from bench.runner.checkpoint import FILE
from bench.runner.rundir import read_summary
from bench.tasks.logreg import LogReg

OLD, NEW = "val/subopt", "train/subopt"
RUN = ("run", "task=logreg", "steps=20", "eval_every=5", "log_every=5", "progress=off")


def to_old_names(run_dir):
    """Rewrite a run directory as the runner wrote it before the rename."""
    for name in ("summary.json", "metrics.jsonl"):
        path = run_dir / name
        text = path.read_text()
        assert f'"{NEW}"' in text
        path.write_text(text.replace(f'"{NEW}"', f'"{OLD}"'))


def test_names():
    assert RENAMED_METRICS == {OLD: NEW}
    assert canonical_metric(OLD) == NEW and canonical_metric(NEW) == NEW and canonical_metric("val/acc") == "val/acc"
    assert canonical_metric(None) is None and math.isnan(canonical_metric(math.nan))
    assert list(canonical_keys({"train/loss": 1.0, OLD: 2.0, "val/acc": 0.5})) == ["train/loss", NEW, "val/acc"]
    assert canonical_keys({OLD: 2.0, NEW: 3.0}) == {NEW: 3.0}  # a current name wins over an old one
    old = {"metric": OLD, "final": {OLD: 0.1, "val/loss": 0.3}, "best": 0.1, "target": 1e-3}
    assert canonical_summary(old) == {"metric": NEW, "final": {NEW: 0.1, "val/loss": 0.3}, "best": 0.1, "target": 1e-3}
    assert old["metric"] == OLD  # the caller's dict is left alone
    assert canonical_summary({"status": "failed", "final": {}}) == {"status": "failed", "final": {}}


def test_old_and_new_real_runs_load_as_one_metric(bench_cli, tmp_path):
    old_root, root = tmp_path / "old", tmp_path / "runs"
    assert bench_cli(*RUN, "optimizer=sgd", f"runs_root={old_root}").code == 0
    old_dir = only_run(old_root)
    to_old_names(old_dir)
    root.mkdir()
    old_dir.rename(root / old_dir.name)
    assert bench_cli(*RUN, "optimizer=adamw", f"runs_root={root}").code == 0
    old_summary, old_lines = read_run(root / old_dir.name)
    assert old_summary["metric"] == OLD and OLD in old_summary["final"] and OLD in old_lines[0]

    for attempt in ("fresh", "from the index"):
        runs = store.load(root)
        table = runs.table
        assert not runs.skipped, (attempt, runs.skipped)
        assert sorted(table["optimizer"]) == ["adamw", "sgd"] and set(table["metric"]) == {NEW}, attempt
        assert f"final/{OLD}" not in table and table[f"final/{NEW}"].notna().all()
        assert (table["value"] > 0).all() and set(table["benchmark"]) == {"logreg"}
        curves = runs.curves()
        assert OLD not in set(curves["metric"])
        per_run = curves[curves["metric"] == NEW].groupby("run_id")["step"].apply(list)
        assert {tuple(steps) for steps in per_run} == {(0, 5, 10, 15, 20)}

    # everything else that reads summary.json (sweeps, experiments, the runner's "already done")
    assert read_summary(root / old_dir.name)["metric"] == NEW
    again = bench_cli(*RUN, "optimizer=sgd", f"runs_root={root}")
    assert again.code == 0 and "already done" in again.output


def test_synthetic_old_and_new_runs(tmp_path):
    root = tmp_path / "runs"
    write_run(root, task="rosenbrock", optimizer="adamw", metric=OLD, value=0.2)
    write_run(root, task="rosenbrock", optimizer="lion", metric=NEW, value=0.1)
    table = store.load(root).table.set_index("optimizer")
    assert set(table["metric"]) == {NEW}
    assert table.loc["adamw", "value"] == 0.2 and table.loc["lion", "value"] == 0.1


def interrupt_then_rename(bench_cli, monkeypatch, root, args):
    """A logreg run stopped by a signal at step 37, its checkpoint and curve then rewritten with
    the old metric name, as an interrupted run from before the rename would have left them."""
    original = LogReg.loss
    calls = {"n": 0}

    def loss(self, model, batch):
        calls["n"] += torch.is_grad_enabled()
        if calls["n"] == 38 and torch.is_grad_enabled():  # call 1 is the warm-up: inside step 37
            signal.raise_signal(signal.SIGUSR1)
        return original(self, model, batch)

    monkeypatch.setattr(LogReg, "loss", loss)
    assert bench_cli(*args, f"runs_root={root}").code == 128 + signal.SIGUSR1
    monkeypatch.setattr(LogReg, "loss", original)
    run_dir = only_run(root)
    state = torch.load(run_dir / FILE, weights_only=True)
    final = state["loop"]["outcome"]["final"]
    state["loop"]["outcome"]["final"] = {OLD if k == NEW else k: v for k, v in final.items()}
    torch.save(state, run_dir / FILE)
    path = run_dir / "metrics.jsonl"
    path.write_text(path.read_text().replace(f'"{NEW}"', f'"{OLD}"'))
    return run_dir


ARGS = ("run", "task=logreg", "optimizer=adam", "batch_size=64", "steps=60", "log_every=1", "eval_every=7",
        "progress=off")


def test_resuming_an_old_interrupted_run(bench_cli, tmp_path, monkeypatch):
    run_dir = interrupt_then_rename(bench_cli, monkeypatch, tmp_path / "runs", ARGS)
    assert bench_cli(*ARGS, f"runs_root={tmp_path / 'runs'}").code == 0
    summary, lines = read_run(run_dir)
    assert summary["status"] == "ok" and summary["resumed_from"] == [37] and summary["metric"] == NEW
    assert NEW in summary["final"] and OLD not in summary["final"]
    assert OLD in lines[0] and NEW in lines[-1]  # the curve on disk mixes both names
    curve = store.load(tmp_path / "runs").curves()
    assert OLD not in set(curve["metric"])
    steps = curve.loc[curve["metric"] == NEW, "step"].tolist()
    assert steps == list(range(0, 60, 7)) + [60]  # one curve across the resume, no step twice


def test_an_old_checkpoints_final_metrics_are_renamed(bench_cli, tmp_path, monkeypatch):
    # Diverging at once after the resume leaves `final` as the checkpoint had it (step 35's eval).
    run_dir = interrupt_then_rename(bench_cli, monkeypatch, tmp_path / "runs", ARGS)
    monkeypatch.setattr(LogReg, "loss", lambda self, model, batch: model.weight.sum() * math.nan)
    assert bench_cli(*ARGS, f"runs_root={tmp_path / 'runs'}").code == 0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged_at"] == 38
    assert NEW in summary["final"] and OLD not in summary["final"] and summary["final"][NEW] > 0
    table = store.load(tmp_path / "runs").table
    assert table["metric"].tolist() == [NEW] and table["loss"].tolist() == [math.inf]
