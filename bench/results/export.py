"""What `bench export` does: the results table (one row per run, `store.load`) written as CSV or
parquet for pandas, polars, DuckDB or a spreadsheet. Columns are documented in the README
("Results as a table")."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Sequence

import pandas as pd

from bench import BenchError
from bench.results.commands import check_choice, load_runs, print_skipped
from bench.results.store import storable

FORMATS = ("csv", "parquet")
#: what a reader looks at first; every other column follows in the table's own order
LEADING = ("run_id", "task", "benchmark", "optimizer", "seed", "status", "metric", "mode", "value", "loss",
           "steps_to_target", "time_to_target_s", "budget")
SUFFIXES = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def columns(table: pd.DataFrame) -> list[str]:
    """Leading columns, then hp/* and task/* (sorted), then everything else as the table has it."""
    lead = [c for c in LEADING if c in table]
    grouped = sorted(c for c in table if c.startswith("hp/")) + sorted(c for c in table if c.startswith("task/"))
    return lead + grouped + [c for c in table if c not in lead and c not in grouped]


def choose_format(fmt: str | None, out: str) -> str:
    if fmt is None:
        if out == "-":
            return "csv"
        fmt = SUFFIXES.get(Path(out).suffix.lower())
        if fmt is None:
            raise BenchError(f"cannot tell the format of {out!r} from its name; pass --format csv or --format parquet")
    check_choice("--format", fmt, FORMATS)
    if fmt == "parquet" and out == "-":
        raise BenchError("parquet is binary and does not go to stdout; pass --out FILE.parquet (or --format csv)")
    return fmt


def check_output(out: str, force: bool) -> None:
    """Before anything is read: an existing file is never replaced without --force."""
    if out == "-":
        return
    path = Path(out)
    if path.is_dir():
        raise BenchError(f"--out {out!r} is a directory; pass a file name, e.g. --out {path / 'runs.csv'}")
    if path.exists() and not force:
        raise BenchError(f"{out!r} exists; pass --force to overwrite it, or choose another --out")


def write(frame: pd.DataFrame, fmt: str, path: Path) -> None:
    """Temp file + rename: a failure midway (disk full, Ctrl-C) leaves the old file, not half a new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            storable(frame).to_parquet(tmp, index=False)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide the file from the rest of a team
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def export_command(runs_root: str, tasks: Sequence[str], optimizers: Sequence[str], fmt: str | None,
                   out: str, force: bool) -> pd.DataFrame:
    """Write the (filtered) results table to `out` ("-": CSV on stdout); return what was written."""
    check_output(out, force)
    fmt = choose_format(fmt, out)
    runs = load_runs(runs_root, tasks, optimizers)
    table = runs.table[columns(runs.table)]
    if out == "-":
        table.to_csv(sys.stdout, index=False)
    else:
        write(table, fmt, Path(out))
        print(f"{out}: {len(table)} runs, {table.shape[1]} columns ({fmt})")
    print_skipped(runs)
    return table
