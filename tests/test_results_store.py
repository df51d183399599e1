"""The results store: run directories → DataFrames, the parquet index, and what gets skipped."""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pandas as pd
import pytest

from bench.results import store
from bench.results.synthetic import write_run


@pytest.fixture
def messy_root(tmp_path):
    """Three good runs plus every kind of directory a real runs root collects."""
    root = tmp_path / "runs"
    good = [write_run(root, optimizer="adamw", seed=s, value=0.1 + s / 100) for s in range(3)]
    corrupt = write_run(root, optimizer="sgd", seed=0)
    (corrupt / "summary.json").write_text('{"run_id": "x", "task": "quad", "sta')  # torn write
    truncated = write_run(root, optimizer="lion", seed=0, value=0.2)
    text = (truncated / "metrics.jsonl").read_text()
    (truncated / "metrics.jsonl").write_text(text[: len(text) - 25])  # crash mid-line
    unfinished = root / "quad-adam-0000000000"
    unfinished.mkdir()
    (unfinished / "config.yaml").write_text("task:\n  name: quad\n")
    foreign = root / "notes"
    foreign.mkdir()
    (foreign / "readme.txt").write_text("not a run")
    other_json = write_run(root, optimizer="sgd", seed=1)
    (other_json / "summary.json").write_text(json.dumps({"hello": "world"}))
    (root / "stray-file.txt").write_text("files at the top level are ignored")
    return root, good, corrupt, truncated, unfinished, foreign, other_json


def test_load_keeps_good_runs_and_lists_each_problem_once(messy_root):
    root, good, corrupt, truncated, unfinished, foreign, other_json = messy_root
    runs = store.load(root)
    assert sorted(runs.table["optimizer"]) == ["adamw", "adamw", "adamw", "lion"]
    reasons = {os.path.basename(s.path): s.reason for s in runs.skipped}
    assert len(reasons) == len(runs.skipped) == 5
    assert "summary.json is corrupt" in reasons[corrupt.name]
    assert "partial line (truncated)" in reasons[truncated.name]
    assert "unfinished" in reasons[unfinished.name]
    assert "not a run directory" in reasons[foreign.name]
    assert "lacks task, optimizer, status, metric, mode" in reasons[other_json.name]


def test_truncated_curve_is_read_up_to_the_last_complete_line(messy_root):
    root, *_, truncated, _, _, _ = messy_root
    runs = store.load(root)
    lion = runs.table.loc[runs.table["optimizer"] == "lion", "run_id"]
    curves = runs.curves(lion)
    assert list(curves.columns) == ["run_id", "step", "time", "items", "metric", "value"]
    assert curves["step"].max() == 90  # the line for step 100 was cut
    assert sum("line 11 is not a complete JSON record" in s.reason for s in runs.skipped) == 1
    runs.curves(lion)  # reading again reports nothing new
    assert sum("line 11" in s.reason for s in runs.skipped) == 1


def test_columns_values_and_orientation(tmp_path):
    root = tmp_path / "runs"
    write_run(root, optimizer="adamw", value=0.2, steps_to_target=40, time_to_target_s=0.4, target=0.3)
    write_run(root, optimizer="sgd", status="diverged", value=0.9)
    write_run(root, task="cls", optimizer="adamw", metric="val/acc", mode="max", value=0.8)
    t = store.load(root).table.set_index(["task", "optimizer"])
    assert t.loc[("quad", "adamw"), "loss"] == pytest.approx(0.2)
    assert t.loc[("quad", "adamw"), "time_to_target_inf"] == pytest.approx(0.4)
    assert t.loc[("quad", "sgd"), "loss"] == math.inf  # diverged: a miss, whatever its last value
    assert t.loc[("quad", "sgd"), "steps_to_target_inf"] == math.inf
    assert t.loc[("cls", "adamw"), "loss"] == pytest.approx(-0.8)  # higher is better → negated
    assert t.loc[("cls", "adamw"), "value"] == pytest.approx(0.8)
    assert json.loads(t.loc[("quad", "adamw"), "hyperparameters"]) == {"lr": 0.001}


def test_diverged_step_stays_in_the_curve_as_inf(tmp_path):
    run = write_run(tmp_path / "runs", status="diverged")
    runs = store.load(tmp_path / "runs")
    curve = runs.curves()
    last = curve[(curve["metric"] == "train/loss")].sort_values("step").iloc[-1]
    assert last["value"] == math.inf and run.exists()


def test_index_is_reused_and_follows_changes(tmp_path):
    root = tmp_path / "runs"
    runs_dirs = [write_run(root, seed=s, value=0.1 * (s + 1)) for s in range(4)]
    first = store.load(root)
    assert (root / store.INDEX).exists()
    cached = store.load(root)
    pd.testing.assert_frame_equal(first.table, cached.table)
    pd.testing.assert_frame_equal(store.load(root, cache=False).table, cached.table, check_dtype=False)

    # a rewritten summary is re-read (its mtime and size change), a removed run disappears
    summary = json.loads((runs_dirs[0] / "summary.json").read_text())
    summary["final"]["val/loss"] = 0.55555
    time.sleep(0.01)
    (runs_dirs[0] / "summary.json").write_text(json.dumps(summary))
    for f in runs_dirs[1].iterdir():
        f.unlink()
    runs_dirs[1].rmdir()
    after = store.load(root).table.set_index("seed")
    assert len(after) == 3 and after.loc[0, "value"] == pytest.approx(0.55555)

    # a metrics.jsonl truncated after the index was written is still caught
    (runs_dirs[2] / "metrics.jsonl").write_text('{"step": 0, "train/loss": 1.0}\n{"step": 1')
    assert any("truncated" in s.reason for s in store.load(root).skipped)


def test_corrupt_index_is_rebuilt_and_unwritable_root_still_loads(tmp_path):
    root = tmp_path / "runs"
    write_run(root)
    (root / ".index").mkdir()
    (root / store.INDEX).write_text("not parquet")
    assert len(store.load(root).table) == 1
    assert pd.read_parquet(root / store.INDEX).shape[0] == 1
    # the index cannot be written (a file where its folder should be): loading works without it
    (root / store.INDEX).unlink()
    (root / ".index").rmdir()
    (root / ".index").write_text("in the way")
    write_run(root, seed=1)
    assert len(store.load(root).table) == 2
    assert (root / ".index").read_text() == "in the way"


def test_missing_root_and_empty_root(tmp_path):
    assert store.load(tmp_path / "absent").table.empty
    (tmp_path / "empty").mkdir()
    runs = store.load(tmp_path / "empty")
    assert runs.table.empty and runs.skipped == []


def test_forced_rerun_counts_once(tmp_path):
    root = tmp_path / "runs"
    first = write_run(root, value=0.3)
    run_id = json.loads((first / "summary.json").read_text())["run_id"]
    time.sleep(0.01)
    write_run(root, value=0.2, name=f"{run_id}-2")
    runs = store.load(root)
    assert len(runs.table) == 1 and runs.table["value"].iloc[0] == pytest.approx(0.2)
    assert any("superseded" in s.reason and s.path.endswith(first.name) for s in runs.skipped)


def test_the_same_run_under_two_roots_counts_once_and_says_why(tmp_path):
    # e.g. the demo's runs and a check's runs, both below ./runs: not a forced re-run
    first = write_run(tmp_path / "runs" / "demo", value=0.3)
    time.sleep(0.01)
    second = write_run(tmp_path / "runs" / "check", value=0.3)
    runs = store.load(tmp_path / "runs")
    assert len(runs.table) == 1
    (why,) = [s.reason for s in runs.skipped if s.path == str(first)]
    assert "superseded" not in why and f"the same config and seed as {second}" in why


def test_benchmark_label_separates_budgets_and_task_settings(tmp_path):
    root = tmp_path / "runs"
    write_run(root, steps=100)
    write_run(root, steps=300)
    write_run(root, task="logreg", task_settings={"dataset": "wine"})
    write_run(root, task="logreg", task_settings={"dataset": "iris"})
    write_run(root, task="other")
    labels = sorted(store.load(root).table["benchmark"])
    assert labels == ["logreg[dataset=iris]", "logreg[dataset=wine]", "other", "quad[budget=100]", "quad[budget=300]"]


def test_setting_is_hyperparameters_and_schedule(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        write_run(root, lr=0.1, seed=seed)
        write_run(root, lr=0.01, seed=seed)
    table = store.load(root).table
    assert table["setting"].nunique() == 2
    assert np.all(table.groupby("setting").size() == 2)


def test_runs_in_nested_folders_are_found(tmp_path):
    root = tmp_path / "runs"
    top = write_run(root, optimizer="adamw", seed=0)
    nested = [write_run(root / "demo" / "runs", optimizer="lion", seed=s) for s in range(2)]
    deeper = write_run(root / "experiments" / "x-cpu", optimizer="sgd", seed=0)
    (root / "demo" / "plots").mkdir()
    (root / "demo" / "plots" / "curves.png").write_bytes(b"png")
    (root / "empty" / "also-empty").mkdir(parents=True)
    runs = store.load(root)
    assert sorted(runs.table["run_dir"]) == sorted(str(p) for p in [top, *nested, deeper])
    reasons = {os.path.relpath(s.path, root): s.reason for s in runs.skipped}
    assert set(reasons) == {"demo/plots", "empty"}, reasons  # each foreign folder once, at its top
    assert all("not a run directory" in r for r in reasons.values())
    assert len(store.load(root).table) == 4  # and again from the index
