"""Start-up discipline: commands that do not train must not import what training needs.

torch takes seconds to import, scikit-learn, scipy, pandas and matplotlib about as many again, so
`bench --help`, `bench list ...`, `bench experiment` (the list) and an `already done` answer
import none of them (docs/BENCHMARKS.md, Start-up). Each case runs in a fresh interpreter and
reads sys.modules; nothing here is timed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import write_fashion_dir
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class

import bench.tasks
from bench.config import CONF_DIR, choices, option_defaults, run_id
from bench.runner.main import finished_summary

HEAVY = ("torch", "sklearn", "scipy", "pandas", "matplotlib")
REPO = Path(__file__).resolve().parents[1]


def bench_in_fresh_process(*commands: list[str]) -> dict:
    """Run each `bench` command line in one new interpreter; its exit codes, output and the heavy
    modules imported by the end."""
    script = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from bench.cli import app
        codes, outs = [], []
        for args in {[list(c) for c in commands]!r}:
            out = io.StringIO()
            sys.argv = ["bench", *args]
            with contextlib.redirect_stdout(out):
                try:
                    app(args, prog_name="bench")
                except SystemExit as exc:
                    codes.append(exc.code or 0)
            outs.append(out.getvalue())
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
        print(json.dumps({{"codes": codes, "outs": outs, "heavy": heavy}}))
    """)
    env = {**os.environ, "WANDB_MODE": "disabled", "COLUMNS": "200"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_help_and_listing_commands_import_nothing_heavy():
    result = bench_in_fresh_process(["--help"], ["list", "optimizers"], ["list", "tasks"], ["list", "schedules"],
                                    ["list", "loggers"], ["experiment"])
    assert result["heavy"] == []
    assert result["codes"] == [0] * 6
    help_text, optimizers, tasks, _, _, experiments = result["outs"]
    assert "bench list optimizers" in help_text
    assert "adamw" in optimizers and "lion" in optimizers
    # the data column is still filled in, from file checks alone
    assert "scikit-learn (bundled) (present)" in tasks and "rosenbrock" in tasks
    assert "edge_of_stability" in experiments


def test_importing_the_cli_imports_nothing_heavy():
    assert bench_in_fresh_process()["heavy"] == []


def _finished(root: Path, overrides: list[str], status: str = "ok") -> Path:
    """A run directory as a finished `bench run` leaves it, made without training."""
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("config", overrides=[*overrides, f"runs_root={root}"])
    finally:
        GlobalHydra.instance().clear()
    run_dir = root / run_id(cfg)
    run_dir.mkdir(parents=True)
    (run_dir / "summary.json").write_text(json.dumps({"run_id": run_id(cfg), "status": status}))
    return run_dir


RUN = ["task=logreg", "optimizer=adamw", "steps=20", "progress=off"]


@pytest.mark.parametrize("status", ["ok", "diverged"])
def test_already_done_answers_without_torch(tmp_path, status):
    run_dir = _finished(tmp_path, RUN, status)
    result = bench_in_fresh_process(["run", *RUN, f"runs_root={tmp_path}"])
    assert result["codes"] == [0]
    assert result["outs"] == [f"already done: {run_dir}  (force=true runs it again into a new directory)\n"]
    assert result["heavy"] == []
    assert json.loads((run_dir / "summary.json").read_text())["status"] == status  # untouched


def test_a_sweep_of_finished_runs_answers_without_torch(tmp_path):
    dirs = [_finished(tmp_path, [*RUN, f"seed={seed}"]) for seed in (0, 1)]
    result = bench_in_fresh_process(["run", "-m", *RUN, "seed=0,1", f"runs_root={tmp_path}"])
    assert result["codes"] == [0]
    assert [line.split("  ")[0] for line in result["outs"][0].splitlines()] == [f"already done: {d}" for d in dirs]
    assert result["heavy"] == []


def test_finished_summary_is_the_already_done_rule(tmp_path):
    def cfg(**top):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                extra = [f"{k}={v}" for k, v in top.items()]
                return compose("config", overrides=[*RUN, f"runs_root={tmp_path}", *extra])
        finally:
            GlobalHydra.instance().clear()

    assert finished_summary(cfg()) is None  # nothing there yet
    run_dir = _finished(tmp_path, RUN, "failed")
    assert finished_summary(cfg()) is None  # a failed run is retried, never done
    (run_dir / "summary.json").write_text(json.dumps({"status": "ok"}))
    assert finished_summary(cfg())["status"] == "ok"
    assert finished_summary(cfg(force="true")) is None  # force=true runs it again


def _class_answer(node):
    present = getattr(get_class(node._target_), "data_present", None)
    return None if present is None else bool(present(node))


def test_data_checks_give_the_task_classes_answers(tmp_path):
    """`bench list tasks` reads bench.tasks.data_present; `bench check` and the tasks use the
    classes' data_present: both must say the same for every task, data there or not."""
    fashion, cifar, corpus = tmp_path / "fm", tmp_path / "cifar", tmp_path / "corpus.txt"
    write_fashion_dir(fashion, n=20, n_test=10)
    (cifar / "cifar-10-batches-py").mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (cifar / "cifar-10-batches-py" / name).write_bytes(b"")
    corpus.write_text("to be or not to be")
    variants = {"data_dir": [None, str(fashion), str(cifar), str(tmp_path / "none")],
                "data": [None, str(corpus), str(tmp_path / "none.txt")],
                "dataset": ["separable", "digits"], "synthetic": [0, 8]}
    answers = set()
    for name in choices("task"):
        node = option_defaults("task", name)
        assert bench.tasks.data_present(node) == _class_answer(node), name
        for key, values in variants.items():
            if key not in node:
                continue
            for value in values:
                node[key] = value
                answer = bench.tasks.data_present(node)
                assert answer == _class_answer(node), (name, key, value)
                answers.add(answer)
    assert answers == {True, False}  # both answers were exercised


def test_every_bench_task_that_reads_data_has_a_file_check():
    targets = {str(option_defaults("task", name)._target_) for name in choices("task")}
    with_data = {t for t in targets if hasattr(get_class(t), "data_present")}
    assert with_data == set(bench.tasks.DATA_CHECKS)


def test_the_quick_answer_follows_the_run_directory(bench_cli, tmp_path):
    """In one process (as `bench tune`, `bench check` and the tests use it): done, then removed,
    then done again; the quick `already done` answer is never one remembered from before."""
    args = ["run", *RUN, "steps=5", f"runs_root={tmp_path}"]
    first = bench_cli(*args)
    assert first.code == 0 and first.stdout.startswith("ok: "), first.output
    run_dir = Path(first.stdout.split()[1])
    again = bench_cli(*args)
    assert again.code == 0 and again.stdout.startswith(f"already done: {run_dir}"), again.output
    (run_dir / "summary.json").unlink()
    third = bench_cli(*args)
    assert third.code == 0 and third.stdout.startswith("ok: "), third.output
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "ok"
