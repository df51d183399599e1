"""`bench perf optimizers`: optimizer step time on a >= 10M-parameter model, against the memory
bandwidth an element-wise step needs, and against other packages' implementations of the same
algorithm (the yaml's `peers:`: pytorch-optimizer, heavyball).

An element-wise step must read the parameter, its gradient and k state tensors and write the
parameter and the k states back: (2k + 3) * 4 bytes per fp32 parameter, once. An update that needs
a per-tensor reduction first (LARS/LAMB norms, FAdam's RMS clipping, the cautious mask's count,
AdamSN's subset sums) cannot start writing before a first reading pass, so its minimum adds that
pass's reads (the yaml's `ideal_bytes`). Dividing the minimum by the step time gives the bandwidth
achieved; dividing again by what a plain tensor copy reaches in this process (read n + write n)
gives "copy fraction": 1.0 means the step moves its bytes as fast as memcpy. Other processes share
the memory bus, so each timed step is paired with a copy timed right before it, and the fraction is
the median over those pairs.

Every implementation (ours and each peer) gets its own copy of the same model and gradients, and
the timed steps alternate between them, so a busy spell on the machine hits all of them alike.
Before every step the gradients are restored from a pristine copy and re-attached, off the clock:
heavyball takes `p.grad` away after reading it (it would skip every later step) and some
implementations write into the gradient; a step that leaves the parameters unchanged is an error.
Compilation happens before the clock starts: ours at construction (reported as `compile s`), the
peers' in their warm-up steps (heavyball compiles its fused kernels on first use).

On a shared machine, `clock="cpu"` times with this process's CPU time instead of the wall clock
(with 1 thread: the work done, not the wait for a busy core); the copy runs on the same clock.
"""

from __future__ import annotations

import statistics
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from bench.config import choices, constructor_kwargs, option_defaults, resolve_target
from bench.optimizers import build_optimizer, capabilities, implementation
from bench.optimizers.elementwise import want_compile
from bench.results.markup import markdown_head, markdown_row

#: peer packages in column order
PACKAGES = ("pytorch_optimizer", "heavyball")


def elementwise() -> list[str]:
    """The element-wise optimizers: those whose yaml states `ideal_bytes` (see above)."""
    return [n for n in choices("optimizer") if option_defaults("optimizer", n).get("ideal_bytes") is not None]


def _running(package: str, compile: bool):
    """The mode a peer package's steps (and its first-use compilation) run in."""
    return _heavyball_mode(compile) if package == "heavyball" else nullcontext()


@contextmanager
def _heavyball_mode(compile: bool):
    """heavyball compiles its kernels with torch.compile unless `heavyball.utils.compile_mode` is
    None (eager); eager runs its foreach kernels op by op, ~10x slower on a 10M model on CPU."""
    import heavyball.utils

    was = heavyball.utils.compile_mode
    if not compile:
        heavyball.utils.compile_mode = None
    try:
        yield
    finally:
        heavyball.utils.compile_mode = was


def installed(package: str) -> bool:
    """Peers are optional (dev extras): a missing package leaves its column empty."""
    import importlib.util

    return importlib.util.find_spec(package) is not None


def peer_mode(package: str, compile: bool) -> str:
    """How a package's step runs here (said in the table's header)."""
    if package == "heavyball":
        import heavyball.utils

        return f"torch.compile ({heavyball.utils.compile_mode})" if compile else "eager"
    return "eager"


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
    peer_ms: dict[str, float] = field(default_factory=dict)
    peer_warmup_s: dict[str, float] = field(default_factory=dict)

    @property
    def fastest_peer_ms(self) -> float | None:
        return min(self.peer_ms.values()) if self.peer_ms else None

    @property
    def speedup(self) -> float | None:
        """The fastest peer's step time over ours: >= 1 means ours is at least as fast."""
        return self.fastest_peer_ms / self.ms if self.peer_ms else None


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


class Contender:
    """One implementation on its own copy of the model: its gradients are restored and re-attached
    before every step, and its steps are timed right after a timed copy."""

    def __init__(self, make, width: int, layers: int, device: torch.device):
        torch.manual_seed(0)
        self.model = Stack(width, layers, device)
        self.params = list(self.model.parameters())
        self.pristine = [torch.randn_like(p) * 1e-3 for p in self.params]
        self.grads = [g.clone() for g in self.pristine]
        self.attach()
        self.optimizer = make(self.model)
        if hasattr(self.optimizer, "train"):
            self.optimizer.train()  # Schedule-Free implementations may start in eval mode
        self.steps: list[float] = []
        self.ratios: list[float] = []

    def attach(self) -> None:
        for p, g, pristine in zip(self.params, self.grads, self.pristine, strict=True):
            g.copy_(pristine)
            p.grad = g

    def step(self) -> None:
        self.attach()
        self.optimizer.step()

    def timed(self, copy: Copy, device: torch.device, clock, check: bool) -> None:
        self.attach()
        probe = self.params[0].detach()[0, :8].clone() if check else None
        c = median_ms(copy, device, warmup=0, repeats=1, clock=clock)
        t = median_ms(self.optimizer.step, device, warmup=0, repeats=1, clock=clock)
        self.steps.append(t)
        self.ratios.append(c / t)
        if check and torch.equal(probe, self.params[0].detach()[0, :8]):
            raise ValueError(f"{type(self.optimizer).__module__}.{type(self.optimizer).__qualname__} left the "
                             "parameters unchanged: it skipped the step, so its time would not count")


def measure(name: str, width: int, layers: int, device: torch.device, repeats: int, copy: Copy,
            clock=time.perf_counter, peers: tuple[str, ...] = PACKAGES) -> Row:
    cfg = option_defaults("optimizer", name)
    caps = capabilities(resolve_target(cfg, "optimizer"), cfg)
    if caps.needs_closure or caps.needs_hvp:
        raise ValueError(f"{name} needs a closure or Hessian-vector products; its step cannot be timed alone")
    ours = Contender(lambda model: build_optimizer(cfg, model)[0], width, layers, device)
    numel = sum(p.numel() for p in ours.params)
    contenders = {"ours": ours}
    warmup_s = {}
    compile_peers = want_compile("auto", ours.params)
    for package, make in peer_factories(name).items():
        if package not in peers or not installed(package):
            continue
        with _running(package, compile_peers):
            contenders[package] = Contender(lambda model, make=make: make(model.parameters()), width, layers, device)
            start = time.perf_counter()
            for _ in range(3):  # warm-up, off the clock: first-use compilation, lazy state
                contenders[package].step()
            warmup_s[package] = time.perf_counter() - start
    for _ in range(3):
        ours.step()
        copy()
    for i in range(repeats):
        for package, contender in contenders.items():
            with _running(package, compile_peers):
                contender.timed(copy, device, clock, check=i == repeats - 1)
    ideal = cfg.get("ideal_bytes")
    # (ideal bytes / step time) / (copy bytes / copy time)
    fraction = ideal * numel / copy.bytes * statistics.median(ours.ratios) if ideal is not None else None
    return Row(name, implementation(ours.optimizer), statistics.median(ours.steps), fraction,
               getattr(ours.optimizer, "compile_time_s", 0.0),
               {p: statistics.median(c.steps) for p, c in contenders.items() if p != "ours"}, warmup_s)


def run(names: list[str], width: int = 1024, layers: int = 10, device: str = "auto", repeats: int = 20,
        clock: str = "wall", threads: int | None = None, peers: tuple[str, ...] = PACKAGES, echo=print) -> list[Row]:
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
    compile_peers = want_compile("auto", [copy.src])  # the rule ours follow: numel decides on CPU
    echo(f"model: {layers} x Linear({width}, {width}) = {numel / 1e6:.2f}M fp32 parameters on {dev}"
         f" ({torch.get_num_threads()} threads, torch {torch.__version__}, {clock} clock)")
    echo(f"copy bandwidth: {bandwidth / 1e9:.2f} GB/s at the start; step times are medians of {repeats} steps, "
         "each paired with a copy timed just before it; implementations alternate step by step")
    echo("peers: " + ", ".join(f"{p} {version(p)} ({peer_mode(p, compile_peers)})" if installed(p)
                               else f"{p} (not installed: its column stays empty)" for p in peers))
    echo(markdown_head(header(peers)))
    rows = []
    for name in names:
        rows.append(measure(name, width, layers, dev, repeats, copy, tick, peers))
        echo(format_row(rows[-1], peers))
    warm = [f"{r.name} {p} {s:.1f}" for r in rows for p, s in r.peer_warmup_s.items() if s >= 1]
    if warm:  # heavyball compiles on first use: said here, never on the clock
        echo("peers' warm-up (3 steps, off the clock; includes first-use compilation), s: " + ", ".join(warm))
    return rows


def version(package: str) -> str:
    from importlib.metadata import version as installed_version

    return installed_version(package.replace("_", "-"))


def header(peers: tuple[str, ...] = PACKAGES) -> list[str]:
    return ["optimizer", "implementation", "ms/step", "copy fraction", "compile s",
            *(f"{p.replace('_', '-')} ms" for p in peers), "speed-up over the fastest peer"]


def format_row(r: Row, peers: tuple[str, ...] = PACKAGES) -> str:
    def num(x, fmt):
        return format(x, fmt) if x is not None else "-"

    return markdown_row([r.name, r.implementation, f"{r.ms:.1f}", num(r.copy_fraction, ".2f"),
                         num(r.compile_s or None, ".1f"), *(num(r.peer_ms.get(p), ".1f") for p in peers),
                         num(r.speedup, ".2f") + "x" if r.speedup else "-"])
