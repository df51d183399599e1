"""Optimizer state and step memory, measured rather than declared: the bytes of the storages
behind an optimizer's state tensors after real steps (each storage once), and the bytes every op
creates during `step()`, seen by a dispatch mode that reads each op's schema. It is separate from
the lion_memory claim because the measurement does not depend on any claim: it needs only a model,
an optimizer and a task's batches and loss, and any experiment that asks what an optimizer really
keeps can reuse it.
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class AllocationTracker(TorchDispatchMode):
    """Bytes of every tensor an op creates while the mode is on, and the peak of those alive at
    once. A new tensor is an output the op's schema does not mark as aliasing an input (in-place
    ops and views reuse memory, out-of-place ops and factories do not); it is counted until its
    Python object dies. Python-side constructors that bypass the dispatcher (`torch.tensor(0.0)`,
    a few bytes) are not seen."""

    def __init__(self):
        super().__init__()
        self.total = self.live = self.peak = 0

    def _free(self, nbytes: int) -> None:
        self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        returns = func._schema.returns
        values = out if isinstance(out, (tuple, list)) and len(returns) != 1 else (out,)
        for schema, value in zip(returns, values, strict=False):
            if schema.alias_info is not None:
                continue
            for t in value if isinstance(value, (tuple, list)) else (value,):
                if isinstance(t, torch.Tensor):
                    nbytes = t.untyped_storage().nbytes()
                    self.total += nbytes
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(t, self._free, nbytes)
        return out


def state_storage_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of the storages behind every tensor in the optimizer's state, each storage once
    (two state entries that view one buffer cost it once; a 0-dim step counter costs its bytes)."""
    seen: dict[tuple[str, int], int] = {}

    def visit(value) -> None:
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            seen[(str(value.device), storage.data_ptr())] = storage.nbytes()
        elif isinstance(value, dict):
            for v in value.values():
                visit(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v)

    for state in optimizer.state.values():
        visit(state)
    return sum(seen.values())


@dataclass
class StepMemory:
    task: str
    optimizer: str
    implementation: str  # where the class comes from
    n_params: int
    n_tensors: int  # parameter tensors: a per-tensor step counter costs a few bytes each
    state_bytes: int  # storages behind the state after the steps
    first_step_kept: int  # bytes created during the first step and still alive after it
    step_allocated: int  # bytes created during the last step
    step_peak: int  # peak of those alive at once during the last step
    declared: str = ""  # the yaml's `state_per_param`, shown for comparison only

    def per_param(self, field: str) -> float:
        return getattr(self, field) / self.n_params if self.n_params else math.nan


def measure_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, task, steps: int) -> dict[str, int]:
    """Run `steps` real steps (the task's loss on its batches), tracking the bytes every step
    allocates; the state is counted after the last one."""
    batches = task.batches()
    kept = allocated = peak = 0
    for i in range(steps):
        optimizer.zero_grad(set_to_none=True)
        task.loss(model, next(batches)).backward()
        tracker = AllocationTracker()
        with tracker:
            optimizer.step()
        if i == 0:
            kept = tracker.live
        allocated, peak = tracker.total, tracker.peak
    return {"state_bytes": state_storage_bytes(optimizer), "first_step_kept": kept, "step_allocated": allocated,
            "step_peak": peak}
