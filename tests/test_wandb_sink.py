"""`logger=wandb`: offline runs leave wandb files in the run directory; a wandb that cannot start
costs one warning line, never the run."""

from __future__ import annotations

import sys

import pytest
from conftest import only_run, read_run

wandb = pytest.importorskip("wandb", reason="wandb is an optional dependency (pip install '.[wandb]')")


def _run(bench_cli, runs_root, *extra):
    return bench_cli("run", "task=logreg", "optimizer=sgd", "steps=6", "logger=wandb", f"runs_root={runs_root}",
                     "progress=off", *extra)


def test_offline_mode_writes_wandb_files_under_the_run_dir(bench_cli, runs_root):
    result = _run(bench_cli, runs_root, "logger.mode=offline")
    assert result.code == 0, result.output
    run_dir = only_run(runs_root)
    summary, lines = read_run(run_dir)
    assert summary["status"] == "ok" and lines[-1]["step"] == 6
    offline = list((run_dir / "wandb").glob("offline-run-*"))
    assert len(offline) == 1, list((run_dir / "wandb").iterdir())
    records = list(offline[0].glob("run-*.wandb"))
    assert len(records) == 1
    # Offline, wandb keeps everything in this protobuf log until `wandb sync`; its keys are stored
    # as plain strings: curves (history), config, and the summary with nested dicts flattened.
    data = records[0].read_bytes()
    for key in (b"train/loss", b"weight_decay", b"final/val/loss", b"optimizer_state_bytes"):
        assert key in data, key
    assert "warning" not in result.stderr


def test_wandb_failing_to_start_is_one_warning_line_and_the_run_goes_on(bench_cli, runs_root, monkeypatch):
    def broken_init(**kwargs):
        raise RuntimeError("network unreachable\nsecond line of a long traceback-like message")

    monkeypatch.setattr(wandb, "init", broken_init)
    result = _run(bench_cli, runs_root, "logger.mode=online")
    assert result.code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "wandb" in line]
    assert warnings == ["warning: wandb did not start (RuntimeError: network unreachable); local logs only"]
    summary, lines = read_run(only_run(runs_root))
    assert summary["status"] == "ok" and len(lines) > 1


def test_wandb_not_installed_warns_with_the_install_hint(bench_cli, runs_root, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # makes `import wandb` raise ImportError
    result = _run(bench_cli, runs_root, "logger.mode=offline")
    assert result.code == 0, result.output
    assert "warning: wandb did not start (ModuleNotFoundError" in result.stderr and "pip install wandb" in result.stderr
    assert read_run(only_run(runs_root))[0]["status"] == "ok"


def test_disabled_mode_starts_nothing(bench_cli, runs_root, monkeypatch):
    monkeypatch.setattr(wandb, "init", lambda **kw: pytest.fail("wandb.init called in disabled mode"))
    result = _run(bench_cli, runs_root, "logger.mode=disabled")
    assert result.code == 0, result.output
    assert not (only_run(runs_root) / "wandb").exists()
