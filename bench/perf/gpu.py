"""`bench perf gpu`: one command that measures bench on one GPU and writes a markdown block for
docs/BENCHMARKS.md (GPU name, torch version, date, the command):

1. optimizers: every element-wise optimizer's step as a fraction of the device's copy bandwidth,
   beside heavyball's and pytorch-optimizer's implementation of the same algorithm
   (bench/optimizers/perf.py, as `bench perf optimizers` runs it);
2. loop: bench's training loop against a minimal hand-written loop (bench/perf/loop.py) on
   CIFAR ResNet-18 with generated CIFAR-shaped data, bf16 autocast and channels_last, eager and
   compiled, and on LLaMA small and 60m (tokens/s and MFU from bench's own runs);
3. ddp: a 1-GPU NCCL DDP smoke run (`torchrun --nproc_per_node=1 -m bench run ...`);
4. sharpness: the sharpness probe on the GPU (its value and what it costs off the clock);
5. trials: trials per hour with 1, 2, 4 and 8 trials per GPU (`launcher=parallel
   distributed.trials_per_gpu=k`) on logreg, rosenbrock, cifar10_tiny and llama_tiny, and the
   ratio to one per GPU (worker start-up included: it is what a sweep pays).

Sizes are in `Size`; `GPU` is sized for about 5 minutes on an H100/H200 (an estimate: not yet
timed on one). The CPU test runs every part at `TINY` so this script cannot rot.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.results.markup import markdown_head, markdown_row
from bench.runner import rundir

PARTS = ("optimizers", "loop", "ddp", "sharpness", "trials")


@dataclass(frozen=True)
class Size:
    optimizers: tuple[str, ...] | None = None  # None: every element-wise optimizer
    width: int = 2048
    layers: int = 8
    opt_repeats: int = 20
    loop_cases: tuple[tuple[str, tuple[str, ...]], ...] = (
        ("cifar10 resnet18, bf16, channels_last, eager",
         ("task=cifar10", "task.synthetic=10240", "batch_size=256", "steps=80", "eval_every=80", "precision=bf16")),
        ("cifar10 resnet18, bf16, channels_last, compiled",
         ("task=cifar10", "task.synthetic=10240", "batch_size=256", "steps=80", "eval_every=80", "precision=bf16",
          "task.compile=true")),
        ("llama small, bf16, compiled",
         ("task=llama", "task.synthetic=4000000", "task.preset=small", "batch_size=32", "task.seq_len=512",
          "steps=60", "eval_every=30", "precision=bf16", "task.compile=true")),
        ("llama 60m, bf16, compiled",
         ("task=llama", "task.synthetic=4000000", "task.preset=60m", "batch_size=32", "task.seq_len=512",
          "steps=60", "eval_every=30", "precision=bf16", "task.compile=true")),
    )
    loop_repeats: int = 2
    smoke: tuple[str, ...] = ("task=cifar10_tiny", "steps=20")
    sharpness: tuple[str, ...] = ("task=cifar10_tiny", "steps=20", "log_every=10", "probe.sharpness.every=10")
    trial_tasks: tuple[str, ...] = ("logreg", "rosenbrock", "cifar10_tiny", "llama_tiny")
    trial_steps: int = 100
    per_gpu: tuple[int, ...] = (1, 2, 4, 8)
    trials_per_worker: int = 2


GPU = Size()
TINY = Size(optimizers=("lion", "adamw"), width=32, layers=2, opt_repeats=2,
            loop_cases=(("logreg", ("task=logreg", "steps=4", "eval_every=2")),),
            loop_repeats=1, smoke=("task=logreg", "steps=4"),
            sharpness=("task=logreg", "steps=4", "log_every=2", "probe.sharpness.every=2", "probe.sharpness.iters=3"),
            trial_tasks=("logreg",), trial_steps=5, per_gpu=(1, 2), trials_per_worker=1)


@dataclass
class Report:
    device: str
    lines: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def markdown(self, header: str) -> str:
        took = ", ".join(f"{part} {s:.0f} s" for part, s in self.seconds.items())
        return "\n".join([header, "", *self.lines, "", f"Time per part: {took}."])


def header(device: str, command: str) -> str:
    import torch

    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({os.cpu_count()} cores)"
    return (f"Measured on {name}, torch {torch.__version__}, {time.strftime('%Y-%m-%d', time.gmtime())} "
            f"with `{command}`.")


def part_optimizers(report: Report, size: Size, device: str) -> None:
    from bench.optimizers.perf import elementwise, run

    names = list(size.optimizers or elementwise())
    run(names, size.width, size.layers, device, size.opt_repeats, echo=report.add)


def part_loop(report: Report, size: Size, device: str) -> None:
    from bench.perf.loop import compare

    report.add(markdown_head(["case", "bench ms/step", "minimal ms/step", "ratio", "tokens/s", "MFU"]))
    for about, overrides in size.loop_cases:
        throughput: list[dict] = []
        result = compare(about, about, [*overrides, f"device={device}"], 1.02, size.loop_repeats, None,
                         on_result=lambda cfg, summary, seen=throughput: seen.append(summary.get("final") or {}))
        tokens = [t["train/tokens_per_s"] for t in throughput if "train/tokens_per_s" in t]
        mfu = [t["train/mfu"] for t in throughput if "train/mfu" in t]
        bench_ms = 1000 * statistics.median(result.bench) / result.steps
        minimal_ms = 1000 * statistics.median(result.minimal) / result.steps
        tok = f"{statistics.median(tokens):.0f}" if tokens else "–"
        util = f"{statistics.median(mfu):.1%}" if mfu else "–"
        report.add(markdown_row([about, f"{bench_ms:.2f}", f"{minimal_ms:.2f}", f"{result.ratio:.3f}", tok, util]))


def bench_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench", "run", *args]


def ddp_command(size: Size, device: str, runs_root: Path) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", "-m", "bench", "run",
            *size.smoke, f"device={device}", "progress=off", f"runs_root={runs_root}"]


def _summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/summary.json"))]


def part_ddp(report: Report, size: Size, device: str) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-gpu-ddp-") as tmp:
        start = time.perf_counter()
        done = subprocess.run(ddp_command(size, device, Path(tmp)), capture_output=True, text=True, timeout=300)
        wall = time.perf_counter() - start
        runs = _summaries(Path(tmp))
    status = runs[0]["status"] if runs else f"no summary (exit {done.returncode}: {done.stderr.strip()[-200:]})"
    backend = "NCCL" if device.startswith("cuda") else "gloo"
    report.add(f"1-process {backend} DDP (`torchrun --nproc_per_node=1`, {' '.join(size.smoke)}): {status}, "
               f"{wall:.1f} s wall including start-up"
               + (f", train {runs[0]['train_time_s']:.2f} s" if runs and "train_time_s" in runs[0] else "") + ".")


def part_sharpness(report: Report, size: Size, device: str) -> None:
    from bench.compose import compose_config
    from bench.runner.main import execute

    with tempfile.TemporaryDirectory(prefix="bench-gpu-probe-") as tmp:
        cfg = compose_config([*size.sharpness, f"device={device}", f"runs_root={tmp}", "progress=off"])
        with contextlib.redirect_stdout(io.StringIO()):
            summary = execute(cfg)
        lines = [json.loads(x) for x in (Path(summary["run_dir"]) / rundir.METRICS).read_text().splitlines()]
    values = [(x["step"], x["probe/sharpness"]) for x in lines if "probe/sharpness" in x]
    shown = ", ".join(f"step {s}: {v:.4g}" for s, v in values)
    report.add(f"Sharpness probe ({' '.join(size.sharpness)}): {summary['status']}; {shown}; train "
               f"{summary['train_time_s']:.2f} s, evaluation and probes off the clock {summary['eval_time_s']:.2f} s "
               "(the probe is logged with the metrics, outside both).")


def trials_command(task: str, per_gpu: int, trials: int, steps: int, runs_root: Path) -> list[str]:
    return bench_command("-m", "launcher=parallel", f"distributed.trials_per_gpu={per_gpu}", f"task={task}",
                         f"steps={steps}", f"seed=range(0,{trials})", "progress=off", f"runs_root={runs_root}")


def trials_per_hour(task: str, per_gpu: int, size: Size) -> float:
    import torch

    from bench.runner.devices import parallel_jobs

    workers = parallel_jobs(per_gpu) if torch.cuda.is_available() else per_gpu
    trials = workers * size.trials_per_worker
    with tempfile.TemporaryDirectory(prefix="bench-gpu-trials-") as tmp:
        cmd = trials_command(task, per_gpu, trials, size.trial_steps, Path(tmp))
        if not torch.cuda.is_available():
            cmd.append(f"hydra.launcher.n_jobs={workers}")
        start = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        wall = time.perf_counter() - start
        ok = sum(s["status"] == "ok" for s in _summaries(Path(tmp)))
    if done.returncode != 0 or ok != trials:
        raise RuntimeError(f"{task} at {per_gpu} per GPU: {ok} of {trials} trials ok (exit {done.returncode}): "
                           f"{done.stderr.strip()[-300:]}")
    return 3600 * trials / wall


def part_trials(report: Report, size: Size, device: str) -> None:
    report.add(markdown_head(["task", *(f"{k}/GPU trials/h" for k in size.per_gpu), "ratio to 1/GPU"]))
    for task in size.trial_tasks:
        rates = [trials_per_hour(task, k, size) for k in size.per_gpu]
        ratios = ", ".join(f"{k}: {r / rates[0]:.2f}x" for k, r in zip(size.per_gpu, rates, strict=True))
        report.add(markdown_row([f"{task} ({size.trial_steps} steps)", *(f"{r:.0f}" for r in rates), ratios]))


RUNNERS = {"optimizers": part_optimizers, "loop": part_loop, "ddp": part_ddp, "sharpness": part_sharpness,
           "trials": part_trials}
TITLES = {"optimizers": "Optimizer steps (fraction of copy bandwidth, beside heavyball and pytorch-optimizer)",
          "loop": "Harness loop vs a minimal loop (train time medians; tokens/s and MFU from bench's runs)",
          "ddp": "DDP smoke", "sharpness": "Sharpness probe", "trials": "Trials per hour, k trials per GPU"}


def run(parts: tuple[str, ...] = PARTS, size: Size = GPU, device: str = "cuda", echo=print) -> Report:
    """Each part in turn; its lines go to the report (and to `echo` as they come)."""
    report = Report(device)
    for part in parts:
        start = time.perf_counter()
        report.add("", f"**{TITLES[part]}**", "")
        before = len(report.lines)
        RUNNERS[part](report, size, device)
        for line in report.lines[before:]:
            echo(line)
        report.seconds[part] = time.perf_counter() - start
    return report
