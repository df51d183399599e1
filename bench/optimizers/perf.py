"""`bench perf optimizers`: optimizer step time on a >= 10M-parameter model, against the memory
bandwidth an element-wise step needs, and against pytorch-optimizer's implementation.

An element-wise step must read the parameter, its gradient and k state tensors and write the
parameter and the k states back: (2k + 3) * 4 bytes per fp32 parameter, once. An update that needs
a per-tensor reduction first (LARS/LAMB norms, FAdam's RMS clipping, the cautious mask's count,
AdamSN's subset sums) cannot start writing before a first reading pass, so its minimum adds that
pass's reads (the yaml's `ideal_bytes`). Dividing the minimum by the step time gives the bandwidth achieved; dividing again by what a plain tensor copy reaches
in this process (read n + write n) gives "copy fraction": 1.0 means the step moves its bytes as fast
as memcpy. Other processes share the memory bus, so each timed step is paired with a copy timed
right before it, and the fraction is the median over those pairs. Compilation (ours) happens at
construction and is reported separately, never timed.
Gradients are fixed random tensors, so only optimizer.step() is on the clock.

On a shared machine, `clock="cpu"` times with this process's CPU time instead of the wall clock
(with 1 thread: the work done, not the wait for a busy core); the copy runs on the same clock.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from bench.config import choices, constructor_kwargs, option_defaults, resolve_target
from bench.optimizers import build_optimizer, implementation

def elementwise() -> list[str]:
    """The element-wise optimizers: those whose yaml states `ideal_bytes` (see above)."""
    return [n for n in choices("optimizer") if option_defaults("optimizer", n).get("ideal_bytes") is not None]


def peer_factories(name: str) -> dict[str, object]:
    """Package -> a function building that package's implementation of `name`'s algorithm at the
    yaml's defaults, from the yaml's `peers:` (each a `_target_` plus constructor arguments)."""
    peers = option_defaults("optimizer", name).get("peers") or {}

    def factory(node):
        def make(params):
            cls = resolve_target(node, "optimizer")
            return cls(params, **constructor_kwargs(node))

        return make

    return {package: factory(node) for package, node in peers.items()}


class Stack(nn.Module):
    """Square linear layers: `layers` x (width^2 + width) parameters (10 x 1024 -> 10.5M)."""

    def __init__(self, width: int, layers: int, device: torch.device):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(width, width, device=device) for _ in range(layers))


@dataclass
class Row:
    name: str
    implementation: str
    ms: float
    copy_fraction: float | None
    compile_s: float
    pytorch_optimizer_ms: float | None

    @property
    def speedup(self) -> float | None:
        return self.pytorch_optimizer_ms / self.ms if self.pytorch_optimizer_ms else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def median_ms(fn, device: torch.device, warmup: int, repeats: int, clock=time.perf_counter) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = clock()
        fn()
        _sync(device)
        times.append(1000 * (clock() - start))
    return statistics.median(times)


class Copy:
    """dst.copy_(src) over numel fp32 values: the bandwidth reference (a read and a write each)."""

    def __init__(self, numel: int, device: torch.device):
        self.src = torch.randn(numel, device=device)
        self.dst = torch.empty_like(self.src)
        self.bytes = 2 * 4 * numel

    def __call__(self) -> None:
        self.dst.copy_(self.src)


def paired_ms(step, copy: Copy, device: torch.device, warmup: int, repeats: int, clock) -> tuple[float, float]:
    """(median step ms, median over pairs of copy ms / step ms), each step timed right after a copy."""
    for _ in range(warmup):
        step()
        copy()
    steps, ratios = [], []
    for _ in range(repeats):
        c = median_ms(copy, device, warmup=0, repeats=1, clock=clock)
        t = median_ms(step, device, warmup=0, repeats=1, clock=clock)
        steps.append(t)
        ratios.append(c / t)
    return statistics.median(steps), statistics.median(ratios)


def _model(width: int, layers: int, device: torch.device) -> nn.Module:
    torch.manual_seed(0)
    model = Stack(width, layers, device)
    for p in model.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    return model


def measure(name: str, width: int, layers: int, device: torch.device, repeats: int, copy: Copy,
            clock=time.perf_counter) -> Row:
    model = _model(width, layers, device)
    numel = sum(p.numel() for p in model.parameters())
    opt, caps = build_optimizer(option_defaults("optimizer", name), model)
    if caps.needs_closure or caps.needs_hvp:
        raise ValueError(f"{name} needs a closure or Hessian-vector products; its step cannot be timed alone")
    impl, compile_s = implementation(opt), getattr(opt, "compile_time_s", 0.0)
    ms, copy_over_step = paired_ms(opt.step, copy, device, warmup=3, repeats=repeats, clock=clock)
    ideal = option_defaults("optimizer", name).get("ideal_bytes")
    # (ideal bytes / step time) / (copy bytes / copy time)
    fraction = ideal * numel / copy.bytes * copy_over_step if ideal is not None else None
    del opt, model
    reference_ms = None
    peers = peer_factories(name)
    if "pytorch_optimizer" in peers:
        model = _model(width, layers, device)
        reference = peers["pytorch_optimizer"](model.parameters())
        if hasattr(reference, "train"):
            reference.train()  # Schedule-Free references start in eval mode
        reference_ms = median_ms(reference.step, device, warmup=3, repeats=repeats, clock=clock)
    return Row(name, impl, ms, fraction, compile_s, reference_ms)


def run(names: list[str], width: int = 1024, layers: int = 10, device: str = "auto", repeats: int = 20,
        clock: str = "wall", threads: int | None = None, echo=print) -> list[Row]:
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       ("cpu" if device == "auto" else device))
    if clock not in CLOCKS or (clock == "cpu" and dev.type == "cuda"):
        raise ValueError(f"clock must be wall or cpu (cpu only on a CPU device), got {clock!r}")
    if threads:
        torch.set_num_threads(threads)
    tick = CLOCKS[clock]
    numel = layers * (width * width + width)
    copy = Copy(numel, dev)
    bandwidth = copy.bytes / (median_ms(copy, dev, warmup=3, repeats=repeats, clock=tick) / 1000)
    echo(f"model: {layers} x Linear({width}, {width}) = {numel / 1e6:.2f}M fp32 parameters on {dev}"
         f" ({torch.get_num_threads()} threads, torch {torch.__version__}, {clock} clock)")
    echo(f"copy bandwidth: {bandwidth / 1e9:.2f} GB/s at the start; step times are medians of {repeats} steps, "
         "each paired with a copy timed just before it")
    echo(HEADER)
    echo("|" + "---|" * HEADER.count(" |"))
    rows = []
    for name in names:
        rows.append(measure(name, width, layers, dev, repeats, copy, tick))
        echo(format_row(rows[-1]))
    return rows


HEADER = "| optimizer | implementation | ms/step | copy fraction | compile s | pytorch-optimizer ms | speed-up |"


def format_row(r: Row) -> str:
    def num(x, fmt):
        return format(x, fmt) if x is not None else "-"

    return (f"| {r.name} | {r.implementation} | {r.ms:.1f} | {num(r.copy_fraction, '.2f')} | "
            f"{num(r.compile_s or None, '.1f')} | {num(r.pytorch_optimizer_ms, '.1f')} | "
            f"{num(r.speedup, '.2f') + 'x' if r.speedup else '-'} |")
