"""Running a sweep's cells: in this process, or through whichever Hydra launcher the config
selects (`launcher=parallel` → joblib workers, `launcher=slurm` → a SLURM job array).

Hydra's own sweepers only come as plugins discovered in the `hydra_plugins` namespace package,
which an editable install of bench does not provide, and a tuning sweep needs two dependent
phases anyway. So bench plays the sweeper itself: it composes the master config with Hydra's
config loader and hands each phase's jobs (lists of overrides) to the configured launcher, which
composes and runs every job exactly as it would in `bench run -m`.

In this process (`launcher=local`, the default), cells run from the configs bench composed while
planning: no interpreter, torch or Hydra start-up per run, which is what makes sweeps of tiny
runs fast.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time
from pathlib import Path
from typing import Any, Callable

from hydra._internal.callbacks import Callbacks
from hydra._internal.hydra import Hydra
from hydra._internal.utils import create_config_search_path
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.types import HydraContext, RunMode
from omegaconf import DictConfig, open_dict

from bench import BenchError
from bench.config import CONF_DIR
from bench.runner.main import execute


def sweep_job(cfg: DictConfig) -> dict[str, Any]:
    """The task function launcher jobs run (module level, so worker processes can import it)."""
    return execute(cfg)


class HydraSession:
    """Hydra's config loader and launcher, for one sweep."""

    def __init__(self, overrides: list[str]):
        GlobalHydra.instance().clear()
        self.hydra = Hydra.create_main_hydra2(task_name="bench", config_search_path=create_config_search_path(str(CONF_DIR)))
        self.master = self.hydra.compose_config("config", overrides=overrides, run_mode=RunMode.MULTIRUN)

    def compose(self, overrides: list[str]) -> DictConfig:
        """A job's config, as a launcher would compose it, minus the `hydra` node (as run_job does)."""
        cfg = self.hydra.config_loader.load_sweep_config(self.master, overrides)
        with open_dict(cfg):
            del cfg["hydra"]
        return cfg

    @property
    def in_process(self) -> bool:
        return str(self.master.hydra.launcher._target_).endswith(".BasicLauncher")

    @property
    def launcher_name(self) -> str:
        return str(self.master.hydra.runtime.choices.get("hydra/launcher", "basic"))

    def set_sweep_dir(self, path: Path) -> None:
        """Jobs' own Hydra output (submitit logs) goes under the sweep's directory."""
        extra = [f"hydra.sweep.dir={path}", "hydra.sweep.subdir=."]
        with open_dict(self.master):
            self.master.hydra.sweep.dir = str(path)
            self.master.hydra.sweep.subdir = "."
            self.master.hydra.overrides.hydra = [*self.master.hydra.overrides.hydra, *extra]

    def launch(self, jobs: list[list[str]], first_index: int) -> list[str]:
        """Run the jobs through the configured launcher; returns the errors of jobs that failed."""
        HydraConfig.instance().set_config(self.master)
        launcher = Plugins.instance().instantiate_launcher(
            hydra_context=HydraContext(config_loader=self.hydra.config_loader, callbacks=Callbacks(self.master)),
            task_function=sweep_job, config=self.master)
        errors = []
        try:
            returns = launcher.launch(jobs, initial_job_idx=first_index)
        except Exception as exc:  # e.g. a SLURM job that died: its run directory tells the rest
            return [f"{type(exc).__name__}: {exc}"]
        for ret in returns:
            if ret.status == JobStatus.FAILED:
                errors.append(f"{type(ret._return_value).__name__}: {ret._return_value}")
        return errors

    def close(self) -> None:
        GlobalHydra.instance().clear()


def run_in_process(cells: list, describe: Callable[[Any], str], overrides: Callable[[Any], list[str]]) -> None:
    """Execute each cell here, one line per cell. `execute`'s own chatter is replaced by that
    line; warnings and errors still reach stderr."""
    width = len(str(len(cells)))
    for i, cell in enumerate(cells, 1):
        started = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                summary = execute(cell.cfg, overrides=overrides(cell))
        except BenchError as exc:
            print(f"[{i:>{width}}/{len(cells)}] {describe(cell)}: error: {exc}", file=sys.stderr)
            continue
        print(f"[{i:>{width}}/{len(cells)}] {describe(cell)}: {outcome_text(summary)} "
              f"({time.perf_counter() - started:.1f}s)", flush=True)


def outcome_text(summary: dict[str, Any]) -> str:
    status = summary.get("status", "?")
    metric = summary.get("metric")
    value = (summary.get("final") or {}).get(metric)
    if status == "ok" and isinstance(value, (int, float)):
        return f"ok {metric}={value:.4g}"
    if status == "failed":
        return f"failed ({summary.get('error', '')})"
    return status
