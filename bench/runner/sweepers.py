"""Hydra's sweeper and launcher plugins under `bench run -m`: which pip package installs a
missing one, and the settings bench gives the Optuna sweeper where the command leaves them out.

What a sweeper optimizes is the float `bench run`'s task function returns: the run's final value
of its task's metric (runner/main.py `objective`). Bench sets the Optuna sweeper's direction
from the task's `mode` (maximize for accuracy, minimize for losses) and seeds its sampler with the
run's `seed`, so that running the same command again proposes the same trials: the finished ones
are `already done` and an interrupted one resumes from its checkpoint. Both can be overridden
(`hydra.sweeper.direction=…`, `hydra.sweeper.sampler.seed=…`). Other sweepers take their
direction in their own keys (Nevergrad: `hydra.sweeper.optim.maximize=true`).
"""

from __future__ import annotations

import re
import sys

from omegaconf import DictConfig

from bench import BenchError
from bench.config import resolve_target

#: Hydra plugins bench users reach for, by the option they add: the pip package that installs it
PLUGIN_PACKAGES = {
    "sweeper": {"optuna": "'bench[optuna]'", "nevergrad": "hydra-nevergrad-sweeper", "ax": "hydra-ax-sweeper"},
    "launcher": {"joblib": "hydra-joblib-launcher", "submitit_local": "hydra-submitit-launcher",
                 "submitit_slurm": "hydra-submitit-launcher", "ray_aws": "hydra-ray-launcher",
                 "rq": "hydra-rq-launcher"},
}


def missing_plugin_message(text: str) -> str | None:
    """`hydra/sweeper=X` or `hydra/launcher=X` (directly, or through a launcher preset) naming a
    plugin that is not installed: which package installs it."""
    found = re.search(r"Could not find 'hydra/(sweeper|launcher)/([^']+)'", text)
    if found is None:
        return None
    kind, name = found.groups()
    installed = re.findall(r"^\t(\S+)$", text.split(f"Available options in 'hydra/{kind}':", 1)[-1], re.M)
    have = f" (installed: {', '.join(installed)})" if installed else ""
    package = PLUGIN_PACKAGES[kind].get(name)
    if package is not None:
        return f"the Hydra {kind} {name!r} is not installed; pip install {package}{have}"
    return f"unknown Hydra {kind} {name!r}{have}; a plugin adds its own, e.g. pip install 'bench[optuna]' for optuna"


def task_mode(cfg: DictConfig) -> str:
    """"min" or "max": the direction of the composed task's metric (imports the task's class)."""
    return str(resolve_target(cfg.task, "task").mode)


def _chosen_sweeper(fixed: list[str]) -> str:
    for line in reversed(fixed):
        key, _, value = line.partition("=")
        if key.lstrip("+") == "hydra/sweeper":
            return value
    return "basic"


def sweeper_defaults(fixed: list[str], modes: set[str], seed: int | None) -> list[str]:
    """Overrides to add for the Optuna sweeper: its direction from the task's mode, and a sampler
    seed, each unless the command gives one."""
    if _chosen_sweeper(fixed) != "optuna":
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
