"""Hydra's sweeper plugins under `bench run -m`: the settings bench gives the Optuna sweeper
where the command leaves them out (a missing plugin's pip package: bench/compose.py).

What a sweeper optimizes is the float `bench run`'s task function returns: the run's final value
of its task's metric (runner/main.py `objective`). Bench sets the Optuna sweeper's direction
from the task's `mode` (maximize for accuracy, minimize for losses) and seeds its sampler with the
run's `seed`, so that running the same command again proposes the same trials: the finished ones
are `already done` and an interrupted one resumes from its checkpoint. Both can be overridden
(`hydra.sweeper.direction=…`, `hydra.sweeper.sampler.seed=…`). Other sweepers take their
direction in their own keys (Nevergrad: `hydra.sweeper.optim.maximize=true`).
"""

from __future__ import annotations

import sys

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
