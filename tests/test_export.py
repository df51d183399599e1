"""The results table as columns (hp/*, task/* only where they apply) and `bench export`."""

from __future__ import annotations

import io
import json
import math

import pandas as pd
import pytest
import yaml

from bench.config import CONF_DIR
from bench.results import store
from bench.results.synthetic import write_run
from bench.runner.rundir import write_config


def logreg_run(root, dataset: str, seed: int = 0, **settings):
    """A logreg run whose config.yaml is what `bench run task=logreg` writes: the task section is
    conf/task/logreg.yaml, which declares n/dim/margin for every dataset."""
    node = {**yaml.safe_load((CONF_DIR / "task" / "logreg.yaml").read_text()), "dataset": dataset, **settings}
    run_dir = write_run(root, task="logreg", seed=seed, task_settings={"dataset": dataset, **settings},
                        hyperparameters={"weight_decay": 0.01, "betas": [0.9, 0.999]})
    write_config(run_dir / "config.yaml", {"task": node, "optimizer": {"name": "adamw"}, "steps": 300, "seed": seed})
    return run_dir


@pytest.fixture
def mixed(runs_root):
    """Three tasks, two optimizers; ints, floats, lists and booleans among the hyperparameters."""
    for seed in range(2):
        write_run(runs_root, task="rosenbrock", optimizer="adamw", seed=seed, lr=0.01, task_settings={"dim": 2},
                  hyperparameters={"weight_decay": 0, "betas": [0.9, 0.99]})
        write_run(runs_root, task="rosenbrock", optimizer="sgd", seed=seed, lr=1, task_settings={"dim": 2},
                  hyperparameters={"momentum": 0.9, "nesterov": True}, status="diverged" if seed else "ok")
        logreg_run(runs_root, "breast_cancer", seed)
        logreg_run(runs_root, "separable", seed, dim=50)
    return runs_root


def test_one_float_column_per_hyperparameter(mixed):
    table = store.load(mixed).table
    for col in ("hp/lr", "hp/weight_decay", "hp/momentum", "hp/nesterov"):
        assert table[col].dtype == float, col
    sgd = table[table["optimizer"] == "sgd"]
    assert set(sgd["hp/lr"]) == {1.0} and set(sgd["hp/nesterov"]) == {1.0}
    assert table.loc[table["task"] == "rosenbrock", "hp/lr"].map(type).eq(float).all()
    adamw = table[(table["task"] == "rosenbrock") & (table["optimizer"] == "adamw")]
    assert set(adamw["hp/betas"]) == {"[0.9, 0.99]"} and adamw["hp/momentum"].isna().all()
    # the JSON column stays: the leaderboard's trials are built from it
    assert json.loads(sgd["hyperparameters"].iloc[0]) == {"lr": 1, "momentum": 0.9, "nesterov": True}
    assert table[table["hp/lr"] < 0.1]["optimizer"].eq("adamw").all()


def test_task_settings_only_where_the_task_reads_them(mixed):
    table = store.load(mixed).table.set_index("run_dir")
    logreg = table[table["task"] == "logreg"]
    inert = logreg[logreg["task/dataset"] == "breast_cancer"]
    separable = logreg[logreg["task/dataset"] == "separable"]
    # logreg.yaml declares dim/margin/n for its generated data; a breast_cancer run does not read them
    for col in ("task/dim", "task/margin", "task/n"):
        assert inert[col].isna().all(), col
    assert set(separable["task/dim"]) == {"50"} and set(separable["task/margin"]) == {"0.1"}
    assert set(inert["task/l2"]) == {"0.001"}  # a setting it does read is kept
    rosenbrock = table[table["task"] == "rosenbrock"]
    assert set(rosenbrock["task/dim"]) == {"2"} and rosenbrock["task/dataset"].isna().all()
    # an absent setting is no part of a label, and does not split a benchmark
    assert set(table["benchmark"]) == {"rosenbrock", "logreg[dataset=breast_cancer]", "logreg[dataset=separable]"}


def test_labels_name_only_the_settings_a_run_has(runs_root):
    logreg_run(runs_root, "breast_cancer")
    logreg_run(runs_root, "separable", dim=20)
    logreg_run(runs_root, "separable", dim=50)
    labels = set(store.load(runs_root).table["benchmark"])
    assert labels == {"logreg[dataset=breast_cancer]", "logreg[dataset=separable,dim=20]",
                      "logreg[dataset=separable,dim=50]"}


def test_whole_numbers_are_floats_too(runs_root):
    write_run(runs_root, lr=1, hyperparameters={"warmup": 10, "nesterov": False})
    table = store.load(runs_root).table
    assert [table[c].dtype for c in ("hp/lr", "hp/warmup", "hp/nesterov")] == [float] * 3


def test_an_index_of_the_old_layout_is_not_served(mixed):
    store.load(mixed)
    index = mixed / store.INDEX
    old = index.with_name("runs-v2.parquet")  # what the previous version cached: no hp/*, inert task/*
    cached = pd.read_parquet(index)
    cached.drop(columns=[c for c in cached if c.startswith("hp/")]).assign(**{"task/dim": "20"}).to_parquet(old)
    index.unlink()
    table = store.load(mixed).table
    assert index.exists() and table["hp/lr"].dtype == float
    assert table.loc[table["task/dataset"] == "breast_cancer", "task/dim"].isna().all()
    again = store.load(mixed).table  # served from the new index
    assert again["hp/lr"].dtype == float and again.loc[again["task/dataset"] == "breast_cancer", "task/dim"].isna().all()


def test_csv_export_round_trips(bench_cli, mixed, tmp_path):
    out = tmp_path / "runs.csv"
    result = bench_cli("export", "--runs", str(mixed), "--out", str(out))
    assert result.code == 0, result.stderr
    assert f"{out}: 8 runs" in result.stdout
    back = pd.read_csv(out)
    table = store.load(mixed).table
    assert len(back) == len(table) == 8 and set(back.columns) == set(table.columns)
    assert list(back.columns[:4]) == ["run_id", "task", "benchmark", "optimizer"]
    assert back["hp/lr"].dtype == float
    assert sorted(back["hp/lr"]) == sorted(table["hp/lr"])
    diverged = back[back["status"] == "diverged"]
    assert len(diverged) == 1 and math.isinf(diverged["loss"].iloc[0])
    assert back.loc[back["task/dataset"] == "breast_cancer", "task/dim"].isna().all()


def test_parquet_export_round_trips(bench_cli, mixed, tmp_path):
    out = tmp_path / "sub" / "runs.parquet"
    assert bench_cli("export", "--runs", str(mixed), "--out", str(out)).code == 0
    back = pd.read_parquet(out)
    table = store.load(mixed).table
    assert len(back) == 8 and set(back.columns) == set(table.columns)
    assert back["hp/lr"].dtype == float and back["seed"].tolist() == table["seed"].tolist()
    assert set(back["run_id"]) == set(table["run_id"])
    # --format wins over the suffix
    other = tmp_path / "runs.data"
    assert bench_cli("export", "--runs", str(mixed), "--format", "parquet", "--out", str(other)).code == 0
    assert len(pd.read_parquet(other)) == 8


def test_csv_to_stdout(bench_cli, mixed):
    result = bench_cli("export", "--runs", str(mixed), "--out", "-", "task=rosenbrock")
    assert result.code == 0, result.stderr
    back = pd.read_csv(io.StringIO(result.stdout))
    assert len(back) == 4 and set(back["task"]) == {"rosenbrock"}


def test_filters_like_the_leaderboard(bench_cli, mixed, tmp_path):
    out = tmp_path / "f.csv"
    assert bench_cli("export", "--runs", str(mixed), "--out", str(out), "optimizer=sgd").code == 0
    assert set(pd.read_csv(out)["optimizer"]) == {"sgd"}
    out.unlink()
    assert bench_cli("export", "--runs", str(mixed), "--out", str(out), "--task", "logreg[dataset=separable]").code == 0
    assert set(pd.read_csv(out)["task/dataset"]) == {"separable"}
    result = bench_cli("export", "--runs", str(mixed), "--out", str(tmp_path / "g.csv"), "task=nope")
    assert result.code == 2 and "no runs of task nope" in result.stderr
    result = bench_cli("export", "--runs", str(mixed), "--out", "-", "colour=red")
    assert result.code == 2 and "use task=NAME" in result.stderr


def test_existing_output_needs_force(bench_cli, mixed, tmp_path):
    out = tmp_path / "runs.csv"
    out.write_text("mine\n")
    result = bench_cli("export", "--runs", str(mixed), "--out", str(out))
    assert result.code == 2 and result.stderr.count("\n") == 1
    assert "exists; pass --force" in result.stderr and out.read_text() == "mine\n"
    assert bench_cli("export", "--runs", str(mixed), "--out", str(out), "--force").code == 0
    assert len(pd.read_csv(out)) == 8
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("args, message", [
    (["--format", "xlsx", "--out", "x.xlsx"], "unknown --format 'xlsx'; choose one of: csv, parquet"),
    (["--out", "x.txt"], "cannot tell the format of 'x.txt'"),
    (["--format", "parquet", "--out", "-"], "parquet is binary"),
    (["--out", "."], "is a directory; pass a file name"),
])
def test_bad_output_is_one_line_and_writes_nothing(bench_cli, mixed, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = bench_cli("export", "--runs", str(mixed), *args)
    assert result.code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: ") and message in result.stderr and result.stderr.count("\n") == 1
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == []


def test_missing_runs_root(bench_cli, tmp_path):
    result = bench_cli("export", "--runs", str(tmp_path / "nope"), "--out", str(tmp_path / "x.csv"))
    assert result.code == 2 and "does not exist; pass --runs DIR" in result.stderr
    assert not (tmp_path / "x.csv").exists()
