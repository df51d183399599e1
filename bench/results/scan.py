"""Which folders under a runs root are runs, and why the others are skipped: the file-system
side of the results store (stat() calls and a file's last byte; no parsing)."""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from bench.runner import rundir


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def stamp(path: str) -> str | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_mtime_ns}:{st.st_size}"


def is_locked(run_dir: Path) -> bool:
    """True when a live process holds the run's lock (it is still running)."""
    try:
        fd = os.open(run_dir / ".lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def metrics_problem(run_dir: str) -> str | None:
    """Checks only the last byte: every complete record ends in a newline."""
    try:
        with open(f"{run_dir}/metrics.jsonl", "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return "metrics.jsonl is empty; no learning curve"
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                return "metrics.jsonl ends in a partial line (truncated); its curve stops at the last complete line"
    except OSError:
        return "no metrics.jsonl; no learning curve"
    return None


#: how deep folders of runs may nest under a runs root (runs/experiments/<name>/<run_id>)
NESTING = 3


def run_dirs(base: str, rel: str, skipped: list[Skipped], depth: int = 0) -> list[str]:
    """Paths (relative to `base`) of the run directories under it. A folder that is neither a run
    (summary.json or config.yaml) nor holds runs further down is listed in `skipped` as foreign.
    Hidden folders (.index, .sweeps) are bench's own bookkeeping."""
    try:
        names = sorted(e.name for e in os.scandir(f"{base}/{rel}" if rel else base)
                       if e.is_dir() and not e.name.startswith("."))
    except OSError:
        return []
    found = []
    for name in names:
        path = f"{rel}/{name}" if rel else name
        full = f"{base}/{path}"
        # config.yaml first: every run writes it first, so a run costs one stat() here
        if os.path.exists(f"{full}/config.yaml") or os.path.exists(f"{full}/summary.json") or depth == NESTING:
            found.append(path)
            continue
        inner: list[Skipped] = []
        below = run_dirs(base, path, inner, depth + 1)
        if below:
            found += below
            skipped += inner
        else:
            skipped.append(Skipped(full, "not a run directory (no summary.json or config.yaml)"))
    return found


def unfinished_reason(run_dir: Path) -> str:
    if not (run_dir / rundir.CONFIG).exists():
        return "not a run directory (no summary.json or config.yaml)"
    if is_locked(run_dir):
        return "still running (its lock is held); no summary.json yet"
    return "unfinished (no summary.json: crashed or interrupted); re-running the same config redoes it"
