"""Where metrics go: metrics.jsonl (always), the console, and optionally Weights & Biases.

A sink has `log(step, metrics)` and `finish(summary)`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from bench import BenchError
from bench.runner.rundir import METRICS


class JsonlSink:
    """One JSON line per log step, flushed, so a crashed run still leaves its curve behind."""

    def __init__(self, path: Path):
        self._file = open(path, "a", buffering=1)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else str(v)) for k, v in metrics.items()}
        self._file.write(json.dumps({"step": step, **clean}) + "\n")
        self._file.flush()

    def finish(self, summary: dict[str, Any]) -> None:
        self._file.close()


def _short(metrics: dict[str, float]) -> str:
    keys = [k for k in metrics if k.startswith(("train/loss", "train/subopt", "val/"))]
    return "  ".join(f"{k}={metrics[k]:.4g}" for k in keys if isinstance(metrics[k], (int, float)))


class ConsoleSink:
    """A rich progress bar on a terminal; plain log lines otherwise (CI logs, pipes)."""

    def __init__(self, title: str, total: int, mode: str = "auto"):
        self.title, self.total = title, total
        use_bar = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
        self.quiet = mode == "off"
        self._progress = None
        if use_bar and not self.quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"), transient=False,
            )
            self._progress.start()
            self._bar = self._progress.add_task(title, total=total, metrics="")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self._progress is not None:
            self._progress.update(self._bar, completed=step, metrics=_short(metrics))
        elif not self.quiet and any(k.startswith("val/") for k in metrics):
            print(f"[{self.title}] step {step}/{self.total}  {_short(metrics)}", file=sys.stderr, flush=True)

    def finish(self, summary: dict[str, Any]) -> None:
        if self._progress is not None:
            self._progress.stop()


class WandbSink:
    """Weights & Biases: config, curves and summary. If wandb cannot start, warn in one line and
    let the run go on with its local logs. Mode: `logger.mode`, else WANDB_MODE, else offline
    (online with a key but no network hangs for minutes, so it is never the default). Offline
    files go under `<run_dir>/wandb/`; `wandb sync <that dir>` uploads them later."""

    def __init__(self, run_dir: Path, run_id: str, config: dict, project: str = "bench", mode: str | None = None):
        self._run = None
        mode = mode or os.environ.get("WANDB_MODE") or "offline"
        if mode == "disabled":
            return
        try:
            import wandb

            # console="off": wandb would otherwise wrap stdout/stderr, fighting the progress bar;
            # quiet: our own one line below says where the files went.
            settings = wandb.Settings(console="off", quiet=True, init_timeout=60)
            self._run = wandb.init(project=project, name=run_id, id=run_id, config=config, mode=mode,
                                   dir=str(run_dir), reinit="finish_previous", resume="allow", settings=settings)
        except Exception as exc:  # any failure to start must not cost the run
            reason = (str(exc).strip().splitlines() or [""])[0][:200]
            hint = " (pip install wandb)" if isinstance(exc, ImportError) else ""
            print(f"warning: wandb did not start ({type(exc).__name__}: {reason}){hint}; local logs only",
                  file=sys.stderr)
            return
        if mode == "offline":
            print(f"wandb: offline run in {self._run.dir.rsplit('/files', 1)[0]}; upload with `wandb sync`",
                  file=sys.stderr)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self._run is not None:
            self._run.log(metrics, step=step)

    def finish(self, summary: dict[str, Any]) -> None:
        if self._run is None:
            return
        try:
            for key, value in _scalars(summary):
                self._run.summary[key] = value
        finally:  # a failed summary write must still close the run (it holds a service process)
            self._run.finish()
            self._run = None


def _scalars(data: dict[str, Any], prefix: str = ""):
    """(key, value) pairs wandb can show as summary values: nested dicts become `final/val/loss`."""
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _scalars(value, f"{name}/")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            yield name, value


def make_sinks(names, run_dir: Path, run_id: str, total: int, progress: str, logger_cfg, config: dict) -> list:
    sinks: list = [JsonlSink(run_dir / METRICS)]
    for name in names:
        if name == "console":
            sinks.append(ConsoleSink(run_id, total, progress))
        elif name == "wandb":
            sinks.append(WandbSink(run_dir, run_id, config, logger_cfg.get("project", "bench"), logger_cfg.get("mode")))
        else:
            raise BenchError(f"unknown sink {name!r} in logger config; valid: console, wandb")
    return sinks
