"""Checkpoints: everything a run needs to continue as if it had never stopped.

A checkpoint holds the model, optimizer and scheduler states, every RNG state (torch, CUDA,
numpy, python), the step (the data stream restarts as `task.batches(step)`), both clocks and
the loop's running results (best, steps_to_target, ...). It is a dict of tensors and plain
Python values, so `torch.load(weights_only=True)` reads it: loading runs no pickled code.

    <run_dir>/checkpoint.pt        the latest checkpoint (written atomically: temp + rename)
    <run_dir>/interrupted.json     why and where the run stopped (removed when it finishes)

An interrupted run writes no summary.json: readers treat a summary as a result, and an
interrupted run is not one. Re-running the same config resumes from the checkpoint. A failed run
writes its summary (status failed) and keeps its last checkpoint, from which its retry resumes.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.runner.rundir import INTERRUPTED, write_json_atomic

FORMAT = 1
FILE = "checkpoint.pt"


def rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        # numpy arrays are not on torch's weights_only allow-list; a tensor of the same words is
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    npy = state["numpy"]
    np.random.set_state((npy["kind"], npy["keys"].numpy().astype(np.uint32), npy["pos"], npy["has_gauss"],
                         npy["cached_gaussian"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    """One seed for every generator a task or optimizer might draw from."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


class Checkpointer:
    """Saves and restores one run's state. `writer=False` (DDP ranks other than 0) restores
    but never writes: only rank 0 touches the run directory."""

    def __init__(self, run_dir: Path, run_id: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler, writer: bool = True):
        self.path = run_dir / FILE
        self.run_id = run_id
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.writer = writer

    def save(self, step: int, loop: dict[str, Any]) -> None:
        if not self.writer:
            return
        state = {
            "format": FORMAT, "run_id": self.run_id, "step": step, "saved_at": time.time(),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "rng": rng_state(), "loop": loop,
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{FILE}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def load(self) -> dict[str, Any] | None:
        """The checkpoint to resume from, or None. One that cannot be used (corrupt, another
        format or another run's) is set aside with a warning and the run starts over."""
        if not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location="cpu", weights_only=True)
            problem = None if state.get("format") == FORMAT and state.get("run_id") == self.run_id \
                else "written by another version or run"
        except Exception as exc:  # truncated file, foreign pickle, ...
            state, problem = None, f"{type(exc).__name__}: {exc}"
        if problem is None:
            return state
        if self.writer:
            self.path.replace(self.path.with_name(f"{FILE}.unusable"))
        print(f"warning: {self.path} cannot be resumed ({problem}); starting over", file=sys.stderr)
        return None

    def restore(self, state: dict[str, Any]) -> dict[str, Any]:
        """Put model, optimizer, scheduler and RNGs back; return the loop's own state."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        return state["loop"]

    def mark_interrupted(self, step: int, signal_name: str | None) -> None:
        if self.writer:
            write_json_atomic(self.path.with_name(INTERRUPTED), {
                "status": "interrupted", "step": step, "signal": signal_name, "at": time.time(),
                "checkpoint": FILE if self.path.exists() else None,
            })

    def discard(self, keep_checkpoint: bool = False) -> None:
        """A finished run needs neither its checkpoint nor the interruption note. A failed one
        keeps its checkpoint (`keep_checkpoint`): retrying it resumes from there."""
        if self.writer:
            if not keep_checkpoint:
                self.path.unlink(missing_ok=True)
            self.path.with_name(INTERRUPTED).unlink(missing_ok=True)


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / FILE).exists()
