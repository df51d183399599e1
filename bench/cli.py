"""The `bench` command. `bench run` forwards its arguments to Hydra; the other commands read
run directories or the config tree."""

from __future__ import annotations

import os
import sys
from typing import List, Optional

import typer

from bench import BenchError
from bench.config import GROUPS, choices, description

app = typer.Typer(
    help="Benchmark optimizers honestly: equal tuning budgets, timed runs, leaderboards with confidence intervals.\n\n"
    "Start with `bench list optimizers`, then `bench run optimizer=lion task=logreg`.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

PLURAL = {"tasks": "task", "optimizers": "optimizer", "schedules": "schedule", "loggers": "logger"}


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, a non-zero exit, no traceback (BENCH_DEBUG=1 re-raises instead)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


RUN_HELP = """Train one configuration, or a sweep with -m, into runs/<run_id>/.

Arguments are Hydra overrides (see `bench list` for the choices):

\b
  bench run optimizer=lion task=logreg              one run
  bench run optimizer=adamw optimizer.lr=3e-4 steps=500 seed=1
  bench run task=rosenbrock task.dim=100 schedule=cosine
  bench run -m optimizer=adamw,lion seed=0,1,2      a sweep (Hydra multirun)
  bench run --cfg job optimizer=lion                print the composed config

A finished configuration is skipped (`already done: <dir>`); force=true re-runs it into a new
directory. Top-level keys: steps, batch_size, eval_every, log_every, seed, device (auto|cpu|cuda),
precision (auto|fp32|bf16), grad_clip, runs_root, force, progress (auto|bar|lines|off).
"""


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, help=RUN_HELP)
def run(ctx: typer.Context) -> None:
    from bench.runner.preflight import preflight

    args = list(ctx.args)
    try:
        preflight(args)
    except BenchError as exc:
        if os.environ.get("BENCH_DEBUG"):
            raise
        fail(str(exc))
    from bench.runner.main import hydra_entry

    sys.argv = ["bench"] + args
    hydra_entry()


@app.command("list")
def list_options(
    what: str = typer.Argument("optimizers", help="optimizers | tasks | schedules | loggers"),
) -> None:
    """List the choices of a config group, each with its one-line description."""
    group = PLURAL.get(what, what)
    if group not in GROUPS:
        fail(f"cannot list {what!r}; choose one of: {', '.join(PLURAL)}")
    from rich.console import Console
    from rich.table import Table

    from bench.config import option_defaults

    table = Table(title=f"{what} ({len(choices(group))})", show_lines=False)
    table.add_column(group)
    extra = {"optimizer": ["source", "state_per_param"], "task": ["data_source", "budget", "target"]}.get(group, [])
    for col in extra:
        table.add_column("state B/param" if col == "state_per_param" else col)
    table.add_column("description")
    for name in choices(group):
        node = option_defaults(group, name)
        cells = [str(node.get(c, "")) for c in extra]
        if group == "task":
            cells[0] = _data_status(node)
        table.add_row(name, *cells, description(group, name))
    Console(width=max(160, Console().width)).print(table)


def _data_status(node) -> str:
    source = str(node.get("data_source", "built-in"))
    try:
        from hydra.utils import get_class

        cls = get_class(node._target_)
        present = getattr(cls, "data_present", None)
        if present is not None:
            return f"{source} ({'present' if present(node) else 'missing'})"
    except Exception:  # listing must not fail because one task cannot import
        return f"{source} (unavailable)"
    return source


@app.command()
def data(
    name: str = typer.Argument(..., help="cifar10 | shakespeare (fashion_mnist: names its system package)"),
    root: Optional[str] = typer.Option(None, help="where to put it (default: $BENCH_DATA, else ~/.cache/bench)"),
    url: Optional[str] = typer.Option(None, help="fetch from this address instead (a mirror or a file:// copy)"),
) -> None:
    """Download a data set once, verify it, and unpack it where its task looks by default."""
    from bench.tasks.download import fetch

    try:
        path = fetch(name, root, url)
    except BenchError as exc:
        if os.environ.get("BENCH_DEBUG"):
            raise
        fail(str(exc))
    typer.echo(f"{name}: {path}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
