"""`bench perf`: performance benchmarks of bench itself (P1 harness overhead, P2 optimizer steps)."""

from __future__ import annotations

from typing import List, Optional

import typer

from bench.cli_errors import fail, guarded

perf_app = typer.Typer(short_help="Benchmarks of bench itself: harness overhead, optimizer step speed.",
                       help="Performance benchmarks of bench itself, each against plain PyTorch in the same "
                       "process; results are ratios of medians (record them in docs/BENCHMARKS.md).",
                       no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


@perf_app.command("loop", short_help="P1: bench's training loop vs a hand-written PyTorch loop (harness overhead).")
def perf_loop(
    overrides: Optional[List[str]] = typer.Argument(None, help="overrides added to every case, e.g. optimizer=sgd"),
    case: Optional[List[str]] = typer.Option(None, "--case", "-c", help="logreg | fashion_mnist (repeatable; default: both)"),
    repeats: int = typer.Option(7, "--repeats", "-n", help="runs of each loop per case, alternated"),
    threads: int = typer.Option(1, "--threads", help="torch threads (1: steadier on a shared machine)"),
    clock: str = typer.Option("wall", "--clock", help="wall | cpu (process CPU time over the same intervals: "
                              "waiting for a busy core counts for neither side)"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | json"),
) -> None:
    """P1, harness overhead: bench's training loop vs a hand-written minimal PyTorch loop on the
    same task, model, optimizer, batches and steps, evaluation off both clocks. Goals: <= 1.05x
    on full-batch logreg (a step is ~0.1 ms, so loop bookkeeping shows), <= 1.02x on the
    Fashion-MNIST CNN.

    \b
      bench perf loop                          both cases, 7 repeats each
      bench perf loop -c logreg optimizer=sgd  one case, another optimizer
      bench perf loop --clock cpu -n 15        on a busy machine
    """
    from bench.perf import CASES, require_data  # torch-free: a missing data set is said before torch loads

    if fmt not in ("table", "json"):
        fail(f"unknown --format {fmt!r}; use table or json")
    if clock not in ("wall", "cpu"):
        fail(f"unknown --clock {clock!r}; use wall or cpu")
    if repeats < 1 or threads < 1:
        fail("--repeats and --threads must be >= 1")
    names = case or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        fail(f"unknown perf loop case {unknown[0]!r}; choose one of: {', '.join(CASES)}")
    guarded(require_data, names, list(overrides or []))
    from bench.perf.loop import measure, render

    results = []
    for name in names:
        typer.echo(f"P1 {name}: {repeats} x (bench loop, minimal loop) ...", err=True)
        results.append(guarded(measure, name, list(overrides or []), repeats, threads, clock))
    text = render(results, fmt)
    if text is not None:
        typer.echo(text)


@perf_app.command("optimizers", short_help="P2: optimizer step time and memory bandwidth vs a tensor copy.")
def perf_optimizers(
    names: Optional[List[str]] = typer.Argument(None, help="optimizer names (default: every element-wise one)"),
    width: int = typer.Option(1024, "--width", help="width of the square Linear layers"),
    layers: int = typer.Option(10, "--layers", help="number of layers (10 x 1024 wide = 10.5M parameters)"),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda"),
    repeats: int = typer.Option(20, "--repeats", "-n", help="timed steps per optimizer (the median is shown)"),
    clock: str = typer.Option("wall", "--clock", help="wall | cpu (process CPU time: steadier on a busy machine)"),
    threads: int = typer.Option(0, "--threads", help="torch threads (0: torch's default)"),
) -> None:
    """Optimizer step time on a >= 10M-parameter model: ms/step, the fraction of same-process
    tensor-copy bandwidth the step reaches (bytes an ideal single pass moves / time), compile time
    (ours, off the clock), the step times of the yaml's `peers:` (pytorch-optimizer, heavyball; same
    model, same process, steps alternating, gradients re-attached before every step) and the
    speed-up over the fastest of them.

    \b
      bench perf optimizers                       every element-wise optimizer
      bench perf optimizers lion adamw -n 50      a few, more steps
      bench perf optimizers --clock cpu --threads 1   on a shared machine
    """
    from bench.config import choices
    from bench.optimizers.perf import elementwise
    from bench.optimizers.perf import run as run_perf

    chosen = list(names or elementwise())
    unknown = [n for n in chosen if n not in choices("optimizer")]
    if unknown:
        fail(f"unknown optimizer {unknown[0]!r}; choose from: {', '.join(choices('optimizer'))}")
    if min(width, layers, repeats) < 1:
        fail("--width, --layers and --repeats must be >= 1")
    try:
        run_perf(chosen, width, layers, device, repeats, clock, threads or None, echo=typer.echo)
    except ValueError as exc:
        fail(str(exc))


@perf_app.command("gpu", short_help="One GPU check: optimizer steps, loop overhead, LLaMA MFU, DDP, probe, trials/GPU.")
def perf_gpu(
    part: Optional[List[str]] = typer.Option(None, "--part", "-p", help="optimizers | loop | ddp | sharpness | trials "
                                             "(repeatable; default: all)"),
    out: Optional[str] = typer.Option(None, "--out", "-o", help="also write the markdown block to this file"),
) -> None:
    """Everything bench claims about GPUs, measured in one command (sized for ~5 minutes on one
    H100/H200): element-wise optimizer steps as a fraction of copy bandwidth beside heavyball and
    pytorch-optimizer; bench's loop vs a minimal loop on CIFAR ResNet-18 (bf16, channels_last,
    eager and compiled) and LLaMA small/60m (tokens/s, MFU); a 1-GPU NCCL DDP run; the sharpness
    probe; trials per hour at 1/2/4/8 trials per GPU. Prints a markdown block for docs/BENCHMARKS.md.

    \b
      bench perf gpu -o gpu.md
      bench perf gpu -p trials        one part
    """
    from pathlib import Path

    import torch

    from bench.perf.gpu import GPU, PARTS, header, run

    parts = tuple(part or PARTS)
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        fail(f"unknown part {unknown[0]!r}; choose from: {', '.join(PARTS)}")
    if not torch.cuda.is_available():
        fail("bench perf gpu needs a CUDA GPU (none is visible); run it on a GPU node")
    if out is not None and Path(out).is_dir():
        fail(f"--out {out} is a directory; give a file name")
    report = guarded(run, parts, GPU, "cuda", typer.echo)
    command = "bench perf gpu" + "".join(f" -p {p}" for p in part or ())
    text = report.markdown(header("cuda", command))
    typer.echo(text)
    if out is not None:
        Path(out).write_text(text + "\n")
