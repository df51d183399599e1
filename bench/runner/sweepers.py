"""Hydra's sweeper plugins under `bench run -m`: the settings bench gives the Optuna sweeper
where the command leaves them out (a missing plugin's pip package: bench/compose.py), the float
each job returns, and its status, left where the launching process counts it.

What a sweeper optimizes is the float `bench run`'s task function returns: the run's final value
of its task's metric (runner/main.py `objective`). Bench sets the Optuna sweeper's direction
from the task's `mode` (maximize for accuracy, minimize for losses) and seeds its sampler with the
run's `seed`, so that running the same command again proposes the same trials: the finished ones
are `already done` and an interrupted one resumes from its checkpoint. Both can be overridden
(`hydra.sweeper.direction=…`, `hydra.sweeper.sampler.seed=…`). Other sweepers take their
direction in their own keys (Nevergrad: `hydra.sweeper.optim.maximize=true`).
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from bench import BenchError
from bench.config import resolve_target


def task_mode(cfg: DictConfig) -> str:
    """"min" or "max": the direction of the composed task's metric (imports the task's class)."""
    return str(resolve_target(cfg.task, "task").mode)


def chosen_sweeper(fixed: list[str]) -> str:
    for line in reversed(fixed):
        key, _, value = line.partition("=")
        if key.lstrip("+") == "hydra/sweeper":
            return value
    return "basic"


def sweeper_defaults(fixed: list[str], modes: set[str], seed: int | None) -> list[str]:
    """Overrides to add for the Optuna sweeper: its direction from the task's mode, and a sampler
    seed, each unless the command gives one."""
    if chosen_sweeper(fixed) != "optuna":
        return []
    given = {line.split("=", 1)[0].lstrip("+~") for line in fixed}
    extra = []
    if "hydra.sweeper.direction" not in given:
        if len(modes) > 1:
            raise BenchError("this sweep mixes tasks whose metric is maximized with tasks whose metric is "
                             "minimized; sweep one task at a time, or set hydra.sweeper.direction=")
        if modes == {"max"}:
            extra.append("hydra.sweeper.direction=maximize")
            print("note: hydra.sweeper.direction=maximize (the task's metric is higher-better)", file=sys.stderr)
    if "hydra.sweeper.sampler.seed" not in given and seed is not None:
        extra.append(f"hydra.sweeper.sampler.seed={seed}")
    return extra


#: a multirun's jobs may run in other processes (joblib, submitit): each leaves its status here,
#: under the sweep's folder, for the process that launched them to count
JOB_STATUS_DIR = ".job-status"


def objective(summary: dict[str, Any], direction: str = "minimize") -> float:
    """What a Hydra sweeper optimizes: the run's final value of its task's metric (as `bench tune`
    scores a trial). A run with no finite final value (diverged, failed, skipped while running
    elsewhere) returns the worst value for `direction`: +inf when minimizing, -inf when maximizing."""
    value = (summary.get("final") or {}).get(summary.get("metric"))
    if summary.get("status") in ("ok", "skipped") and isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return -math.inf if direction == "maximize" else math.inf


def sweeper_direction() -> str:
    from hydra.core.hydra_config import HydraConfig

    direction = HydraConfig.get().sweeper.get("direction", "minimize") if HydraConfig.initialized() else "minimize"
    return str(getattr(direction, "name", direction)).lower()


def leave_job_status(status: str) -> None:
    from hydra.core.hydra_config import HydraConfig

    if os.environ.get("RANK", "0") != "0":  # a multirun under torchrun: one status per job, rank 0's
        return
    hc = HydraConfig.get()
    folder = Path(str(hc.sweep.dir)) / JOB_STATUS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{hc.job.num}").write_text(status)


def collect_job_statuses(sweep_dir: Path) -> list[str]:
    """Called where the multirun was launched, once it ends: its jobs' statuses (markers removed)."""
    folder = sweep_dir / JOB_STATUS_DIR
    if not folder.is_dir():
        return []
    statuses = []
    for marker in sorted(folder.iterdir()):
        statuses.append(marker.read_text().strip() or "?")
        marker.unlink(missing_ok=True)
    folder.rmdir()
    return statuses
