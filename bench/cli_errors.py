"""How every `bench` command fails: one line on stderr and a non-zero exit, never a traceback
(BENCH_DEBUG=1 shows it)."""

from __future__ import annotations

import os

import typer

from bench import BenchError


def fail(message: str, code: int = 2) -> None:
    """One line on stderr, a non-zero exit, no traceback (BENCH_DEBUG=1 re-raises instead)."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def guarded(fn, *args, **kwargs):
    """Call fn: bad input (BenchError) becomes one line and exit 2, Ctrl-C exit 130 (the shell's
    convention) instead of click's "Aborted!" and 1; BENCH_DEBUG=1 re-raises instead."""
    try:
        return fn(*args, **kwargs)
    except BenchError as exc:
        if os.environ.get("BENCH_DEBUG"):
            raise
        fail(str(exc))
    except KeyboardInterrupt:
        if os.environ.get("BENCH_DEBUG"):
            raise
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None
