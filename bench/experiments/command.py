"""`bench experiment`'s arguments → a preset's run, or the list of presets (bench/cli.py declares
the options; this keeps what they mean next to the presets)."""

from __future__ import annotations

from pathlib import Path

import typer

from bench.cli_errors import fail, guarded
from bench.experiments import default_runs_root, run_experiment
from bench.experiments.claims import write_docs_command
from bench.experiments.common import load_spec, names


def experiment_command(args: list[str], scale: str, runs: str | None, write_docs: bool, docs: str | None,
                       analyse_only: bool) -> None:
    name = None
    for arg in args:
        key, eq, value = arg.partition("=")
        if eq and key == "scale":
            scale = value
        elif eq and key == "experiment":
            name = value
        elif not eq and name is None:
            name = arg
        else:
            fail(f"unexpected argument {arg!r}; usage: bench experiment NAME [--scale cpu|gpu|test]")
    if name is None:
        for n in names():
            typer.echo(f"{n:<20} {guarded(load_spec, n, 'cpu').title}")
        return
    guarded(load_spec, name, scale)  # an unknown name or scale fails before anything is written
    target = Path(docs) if docs else Path("docs") if write_docs else None
    if scale == "test" and target is not None and (write_docs or target.resolve() == Path("docs").resolve()):
        fail("--scale test only checks that the preset runs; its numbers are not claims, so it never writes "
             "docs/: drop --write-docs (it writes under the runs root) or use --scale cpu or gpu")
    root = Path(runs) if runs else default_runs_root(name, scale)
    finding = guarded(run_experiment, name, scale, root, target, analyse_only)
    claims = (target or root) / "CLAIMS.md"
    typer.echo(f"{name}: {finding.verdict}. {finding.summary}")
    typer.echo(f"wrote {claims} and {', '.join(str(p) for p in finding.figures)}")
    if target is None and scale != "test":
        typer.echo(f"docs/CLAIMS.md is unchanged; `{write_docs_command(name, scale)}` updates it")
