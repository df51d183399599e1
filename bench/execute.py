"""The one loop that runs a list of composed configs in this process, with one progress line per
run: `bench tune` (launcher=local), `bench check` and `bench experiment` all run their cells
through `execute_all`. (Other launchers run jobs through Hydra: bench/sweep/launch.py.)

Each run's own chatter (`ok: <dir>`, the progress bar) is replaced by its line
`[i/n] <label>: <outcome> (<seconds>s)`; warnings and errors still reach stderr.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from omegaconf import DictConfig

from bench import BenchError


@dataclass
class Job:
    label: str
    cfg: DictConfig
    overrides: list[str] | None = None  # the command's overrides, for a run that starts torchrun


def outcome_text(summary: dict[str, Any]) -> str:
    status = summary.get("status", "?")
    metric = summary.get("metric")
    value = (summary.get("final") or {}).get(metric)
    if status == "ok" and isinstance(value, (int, float)):
        return f"ok {metric}={value:.4g}"
    if status == "failed":
        return f"failed ({summary.get('error', '')})"
    return status


def execute_all(jobs: list[Job], out: Callable[[str], None] | None = None,
                bad_input: str = "raise") -> list[dict[str, Any]]:
    """Run each job, in order; returns their summaries. bad_input="report": settings a run
    rejects (BenchError) are said on stderr and that job's summary is {"status": "error"}, and
    the others go on; "raise": the error ends the loop."""
    from bench.runner.main import execute

    say = out or (lambda line: print(line, flush=True))
    width = len(str(len(jobs)))
    summaries = []
    for i, job in enumerate(jobs, 1):
        started = time.perf_counter()
        head = f"[{i:>{width}}/{len(jobs)}] {job.label}"
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                summary = execute(job.cfg, overrides=job.overrides)
        except BenchError as exc:
            if bad_input == "raise":
                raise
            print(f"{head}: error: {exc}", file=sys.stderr)
            summaries.append({"status": "error", "error": str(exc)})
            continue
        summaries.append(summary)
        say(f"{head}: {outcome_text(summary)} ({time.perf_counter() - started:.1f}s)")
    return summaries
