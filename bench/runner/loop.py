"""THE training loop: `train`, read top to bottom, with what happens off the clock in `_Run`.

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
from torch.nn.attention import SDPBackend, sdpa_kernel

from bench.optimizers import Capabilities
from bench.results.names import canonical_keys
from bench.results.order import better
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


class _Run:
    """What one run carries between steps and the things it does off the clock: evaluation,
    logging (with the divergence and target checks), checkpoints. `train` below is the hot
    path; everything here happens only at an event step."""

    def __init__(self, task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, caps: Capabilities,
                 settings: LoopSettings, sinks: list, device: torch.device, checkpoint: Checkpointer | None,
                 probes: Sequence[Callable[[int, torch.nn.Module], dict[str, float]]]):
        self.task, self.model, self.optimizer, self.caps = task, model, optimizer, caps
        self.settings, self.sinks, self.checkpoint, self.probes = settings, sinks, checkpoint, probes
        self.out = Outcome()
        self.clock, self.eval_clock = Clock(device), Clock(device)
        self.interval_ms: list[float] = []
        self.last_log = (0, 0.0)
        self.autocast = (lambda: torch.autocast(device.type, dtype=settings.autocast_dtype)) \
            if settings.autocast_dtype else contextlib.nullcontext
        self.params = [p for p in model.parameters() if p.requires_grad]

    def loss(self, batch) -> torch.Tensor:
        with self.autocast():
            return self.task.loss(self.model, batch)

    def closure(self, batch) -> Callable[[], torch.Tensor]:
        """For optimizers that re-evaluate the loss (SAM). grad_clip applies here too, between
        each backward and the optimizer's use of the gradients."""
        def closure() -> torch.Tensor:
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss(batch)
            loss.backward()
            if self.settings.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, self.settings.grad_clip)
            return loss
        return closure

    def warm_up(self, batch) -> None:
        """One forward/backward off the clock (lazy init, kernel selection, compilation); its
        gradients are discarded, so under DDP they need no all-reduce either."""
        self.model.train()
        with getattr(self.task, "no_sync", contextlib.nullcontext)():
            self.loss(batch).backward(create_graph=self.caps.needs_hvp)
        self.optimizer.zero_grad(set_to_none=True)

    def resume(self, resume: dict[str, Any], start: int) -> None:
        """Restore a checkpoint (after the warm-up, so its RNG draws and buffer updates are undone)."""
        state = self.checkpoint.restore(resume)
        self.out = Outcome(**state["outcome"])
        self.out.final = canonical_keys(self.out.final)  # a checkpoint may predate a metric's rename
        self.out.resumed_from = [*self.out.resumed_from, start]
        self.clock.elapsed, self.eval_clock.elapsed = state["train_s"], state["eval_s"]
        self.interval_ms, self.last_log = list(state["interval_ms"]), tuple(state["last_log"])
        if self.checkpoint.writer:  # one line, from the process that owns the run directory
            print(f"resuming {self.checkpoint.path.parent} from step {start} (checkpoint)", flush=True)

    def evaluate(self) -> dict[str, float]:
        self.model.eval()
        if self.caps.has_eval_mode:
            self.optimizer.eval()
        metrics = self.task.evaluate(self.model)
        if self.caps.has_eval_mode:
            self.optimizer.train()
        self.model.train()
        return metrics

    def report(self, step: int, loss: torch.Tensor | None) -> bool:
        """Log (and maybe evaluate) at `step`, off the clock. Returns False if the run diverged."""
        out, s = self.out, self.settings
        train_s = self.clock.stop()
        if step > self.last_log[0]:
            self.interval_ms.append(1000 * (train_s - self.last_log[1]) / (step - self.last_log[0]))
        self.last_log = (step, train_s)
        metrics: dict[str, Any] = {"time/train_s": train_s, "lr": self.optimizer.param_groups[0]["lr"],
                                   "items": step * out.items_per_step}
        if loss is not None:
            metrics["train/loss"] = (s.mean_over_ranks(loss) if s.mean_over_ranks else loss).item()
        finite = loss is None or math.isfinite(metrics["train/loss"])
        if finite and (step % s.eval_every == 0 or step == s.steps):
            self.eval_clock.start()
            metrics.update(self.evaluate())
            metrics["time/eval_s"] = self.eval_clock.stop()
            value = metrics.get(self.task.metric, math.nan)
            finite = math.isfinite(value)
            if finite and better(value, out.best, self.task.mode):
                out.best = value
            if out.steps_to_target is None and _reached(value, s.target, self.task.mode):
                out.steps_to_target, out.time_to_target_s = step, train_s
            out.final = {k: v for k, v in metrics.items() if not k.startswith(("time/", "lr", "items"))}
        if finite:
            for probe in self.probes:  # measurements of the model (probes.py), off the clock like evaluation
                metrics.update(probe(step, self.model))
        for sink in self.sinks:
            sink.log(step, metrics)
        if not finite:
            out.status, out.diverged_at = "diverged", step
        self.clock.start()
        return finite

    def save_checkpoint(self, step: int) -> None:
        self.clock.stop()
        self.checkpoint.save(step, {"outcome": asdict(self.out), "train_s": self.clock.elapsed,
                                    "eval_s": self.eval_clock.elapsed, "interval_ms": self.interval_ms,
                                    "last_log": list(self.last_log)})
        self.clock.start()

    def at_event(self, step: int, loss: torch.Tensor, stop: Interrupts) -> bool:
        """Everything due at `step` besides training; False when the run ends here."""
        s = self.settings
        if step % s.log_every == 0 or step % s.eval_every == 0 or step == s.steps:
            if not self.report(step, loss):
                return False
        if step == s.steps:
            return False
        interrupted = stop.requested()
        if self.checkpoint is not None and (interrupted or (s.checkpoint_every and step % s.checkpoint_every == 0)):
            self.save_checkpoint(step)
        if interrupted:
            self.out.status, self.out.interrupted_at = "interrupted", step
            return False
        stop.schedule(_next_event(step, s))
        return True

    def finish(self, step: int) -> Outcome:
        self.out.train_time_s = self.clock.stop()
        self.out.eval_time_s = self.eval_clock.elapsed
        self.out.steps = step
        self.out.step_time_ms = statistics.median(self.interval_ms) if self.interval_ms else None
        return self.out


def train(task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler, caps: Capabilities,
          settings: LoopSettings, sinks: list, device: torch.device, checkpoint: Checkpointer | None = None,
          resume: dict[str, Any] | None = None, stop: Interrupts | None = None,
          probes: Sequence[Callable[[int, torch.nn.Module], dict[str, float]]] = ()) -> Outcome:
    # Hessian-vector products differentiate the backward pass again: only the math attention
    # kernel has that double backward on every device (the fused CPU kernel has none).
    with sdpa_kernel(SDPBackend.MATH) if caps.needs_hvp else contextlib.nullcontext():
        run = _Run(task, model, optimizer, caps, settings, sinks, device, checkpoint, probes)
        stop = stop or Interrupts()  # not entered: installs no handlers, never fires
        # A resumed run restarts the data stream at its step: batches(start) yields what a fresh
        # stream yields after `start` batches.
        start = resume["step"] if resume is not None else 0
        batches = task.batches(start)
        batch = next(batches)
        items_per_step = task.items_per_batch(batch)
        run.warm_up(batch)
        if resume is not None:
            run.resume(resume, start)
        run.out.items_per_step = items_per_step
        step_lr = _lr_changes(scheduler, start, settings.steps, settings.schedule)  # before the clock starts
        if start == 0:
            run.report(0, None)  # starts the clock
        else:
            run.clock.start()

        # The hot path: the training step and one comparison; everything else waits for `stop.due`.
        clip, params, compute_loss = settings.grad_clip, run.params, run.loss
        step = start
        stop.schedule(_next_event(step, settings))
        while step < settings.steps:
            if step > start:
                batch = next(batches)
            if caps.needs_closure:
                loss = optimizer.step(run.closure(batch))
            else:
                optimizer.zero_grad(set_to_none=True)
                loss = compute_loss(batch)
                loss.backward(create_graph=caps.needs_hvp)
                if clip:
                    torch.nn.utils.clip_grad_norm_(params, clip)
                optimizer.step()
            if step_lr:
                scheduler.step()
            step += 1
            if step >= stop.due and not run.at_event(step, loss, stop):
                break
        return run.finish(step)
