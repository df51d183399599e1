"""Shared test fixtures: CPU only, one thread, wandb off, every run in a temporary runs root."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
# f* caches of the logreg tasks go to a throwaway folder, shared by the whole test session
os.environ["BENCH_CACHE"] = tempfile.mkdtemp(prefix="bench-test-cache-")
torch.set_num_threads(1)


class BenchResult:
    def __init__(self, code: int, stdout: str, stderr: str):
        self.code, self.stdout, self.stderr = code, stdout, stderr

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def bench_cli(monkeypatch, capsys):
    """Run `bench <args>` in-process (fast: no interpreter or torch start-up) and return its exit
    code and output. Hydra reads sys.argv, so it is saved and restored around each call."""
    from bench.cli import app

    def call(*args: str) -> BenchResult:
        argv = sys.argv[:]
        try:
            # click returns the code of a typer.Exit when not in standalone mode
            returned = app(list(args), prog_name="bench", standalone_mode=False)
            code = returned if isinstance(returned, int) else 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = argv
        out = capsys.readouterr()
        return BenchResult(code, out.out, out.err)

    return call


@pytest.fixture
def runs_root(tmp_path) -> Path:
    return tmp_path / "runs"


def read_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """(summary, metric lines) of a run directory."""
    summary = json.loads((run_dir / "summary.json").read_text())
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return summary, lines


def only_run(root: Path) -> Path:
    dirs = [d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")]
    assert len(dirs) == 1, dirs
    return dirs[0]
