"""P1, harness overhead: bench's training loop against a hand-written minimal PyTorch loop on
the same task, model initialisation, optimizer, batches and number of steps.

Bench's side is a real run (`execute`, as `bench run` does it) and its figure is the
`train_time_s` it reports. The minimal loop does the same warm-up step and the same evaluations,
off its stopwatch, so the ratio is what bench's bookkeeping costs inside the clocked region
(schedule, logging checks, stop checks).

`clock="cpu"` makes both stopwatches — bench's own Clock and the minimal loop's — read the
process's CPU time instead of the wall clock, over exactly the same intervals. On a shared
machine, time spent waiting for a core then counts for neither side; on a quiet machine with one
torch thread the two clocks agree.
"""

from __future__ import annotations

import contextlib
import gc
import io
import statistics
import tempfile
import time
import types
from dataclasses import dataclass
from unittest import mock

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from bench import BenchError
from bench.compose import compose_config
from bench.optimizers import build_optimizer
from bench.perf import CASES, require_data
from bench.runner import clock as bench_clock
from bench.runner.build import autocast_dtype, build_task, resolve_device
from bench.runner.main import execute
from bench.schedules import Constant


def bench_loop(cfg: DictConfig) -> dict:
    """One real run (execute: build, run directory, sinks, checkpoints, summary); returns its
    summary, whose `train_time_s` is the time bench itself reports."""
    with contextlib.redirect_stdout(io.StringIO()):  # its "ok: <dir>" line
        summary = execute(cfg)
    if summary["status"] != "ok":
        raise BenchError(f"bench's run ended {summary['status']} on {cfg.task.name}; P1 needs a run that trains")
    return summary


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def minimal_loop(cfg: DictConfig, task, device: torch.device, now=time.perf_counter) -> tuple[float, torch.nn.Module]:
    """What a user would write by hand: zero_grad, loss, backward, step; evaluate every
    `eval_every` steps (as bench does) with a stopwatch around the training only. Returns the
    clocked seconds and the trained model."""
    torch.manual_seed(cfg.seed)
    model = task.model()
    optimizer, caps = build_optimizer(cfg.optimizer, model)
    if caps.needs_closure or caps.needs_hvp or caps.has_eval_mode:
        raise BenchError(f"P1 compares the plain step; {cfg.optimizer.name} needs a closure, HVPs or eval mode")
    schedule = instantiate(cfg.schedule)
    total = cfg.steps
    scheduler = None if isinstance(schedule, Constant) else \
        torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s, total))
    dtype = autocast_dtype(cfg.precision, device)
    autocast = (lambda: torch.autocast(device.type, dtype=dtype)) if dtype else contextlib.nullcontext
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    eval_every = cfg.eval_every or max(1, total // 10)  # bench's default: 10 evaluations

    def evaluate() -> None:
        model.eval()
        task.evaluate(model)
        model.train()

    batches = task.batches()
    batch = next(batches)
    model.train()
    with autocast():
        task.loss(model, batch).backward()  # the same warm-up step as bench's, off the clock
    optimizer.zero_grad(set_to_none=True)
    evaluate()
    train_s = 0.0
    sync()
    t = now()
    for step in range(1, total + 1):
        if step > 1:
            batch = next(batches)
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = task.loss(model, batch)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if step % eval_every == 0 or step == total:
            sync()
            train_s += now() - t
            evaluate()
            t = now()
    return train_s, model


@dataclass
class Result:
    case: str
    about: str
    clock: str
    steps: int
    goal: float
    bench: list[float]
    minimal: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.bench) / statistics.median(self.minimal)

    @property
    def pair_ratios(self) -> list[float]:
        """Each bench run over the minimal run next to it in time (same machine load)."""
        return sorted(b / m for b, m in zip(self.bench, self.minimal, strict=True))

    @property
    def meets(self) -> bool:
        return self.ratio <= self.goal


def measure(name: str, extra: list[str], repeats: int, threads: int, clock: str = "wall") -> Result:
    """Alternate bench and minimal runs `repeats` times each, in ABBA order so that drift in the
    machine's speed hits both sides alike."""
    case = CASES.get(name)
    if case is None:
        raise BenchError(f"unknown perf loop case {name!r}; choose one of: {', '.join(CASES)}")
    require_data([name], extra)
    return compare(name, case.about, [*case.overrides, *extra], case.goal, repeats, threads, clock)


def compare(name: str, about: str, overrides: list[str], goal: float, repeats: int, threads: int | None,
            clock: str = "wall", on_result=None) -> Result:
    """`measure` for any overrides (bench perf gpu's cases). `on_result(cfg, summary)` sees each
    bench run's summary (tokens/s and MFU are in its last metrics)."""
    if clock not in CLOCKS:
        raise BenchError(f"unknown clock {clock!r}; use wall or cpu")
    now = CLOCKS[clock]
    saved = torch.get_num_threads()
    torch.set_num_threads(threads or saved)
    # bench's Clock reads `time.perf_counter` through its module's `time`: swap only that one
    patched = mock.patch.object(bench_clock, "time", types.SimpleNamespace(perf_counter=now))
    try:
        patched.start()
        with tempfile.TemporaryDirectory(prefix="bench-perf-") as tmp:
            cfg = compose_config([*overrides, f"runs_root={tmp}", "force=true", "progress=off"],
                                 what=f"cannot compose {' '.join(overrides)}")
            if cfg.grad_clip:
                raise BenchError("P1 compares the plain step; drop grad_clip")
            device = resolve_device(cfg.device)
            task = build_task(cfg, device)
            # one untimed round each: lazy imports and first-step initialisation happen once per
            # process, and would otherwise be charged to whichever loop ran first
            bench_loop(cfg)
            minimal_loop(cfg, task, device, now)
            result = Result(name, about, clock, cfg.steps, goal, [], [])
            for i in range(repeats):
                for side in ("bench", "minimal") if i % 2 == 0 else ("minimal", "bench"):
                    gc.collect()
                    if side == "bench":
                        summary = bench_loop(cfg)
                        seconds = summary["train_time_s"]
                        if on_result is not None:
                            on_result(cfg, summary)
                    else:
                        seconds = minimal_loop(cfg, task, device, now)[0]
                    getattr(result, side).append(seconds)
    finally:
        patched.stop()
        torch.set_num_threads(saved)
    return result


def render(results: list[Result], fmt: str = "table") -> str | None:
    """JSON text, or a rich table printed directly (returns None)."""
    rows = [{"case": r.case, "about": r.about, "clock": r.clock, "steps": r.steps, "repeats": len(r.bench),
             "minimal_ms_per_step": 1000 * statistics.median(r.minimal) / r.steps,
             "bench_train_s": statistics.median(r.bench), "minimal_train_s": statistics.median(r.minimal),
             "ratio": r.ratio, "pair_ratios_min_max": [r.pair_ratios[0], r.pair_ratios[-1]],
             "goal": r.goal, "meets_goal": r.meets} for r in results]
    if fmt == "json":
        import json

        return json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__, "cases": rows}, indent=2)
    from rich.console import Console
    from rich.table import Table

    table = Table("case", "clock", "steps", "repeats", "minimal ms/step", "bench train s", "minimal train s", "ratio",
                  "pairs min–max", "goal", title="P1 harness overhead: bench train time / minimal loop train time "
                  "(medians; evaluation off both clocks)")
    for row in rows:
        low, high = row["pair_ratios_min_max"]
        table.add_row(row["case"], row["clock"], str(row["steps"]), str(row["repeats"]), f"{row['minimal_ms_per_step']:.3f}",
                      f"{row['bench_train_s']:.3f}", f"{row['minimal_train_s']:.3f}", f"{row['ratio']:.3f}",
                      f"{low:.3f}–{high:.3f}",
                      ("[green]met ≤ " if row["meets_goal"] else "[bold red]missed ≤ ") + f"{row['goal']:.2f}[/]")
    Console(width=max(140, Console().width)).print(table)
    return None
