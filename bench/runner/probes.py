"""Probes: measurements of the model taken at log points, off the training clock.

A probe is a callable `probe(step, model) -> dict[str, float]` that the training loop calls at
every log/eval point (with the clock paused) and whose metrics go into that log line; it returns
`{}` when it is not due. Probes must not change the run: the sharpness probe below restores the
RNG state and the model's buffers (BatchNorm running statistics) it touches, so a run with a
probe trains exactly as the same run without one.

`probe.sharpness.every=N` logs `probe/sharpness`, the top eigenvalue of the training loss's
Hessian, the quantity behind "edge of stability" (Cohen et al., 2021): full-batch GD with step
size η is stable on a quadratic only while it stays below 2/η.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

import torch
from omegaconf import DictConfig
from torch import nn

from bench import BenchError
from bench.tasks.base import Task

Probe = Callable[[int, nn.Module], dict[str, float]]


def hvp_power_iteration(loss: torch.Tensor, params: list[torch.Tensor], iters: int,
                        start: list[torch.Tensor] | None = None,
                        generator: torch.Generator | None = None) -> tuple[float, list[torch.Tensor]]:
    """Top Hessian eigenvalue of `loss` w.r.t. `params` by power iteration on Hessian-vector
    products (double backward: H v = ∇(∇L · v)); never forms H.

    Returns (Rayleigh quotient vᵀHv of the last unit vector, that vector). Power iteration finds
    the eigenvalue of largest magnitude; for a trained network that is the top positive one (the
    negative ones are small), and on a convex loss they coincide. `start` warm-starts it (the top
    eigenvector moves slowly between log points, so a few iterations then suffice)."""
    grads = torch.autograd.grad(loss, params, create_graph=True)
    if start is None:
        start = [torch.randn(p.shape, generator=generator, dtype=p.dtype).to(p.device) for p in params]
    v = _normalised(start)
    eigenvalue = 0.0
    for _ in range(iters):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        eigenvalue = sum(float((h * u).sum()) for h, u in zip(hv, v, strict=True))
        norm = _norm(hv)
        if norm == 0:  # v lies in H's null space (e.g. a linear model at a flat point)
            break
        v = [h / norm for h in hv]
    return eigenvalue, [u.detach() for u in v]


def _norm(vectors) -> float:
    return float(torch.sqrt(sum((x.double() ** 2).sum() for x in vectors)))


def _normalised(vectors: list[torch.Tensor]) -> list[torch.Tensor]:
    norm = _norm(vectors)
    return [x / norm for x in vectors]


def _first_examples(batches: Iterator[Any], n: int) -> Any:
    """The first `n` examples of a stream of (x, y, ...) tensor batches, concatenated."""
    parts, have = [], 0
    while have < n:
        batch = next(batches)
        items = batch if isinstance(batch, (tuple, list)) else (batch,)
        if not all(isinstance(t, torch.Tensor) and t.dim() > 0 for t in items):
            raise BenchError("probe.sharpness.batch=N needs batches of tensors; use probe.sharpness.batch=0 "
                             "(the task's own first batch) for this task")
        parts.append(items)
        have += int(items[0].shape[0])
    joined = [torch.cat(column)[:n] for column in zip(*parts, strict=True)]
    if isinstance(batch, torch.Tensor):
        return joined[0]
    return tuple(joined) if isinstance(batch, tuple) else joined


class SharpnessProbe:
    """Logs `probe/sharpness` (top Hessian eigenvalue of the task's training loss) on one fixed
    batch, at the first log point at or after every multiple of `every` steps (and at step 0).

    The batch is drawn once, when the probe is built, from a fresh copy of the task's own stream:
    `batch=0` takes its first batch (the whole training set for a full-batch task), `batch=N` its
    first N examples. Fixed, so that changes in the curve are the model's, not the batch's."""

    def __init__(self, task: Task, every: int, iters: int = 20, batch: int = 0, seed: int = 0):
        self.task, self.every, self.iters = task, every, iters
        with torch.random.fork_rng(devices=_devices(task)):  # drawing it must not shift the run's RNG
            stream = task.batches(0)
            self.batch = next(stream) if batch == 0 else _first_examples(stream, batch)
        self.generator = torch.Generator().manual_seed(seed)
        self.vector: list[torch.Tensor] | None = None
        self.last_bucket = -1

    def __call__(self, step: int, model: nn.Module) -> dict[str, float]:
        bucket = step // self.every
        if bucket == self.last_bucket:
            return {}
        self.last_bucket = bucket
        params = [p for p in model.parameters() if p.requires_grad]
        buffers = [b.detach().clone() for b in model.buffers()]
        with torch.random.fork_rng(devices=_devices(self.task)):  # dropout draws stay the run's own
            loss = self.task.loss(model, self.batch)
            value, self.vector = hvp_power_iteration(loss, params, self.iters, self.vector, self.generator)
        with torch.no_grad():  # the forward pass updated BatchNorm's running statistics: undo that
            for b, saved in zip(model.buffers(), buffers, strict=True):
                b.copy_(saved)
        return {"probe/sharpness": value}


def _devices(task: Task) -> list:
    return [task.device] if task.device.type == "cuda" else []


def build_probes(cfg: DictConfig | None, task: Task, seed: int = 0) -> list[Probe]:
    """The probes switched on in the `probe:` config block (none by default: zero cost)."""
    probes: list[Probe] = []
    # under DDP, the task itself: the probe's backward must not join DDP's all-reduce, and its
    # batch is then the global one, the same on every rank and as in a single-process run
    task = getattr(task, "unwrapped", task)
    sharpness = (cfg or {}).get("sharpness") or {}
    every = sharpness.get("every", 0)
    if every:
        iters, batch = sharpness.get("iters", 20), sharpness.get("batch", 0)
        for key, value, least in (("every", every, 1), ("iters", iters, 1), ("batch", batch, 0)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise BenchError(f"probe.sharpness.{key} must be an integer >= {least}, got {value!r}")
        probes.append(SharpnessProbe(task, every, iters, batch, seed))
    elif not isinstance(every, int) or every < 0:
        raise BenchError(f"probe.sharpness.every must be an integer >= 0 (0 = off), got {every!r}")
    return probes
