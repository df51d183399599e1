"""THE training loop. One function, read top to bottom.

Honest measurement: warm-up happens before the clock starts; evaluation and logging happen with
the clock paused; `loss.item()` (a device sync) is read only at log steps; a non-finite loss ends
the run as a result ("diverged"), not a crash.
"""

from __future__ import annotations

import contextlib
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import torch

from bench.optimizers import Capabilities
from bench.runner.clock import Clock
from bench.tasks.base import Task


@dataclass
class LoopSettings:
    steps: int
    eval_every: int
    log_every: int
    target: float | None = None
    grad_clip: float | None = None
    autocast_dtype: torch.dtype | None = None


@dataclass
class Outcome:
    status: str = "ok"
    steps: int = 0
    final: dict[str, float] = field(default_factory=dict)
    best: float | None = None
    steps_to_target: int | None = None
    time_to_target_s: float | None = None
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    step_time_ms: float | None = None
    diverged_at: int | None = None
    items_per_step: int = 0


def _reached(value: float, target: float | None, mode: str) -> bool:
    if target is None or not math.isfinite(value):
        return False
    return value >= target if mode == "max" else value <= target


def _better(a: float, b: float | None, mode: str) -> bool:
    return b is None or (a > b if mode == "max" else a < b)


def train(task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, caps: Capabilities,
          settings: LoopSettings, sinks: list, device: torch.device) -> Outcome:
    out = Outcome()
    autocast = (lambda: torch.autocast(device.type, dtype=settings.autocast_dtype)) if settings.autocast_dtype \
        else contextlib.nullcontext
    params = [p for p in model.parameters() if p.requires_grad]

    def compute_loss(batch) -> torch.Tensor:
        with autocast():
            return task.loss(model, batch)

    def closure() -> torch.Tensor:  # for optimizers that re-evaluate the loss (SAM)
        optimizer.zero_grad(set_to_none=True)
        loss = compute_loss(batch)
        loss.backward()
        return loss

    def evaluate() -> dict[str, float]:
        model.eval()
        if caps.has_eval_mode:
            optimizer.eval()
        metrics = task.evaluate(model)
        if caps.has_eval_mode:
            optimizer.train()
        model.train()
        return metrics

    def log(step: int, metrics: dict[str, Any]) -> None:
        for sink in sinks:
            sink.log(step, metrics)

    batches = task.batches()
    batch = next(batches)
    out.items_per_step = task.items_per_batch(batch)

    # Warm-up, off the clock: one forward/backward triggers lazy init, kernel selection and
    # compilation; gradients are then discarded so the first real step is untouched.
    model.train()
    compute_loss(batch).backward(create_graph=caps.needs_hvp)
    optimizer.zero_grad(set_to_none=True)

    clock = Clock(device)
    eval_clock = Clock(device)
    interval_ms: list[float] = []
    last_log = (0, 0.0)

    def report(step: int, loss: torch.Tensor | None) -> bool:
        """Log (and maybe evaluate) at `step`, off the clock. Returns False if the run diverged."""
        nonlocal last_log
        train_s = clock.stop()
        if step > last_log[0]:
            interval_ms.append(1000 * (train_s - last_log[1]) / (step - last_log[0]))
        last_log = (step, train_s)
        metrics: dict[str, Any] = {"time/train_s": train_s, "lr": optimizer.param_groups[0]["lr"],
                                   "items": step * out.items_per_step}
        if loss is not None:
            metrics["train/loss"] = loss.item()
        finite = loss is None or math.isfinite(metrics["train/loss"])
        if finite and (step % settings.eval_every == 0 or step == settings.steps):
            eval_clock.start()
            metrics.update(evaluate())
            metrics["time/eval_s"] = eval_clock.stop()
            value = metrics.get(task.metric, math.nan)
            finite = math.isfinite(value)
            if finite and _better(value, out.best, task.mode):
                out.best = value
            if out.steps_to_target is None and _reached(value, settings.target, task.mode):
                out.steps_to_target, out.time_to_target_s = step, train_s
            out.final = {k: v for k, v in metrics.items() if not k.startswith(("time/", "lr", "items"))}
        log(step, metrics)
        if not finite:
            out.status, out.diverged_at = "diverged", step
        clock.start()
        return finite

    report(0, None)
    step = 0
    while step < settings.steps:
        if step > 0:
            batch = next(batches)
        if caps.needs_closure:
            loss = optimizer.step(closure)
        else:
            optimizer.zero_grad(set_to_none=True)
            loss = compute_loss(batch)
            loss.backward(create_graph=caps.needs_hvp)
            if settings.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            optimizer.step()
        scheduler.step()
        step += 1
        if step % settings.log_every == 0 or step % settings.eval_every == 0 or step == settings.steps:
            if not report(step, loss):
                break

    out.train_time_s = clock.stop()
    out.eval_time_s = eval_clock.elapsed
    out.steps = step
    out.step_time_ms = statistics.median(interval_ms) if interval_ms else None
    return out
