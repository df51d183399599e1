"""What `bench leaderboard`, `bench plot` and `bench report` do, apart from option parsing.
Bad input raises BenchError with a one-line message; the CLI turns it into exit code 2."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Sequence

from bench import BenchError
from bench.results import leaderboard as lb
from bench.results import plots, speedup, tables
from bench.results.store import Runs, load

X_CHOICES = tuple(plots.X_AXES)
MEASURES = ("time", "steps")


def _split(values: Sequence[str] | None) -> list[str]:
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def parse_filters(filters: Sequence[str] | None, task: str | None, optimizer: str | None) -> tuple[list[str], list[str]]:
    """`task=a,b optimizer=c` positional filters (Hydra spelling) merged with --task/--optimizer."""
    tasks, optimizers = _split([task] if task else []), _split([optimizer] if optimizer else [])
    for item in filters or []:
        key, sep, value = item.partition("=")
        if not sep or key not in ("task", "optimizer"):
            raise BenchError(f"cannot read filter {item!r}; use task=NAME[,NAME] or optimizer=NAME[,NAME]")
        (tasks if key == "task" else optimizers).extend(_split([value]))
    return tasks, optimizers


def load_runs(runs_root: str, tasks: Sequence[str] = (), optimizers: Sequence[str] = ()) -> Runs:
    """The runs under `runs_root`, filtered, with every skipped directory printed once to stderr."""
    root = Path(runs_root)
    if not root.is_dir():
        raise BenchError(f"runs root {runs_root!r} does not exist; pass --runs DIR (where `bench run` wrote runs_root=DIR)")
    runs = load(root)
    if runs.table.empty:
        raise BenchError(f"no finished runs under {runs_root!r} ({len(runs.skipped)} directories skipped); "
                         f"run e.g. `bench run -m optimizer=adamw,sgd seed=0,1,2 runs_root={runs_root}`")
    table = runs.table
    for kind, wanted, column in (("task", tasks, "task"), ("optimizer", optimizers, "optimizer")):
        if not wanted:
            continue
        known = set(table[column]) | (set(table["benchmark"]) if kind == "task" else set())
        unknown = [w for w in wanted if w not in known]
        if unknown:
            raise BenchError(f"no runs of {kind} {', '.join(unknown)} under {runs_root!r}; "
                             f"{kind}s there: {', '.join(sorted(set(table[column])))}")
        keep = table[column].isin(wanted) | (table["benchmark"].isin(wanted) if kind == "task" else False)
        table = table[keep]
    return Runs(runs.root, table.reset_index(drop=True), runs.skipped)


def print_skipped(runs: Runs) -> None:
    if not runs.skipped:
        return
    print(f"skipped {len(runs.skipped)} (not fatal):", file=sys.stderr)
    for item in runs.skipped:
        print(f"  {item.path}: {item.reason}", file=sys.stderr)


def check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise BenchError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")


def check_baseline(runs: Runs, baseline: str, explicit: bool) -> None:
    present = sorted(set(runs.table["optimizer"]))
    if baseline not in present:
        if explicit:
            raise BenchError(f"baseline {baseline!r} has no runs here; optimizers: {', '.join(present)}")
        print(f"note: no runs of the default baseline {baseline!r}; the 'vs {baseline}' column is empty "
              f"(pass --baseline NAME)", file=sys.stderr)


def _writable_dir(directory: Path, flag: str) -> None:
    # os.access, not a probe file: checking must leave nothing behind, and it runs before any work
    if not os.access(directory, os.W_OK | os.X_OK):
        raise BenchError(f"{flag}: cannot write into {str(directory)!r} (permission denied or read-only); "
                         f"pass {flag} somewhere writable")


def _existing_parent(path: Path, flag: str, what: str) -> Path:
    parent = path.parent
    if not parent.exists():
        raise BenchError(f"{flag} {str(path)!r}: directory {str(parent)!r} does not exist; create {parent} first "
                         f"({what})")
    if not parent.is_dir():
        raise BenchError(f"{flag} {str(path)!r}: {str(parent)!r} is not a directory; pass another {flag}")
    _writable_dir(parent, flag)
    return parent


def check_report_out(out: str | Path, force: bool = False) -> Path:
    """Where `bench report` may write, checked before any work: a file path in an existing writable
    directory, and either new, an earlier bench report (replaced), or any file with --force.
    Returns the path to write (a symlink's target, so the link keeps pointing at the report)."""
    from bench.results.report import is_report

    path = Path(out).expanduser()
    if path.is_dir():
        raise BenchError(f"--out {str(out)!r} is a directory; pass a file path like {path / 'report.html'}")
    if path.is_symlink():
        path = path.resolve()
    _existing_parent(path, "--out", "bench report does not create directories")
    if path.exists():
        if not path.is_file():
            raise BenchError(f"--out {str(out)!r} exists and is not a regular file; pass another --out")
        if not force and not is_report(path):
            raise BenchError(f"--out {str(out)!r} exists and is not a bench report; pass --force to overwrite it, "
                             f"or another --out")
    return path


def check_plot_out(out: str | Path) -> Path:
    """Where `bench plot` may write, checked before any work: an existing writable directory, or
    a new folder whose parent exists (one missing folder is created, never a whole tree)."""
    path = Path(out).expanduser()
    if path.exists():
        if not path.is_dir():
            raise BenchError(f"--out {str(out)!r} is a file; pass a directory for the figures")
        _writable_dir(path, "--out")
    else:
        _existing_parent(path, "--out", "bench plot creates only the last folder of --out")
    return path


def show_leaderboard(runs_root: str | Path, tasks: Sequence[str] = (), optimizers: Sequence[str] = (),
                     baseline: str = "adamw", fmt: str = "table", measure: str = "time",
                     explicit_baseline: bool = False, wide: bool = False):
    """Print the leaderboard of every run under `runs_root` (rich tables, or md/csv/json text) and
    the skipped directories; return the leaderboard DataFrame. The rich table fits the terminal
    unless `wide`. Raises BenchError on bad input."""
    check_choice("--format", fmt, tables.FORMATS)
    check_choice("--measure", measure, MEASURES)
    runs = load_runs(str(runs_root), tasks, optimizers)
    check_baseline(runs, baseline, explicit_baseline)
    board = lb.leaderboard(runs.table, baseline=baseline)
    across = lb.across_tasks(runs.table, measure)
    gains = speedup.speedups(runs.table, baseline)
    if fmt == "table":
        tables.print_rich(board, across, baseline, wide=wide, speedups=gains, measure=measure)
    else:
        sys.stdout.write(tables.render(board, fmt, across, baseline, speedups=gains))
    print_skipped(runs)
    return board


def plot_command(runs_root: str, tasks, optimizers, out: str, kinds: Sequence[str], x: str, measure: str) -> list[Path]:
    kinds = list(plots.KINDS) if not kinds or "all" in kinds else list(kinds)
    for kind in kinds:
        check_choice("--kind", kind, (*plots.KINDS, "all"))
    check_choice("--x", x, X_CHOICES)
    check_choice("--measure", measure, MEASURES)
    out_dir = check_plot_out(out)
    runs = load_runs(runs_root, tasks, optimizers)
    written = []
    try:
        out_dir.mkdir(exist_ok=True)
        for name, _title, fig in plots.figures(runs, kinds, x=x, measure=measure):
            written += plots.save(fig, out_dir, name)
    except OSError as exc:  # a disk that fills up or a folder removed meanwhile: one line, not a traceback
        raise BenchError(f"cannot write figures into {out!r}: {exc.strerror or exc}; pass another --out") from None
    for path in written:
        print(path)
    print_skipped(runs)
    return written


def report_command(runs_root: str, tasks, optimizers, out: str, baseline: str, x: str, measure: str,
                   explicit_baseline: bool, argv: Sequence[str], force: bool = False) -> Path:
    from bench.results.report import build_report

    check_choice("--x", x, X_CHOICES)
    check_choice("--measure", measure, MEASURES)
    target = check_report_out(out, force)
    runs = load_runs(runs_root, tasks, optimizers)
    check_baseline(runs, baseline, explicit_baseline)
    try:
        path = build_report(runs_root, target, baseline=baseline, x=x, measure=measure, command=argv, runs=runs)
    except OSError as exc:  # e.g. the disk filled up: the earlier report is still intact
        raise BenchError(f"cannot write {out!r}: {exc.strerror or exc}; pass another --out") from None
    print_skipped(runs)
    print(f"report: {path.resolve()}")
    return path
