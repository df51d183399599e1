"""Hydra's own sweepers under `bench run -m`: the Optuna sweeper tunes a run's final metric,
every trial is a normal run directory, and the same command after an interrupt re-runs no
finished trial. Also: the sweep syntaxes preflight accepts, and the one-line errors it keeps."""

from __future__ import annotations

import fnmatch
import json
import math
import signal

import pytest

from bench.config import choices
from bench.runner.sweepers import objective
from bench.tasks.synthetic import SyntheticTask

pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")

ORIGINAL_LOSS = SyntheticTask.loss
OPTUNA = ("run", "-m", "task=rosenbrock", "optimizer=adam", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=6",
          "optimizer.lr=tag(log,interval(1e-4,1e-1))", "steps=12", "eval_every=6", "log_every=6",
          "checkpoint_every=0", "progress=off")


def summaries(root) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in root.glob("*/summary.json")}


def signal_at_call(n: int):
    calls = {"n": 0}

    def loss(self, model, batch):
        calls["n"] += 1
        if calls["n"] == n:
            signal.raise_signal(signal.SIGUSR1)
        return ORIGINAL_LOSS(self, model, batch)

    return loss


def test_optuna_sweep_writes_six_runs_the_leaderboard_reads_and_resumes(bench_cli, runs_root, monkeypatch):
    # interrupted inside the fourth trial: three finished, one keeps its checkpoint
    monkeypatch.setattr(SyntheticTask, "loss", signal_at_call(3 * 13 + 5))
    stopped = bench_cli(*OPTUNA, f"runs_root={runs_root}")
    assert stopped.code == 128 + signal.SIGUSR1, stopped.output
    finished = {name: s["started_at"] for name, s in summaries(runs_root).items()}
    assert len(finished) == 3
    assert len(list(runs_root.glob("*/checkpoint.pt"))) == 1

    monkeypatch.setattr(SyntheticTask, "loss", ORIGINAL_LOSS)
    res = bench_cli(*OPTUNA, f"runs_root={runs_root}")
    assert res.code == 0, res.output
    runs = summaries(runs_root)
    assert len(runs) == 6 and res.output.count("already done") == 3, res.output
    assert all(runs[name]["started_at"] == started for name, started in finished.items())  # not re-run
    assert sum(bool(s.get("resumed_from")) for s in runs.values()) == 1
    assert len({s["hyperparameters"]["lr"] for s in runs.values()}) == 6
    assert all(1e-4 <= s["hyperparameters"]["lr"] <= 1e-1 for s in runs.values())

    board = bench_cli("leaderboard", "--runs", str(runs_root))
    assert board.code == 0 and "adam" in board.output, board.output


def test_objective_is_the_final_metric_and_a_miss_is_the_worst():
    ok = {"status": "ok", "metric": "val/acc", "final": {"val/acc": 0.9}}
    assert objective(ok, "maximize") == 0.9 and objective({**ok, "status": "skipped"}) == 0.9
    for miss in ({**ok, "status": "diverged"}, {**ok, "status": "failed", "final": {}}):
        assert objective(miss, "minimize") == math.inf and objective(miss, "maximize") == -math.inf


@pytest.mark.parametrize("args, says", [
    (("hydra/sweeper=nevergrad",), "pip install hydra-nevergrad-sweeper"),
    (("hydra/sweeper=nosuch",), "unknown Hydra sweeper 'nosuch'"),
    (("hydra/launcher=rq",), "pip install hydra-rq-launcher"),
    (("optimizer=glob(nosuch*)",), "matches no optimizer"),
    (("seed=glob(a*)",), "glob() picks options of a config group"),
    (("optimizer=interval(1,2)",), "not an interval"),
    (("optimizer.lr=tag(log,interval(-1,1e-1))",), "optimizer.lr must be > 0"),
])
def test_sweep_syntax_errors_are_one_line_and_run_nothing(bench_cli, runs_root, args, says):
    res = bench_cli("run", "-m", "task=rosenbrock", *args, f"runs_root={runs_root}")
    assert res.code == 2 and says in res.output, res.output
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_glob_and_tagged_choices_sweep_like_hydra(bench_cli, runs_root):
    res = bench_cli("run", "-m", "task=rosenbrock", "optimizer=glob(adam*,exclude=adamw)", "optimizer.lr=tag(t,choice(1e-3))",
                    "steps=2", "progress=off", f"runs_root={runs_root}")
    assert res.code == 0, res.output
    expected = [o for o in choices("optimizer") if fnmatch.fnmatch(o, "adam*") and o != "adamw"]
    assert sorted(s["optimizer"] for s in summaries(runs_root).values()) == sorted(expected)
