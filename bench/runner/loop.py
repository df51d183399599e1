"""THE training loop. One function, read top to bottom.

Honest measurement: warm-up happens before the clock starts; evaluation, logging and
checkpointing happen with the clock paused; `loss.item()` (a device sync) is read only at log
steps; a non-finite loss ends the run as a result ("diverged"), not a crash.

The hot path does one comparison per step beyond the training itself: `step >= stop.due`,
where `due` is the next step at which anything else happens (log, eval, checkpoint, the end) and
a stop signal pulls it to 0 (see interrupts.py).
"""

from __future__ import annotations

import contextlib
import math
import statistics
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import torch

from bench.optimizers import Capabilities
from bench.results.names import canonical_keys
from bench.runner.checkpoint import Checkpointer
from bench.runner.clock import Clock
from bench.runner.interrupts import Interrupts
from bench.tasks.base import Task


@dataclass
class LoopSettings:
    steps: int
    eval_every: int
    log_every: int
    target: float | None = None
    grad_clip: float | None = None
    autocast_dtype: torch.dtype | None = None
    checkpoint_every: int = 0  # 0: checkpoint only when a stop signal arrives
    mean_over_ranks: Callable[[torch.Tensor], torch.Tensor] | None = None  # DDP: log the global loss
    schedule: Any = None  # the schedule behind a LambdaLR scheduler (schedules.py), asked `varies`


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
    resumed_from: list[int] = field(default_factory=list)  # steps at which this run was resumed
    interrupted_at: int | None = None


def _reached(value: float, target: float | None, mode: str) -> bool:
    if target is None or not math.isfinite(value):
        return False
    return value >= target if mode == "max" else value <= target


def _better(a: float, b: float | None, mode: str) -> bool:
    return b is None or (a > b if mode == "max" else a < b)


def _next_event(step: int, s: LoopSettings) -> int:
    after = lambda every: (step // every + 1) * every
    events = [s.steps, after(s.log_every), after(s.eval_every)]
    if s.checkpoint_every:
        events.append(after(s.checkpoint_every))
    return min(events)


#: a schedule that cannot say whether it varies is evaluated at every remaining step up to this
#: many (milliseconds); past it, the scheduler is simply stepped
_EVALUATE_AT_MOST = 10_000


def _lr_changes(scheduler, start: int, steps: int, schedule=None) -> bool:
    """Whether stepping the scheduler would ever change the learning rate. A LambdaLR whose
    multiplier is the same at every remaining step (schedule=constant) need not be stepped:
    LambdaLR.step() costs ~4% of a full-batch logreg step. Checked once, off the clock, in time
    independent of the number of steps: the schedule answers from its formula."""
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if lambdas is None:
        return True
    if hasattr(schedule, "varies"):
        return bool(schedule.varies(start, steps))
    if steps - start > _EVALUATE_AT_MOST:
        return True
    return any(f(s) != f(start) for f in lambdas for s in range(start, steps + 1))


def train(task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, caps: Capabilities,
          settings: LoopSettings, sinks: list, device: torch.device, checkpoint: Checkpointer | None = None,
          resume: dict[str, Any] | None = None, stop: Interrupts | None = None,
          probes: Sequence[Callable[[int, torch.nn.Module], dict[str, float]]] = ()) -> Outcome:
    out = Outcome()
    stop = stop or Interrupts()  # not entered: installs no handlers, never fires
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

    # A resumed run restarts the data stream at its step: batches(start) yields what a fresh
    # stream yields after `start` batches.
    start = resume["step"] if resume is not None else 0
    batches = task.batches(start)
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
    if resume is not None:  # after the warm-up, so its RNG draws and buffer updates are undone
        state = checkpoint.restore(resume)
        out = Outcome(**state["outcome"])
        out.final = canonical_keys(out.final)  # a checkpoint may predate a metric's rename (names.py)
        out.resumed_from = [*out.resumed_from, start]
        clock.elapsed, eval_clock.elapsed = state["train_s"], state["eval_s"]
        interval_ms, last_log = list(state["interval_ms"]), tuple(state["last_log"])
        if checkpoint.writer:  # one line, from the process that owns the run directory
            print(f"resuming {checkpoint.path.parent} from step {start} (checkpoint)", flush=True)

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
            metrics["train/loss"] = (settings.mean_over_ranks(loss) if settings.mean_over_ranks else loss).item()
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
        if finite:
            for probe in probes:  # measurements of the model (probes.py), off the clock like evaluation
                metrics.update(probe(step, model))
        log(step, metrics)
        if not finite:
            out.status, out.diverged_at = "diverged", step
        clock.start()
        return finite

    def save_checkpoint(step: int) -> None:
        clock.stop()
        checkpoint.save(step, {"outcome": asdict(out), "train_s": clock.elapsed, "eval_s": eval_clock.elapsed,
                               "interval_ms": interval_ms, "last_log": list(last_log)})
        clock.start()

    step_lr = _lr_changes(scheduler, start, settings.steps, settings.schedule)  # before the clock starts
    if start == 0:
        report(0, None)
    else:
        clock.start()
    step = start
    stop.schedule(_next_event(step, settings))
    while step < settings.steps:
        if step > start:
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
        if step_lr:
            scheduler.step()
        step += 1
        if step >= stop.due:
            if step % settings.log_every == 0 or step % settings.eval_every == 0 or step == settings.steps:
                if not report(step, loss):
                    break
            if step == settings.steps:
                break
            interrupted = stop.requested()
            if checkpoint is not None and (interrupted or (settings.checkpoint_every
                                                           and step % settings.checkpoint_every == 0)):
                save_checkpoint(step)
            if interrupted:
                out.status, out.interrupted_at = "interrupted", step
                break
            stop.schedule(_next_event(step, settings))

    out.train_time_s = clock.stop()
    out.eval_time_s = eval_clock.elapsed
    out.steps = step
    out.step_time_ms = statistics.median(interval_ms) if interval_ms else None
    return out
