"""Shared test fixtures: CPU only, one thread, wandb off, every run in a temporary runs root."""

from __future__ import annotations

import gzip
import json
import os
import signal
import struct
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("WANDB_MODE", "disabled")
# f* caches of the logreg tasks go to a throwaway folder, shared by the whole test session
os.environ["BENCH_CACHE"] = tempfile.mkdtemp(prefix="bench-test-cache-")
torch.set_num_threads(1)
# A shell that starts the suite in the background (`make test &`, nohup) leaves SIGINT ignored,
# and subprocesses inherit that; the Ctrl-C tests need it as a user at a terminal has it.
signal.signal(signal.SIGINT, signal.default_int_handler)


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


def write_idx(path, array, gz=False):
    """IDX as published: 0, 0, type code, ndim, big-endian uint32 dims, big-endian elements."""
    codes = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    (gzip.open if gz else open)(path, "wb").write(body)


def write_fashion_dir(path, n=300, n_test=100, gz=True, seed=0):
    """Learnable fake data in the real layout: each class brightens its own band of rows."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, count in (("", n), ("_test", n_test)):
        labels = rng.integers(0, 10, count).astype(np.uint8)
        images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 * c + 4 : 2 * c + 7] += 180
        arrays["x" + split], arrays["y" + split] = images, labels
    from bench.tasks.fashion import FILES

    for key, stem in FILES.items():
        write_idx(path / (stem + (".gz" if gz else "")), arrays[key], gz=gz)
    return arrays
