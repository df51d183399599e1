"""The run directory: the only interface between running and reporting.

    runs/<run_id>/config.yaml     resolved config (written first)
                  metrics.jsonl   one line per log step, flushed
                  summary.json    written last, atomically (temp file + rename)
                  .lock           held (flock) while a process works in the directory; holds its pid;
                                  deleted when that process is done with it, whatever the outcome
                  checkpoint.pt   while unfinished: the state to resume from (see checkpoint.py)
                  interrupted.json  after a stop signal: the step and the signal (no summary.json)

A directory whose summary.json says "ok" or "diverged" is finished: a re-run skips it. One whose
summary says "failed" holds a result (a sweep counts it as a miss) but is not finished: the
failure may be transient (out of memory, a killed data read), so a re-run retries it. One
without summary.json is unfinished (crashed, killed, interrupted or still running: the lock
tells which). Several processes may share one runs root safely.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import platform
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

import bench
from bench import BenchError
from bench.results.names import canonical_summary

#: the files of a run directory (see above); runner writes and results reads them by these names
CONFIG, METRICS, SUMMARY, INTERRUPTED = "config.yaml", "metrics.jsonl", "summary.json", "interrupted.json"

if TYPE_CHECKING:  # torch is imported by environment() only: reading a summary must not need it
    import torch

FINISHED = ("ok", "diverged")  # done: a re-run skips these
RESULTS = (*FINISHED, "failed")  # what a sweep counts; "failed" is retried by a re-run


def is_finished(summary: dict[str, Any] | None) -> bool:
    return summary is not None and summary.get("status") in FINISHED


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide results from the rest of a team sharing the root
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_config(path: Path, resolved: dict[str, Any]) -> None:
    """The resolved config as yaml. libyaml's emitter when present: OmegaConf's pure-Python one
    costs ~10 ms a run, which a sweep of tiny runs notices."""
    path.write_text(yaml.dump(resolved, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False))


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """summary.json, with metric names as they are now (a run may predate a rename: names.py)."""
    try:
        return canonical_summary(json.loads((run_dir / SUMMARY).read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def try_lock(path: Path) -> int | None:
    """An exclusive flock on `path` (created if missing) without waiting, with this process's
    pid written in it (for people asking who holds it, and for tests that signal the holder);
    the open descriptor, or None when another process holds it. Run directories and device
    slots (runner/devices.py) both lock through this."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class RunLock:
    """An exclusive flock on `<run_dir>/.lock`. The kernel drops it when the process dies,
    even by kill -9, so a stale lock never blocks a re-run. `release` deletes the file: a
    finished run keeps no lock behind, and a `.lock` left in a directory means its process died."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / ".lock"
        self._fd: int | None = None

    def acquire(self) -> bool:
        while True:
            fd = try_lock(self.path)
            if fd is None:
                return False
            # The holder before us may have deleted the file between our open and our flock: a
            # lock on a deleted file excludes nobody, so lock the file that is there now instead.
            if self._is_current(fd):
                break
            os.close(fd)
        self._fd = fd
        return True

    def _is_current(self, fd: int) -> bool:
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def release(self) -> None:
        """Delete the file while still holding it (see `acquire`), then let go."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def ensure_root(root: Path) -> Path:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise BenchError(f"cannot write to runs_root {str(root)!r} ({exc.strerror}); pass runs_root=<writable dir>") from exc
    return root


def fresh_directory(root: Path, run_id: str) -> Path:
    """A new directory for a forced re-run: `<run_id>`, else `<run_id>-2`, `-3`, ...; mkdir is
    atomic, so two processes never get the same one and nothing existing is touched."""
    n = 1
    while True:
        candidate = root / (run_id if n == 1 else f"{run_id}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            n += 1


def trim_metrics(path: Path, keep_through: int | None) -> None:
    """Drop an earlier attempt's curve: all of it (`keep_through=None`), or the lines it logged
    after step `keep_through`, where a resumed run picks up. A torn last line goes too."""
    if keep_through is None or not path.exists():
        path.unlink(missing_ok=True)
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] > keep_through:
                break
        except (ValueError, KeyError, TypeError):
            break
        kept.append(line + "\n")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.writelines(kept)
    os.replace(tmp, path)


@functools.lru_cache(maxsize=1)  # one git process per sweep, not one per trial
def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(bench.__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict[str, Any]:
    import torch

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    return {
        "bench": bench.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": str(device),
        "device_name": name,
        "threads": torch.get_num_threads(),
        "git_sha": git_sha(),
        "host": socket.gethostname(),
        "pid": os.getpid(),  # which process ran it (a launcher's worker, a requeued job)
    }
