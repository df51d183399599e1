"""Running a sweep's cells: in this process, or through whichever Hydra launcher the config
selects (`launcher=parallel` → joblib workers, `launcher=slurm` → a SLURM job array).

`bench tune` plays the sweeper itself (bench/compose.py says why, and how it reaches Hydra's
config loader and launchers through public API only): it composes the master config and hands
each phase's jobs (lists of overrides) to the configured launcher, which composes and runs every
job exactly as it would in `bench run -m`.

In this process (`launcher=local`, the default), cells run from the configs bench composed while
planning: no interpreter, torch or Hydra start-up per run, which is what makes sweeps of tiny
runs fast.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
import time
from pathlib import Path
from typing import Any, Callable

from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from bench import compose
from bench.execute import Job, execute_all
from bench.runner.main import execute


def sweep_job(cfg: DictConfig) -> dict[str, Any]:
    """The task function launcher jobs run (module level, so worker processes can import it)."""
    return execute(cfg)


class HydraSession(compose.HydraSession):
    """A sweep's master config (bench/compose.py) and the launcher that runs its jobs."""

    def launch(self, jobs: list[list[str]], first_index: int) -> list[str]:
        """Run the jobs through the configured launcher; returns the errors of jobs that failed."""
        launcher = self.launcher(sweep_job)
        errors = []
        started = time.time()
        try:
            returns = launcher.launch(jobs, initial_job_idx=first_index)
        except Exception as exc:  # e.g. a SLURM job that died: its run directory tells the rest
            return [f"{type(exc).__name__}: {exc}"]
        finally:
            replay_job_logs(self.master, since=started)
        for ret in returns:
            if ret.status == JobStatus.FAILED:
                errors.append(f"{type(ret._return_value).__name__}: {ret._return_value}")
        return errors



def run_in_process(cells: list, describe: Callable[[Any], str], overrides: Callable[[Any], list[str]]) -> None:
    """Execute each cell here, one line per cell (bench/execute.py); settings a run rejects are
    said and the sweep goes on."""
    execute_all([Job(describe(cell), cell.cfg, overrides(cell)) for cell in cells], bad_input="report")


def _submitit_folder(config: DictConfig) -> Path | None:
    """Where a submitit launcher keeps its jobs' logs (the part of the path before any `%j`)."""
    launcher = config.hydra.launcher
    if "submitit" not in str(launcher.get("_target_", "")):
        return None
    return Path(*itertools.takewhile(lambda part: "%" not in part, Path(str(launcher.submitit_folder)).parts))


def _job_order(path: Path) -> tuple[int, ...]:
    """`<job id>[_<array index>]_<task>_log.out` in submission order: compare the numbers."""
    return tuple(int(n) for n in re.findall(r"\d+", path.name))


def replay_job_logs(config: DictConfig, since: float) -> None:
    """A submitit job runs in a process of its own, whose output lands in `<job>_log.out/.err`, not
    on this terminal. Print what the jobs of this launch printed (their own lines, as the local
    launcher shows them: `ok: <dir>`, `failed: <dir>: ...`), job by job, without submitit's chatter."""
    folder = _submitit_folder(config)
    if folder is None or not folder.is_dir():
        return
    since -= 1.0  # file times may lag the clock by a tick
    for out in sorted((p for p in folder.rglob("*_log.out") if p.stat().st_mtime >= since), key=_job_order):
        err = out.with_name(out.name.removesuffix(".out") + ".err")
        for path, stream in ((err, sys.stderr), (out, sys.stdout)):
            try:
                text = path.read_text(errors="replace")
            except FileNotFoundError:
                continue
            lines = [line for line in text.splitlines(keepends=True) if not line.startswith("submitit ")]
            stream.write("".join(lines))
            stream.flush()


def _remove_if_empty(path: Path) -> None:
    with contextlib.suppress(OSError):  # not empty, already gone: leave it
        path.rmdir()


class SweepHygiene(Callback):
    """Registered in config.yaml (`hydra.callbacks`) for `bench run -m`. It counts the jobs'
    statuses where the multirun was launched (jobs may run in workers). Hydra makes an output
    folder for every job (`.sweeps/<time>/<job>`) although bench writes nothing there (run
    directories hold everything): remove those that stay empty. Submitit jobs' output is printed
    here once they are done (`replay_job_logs`)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self._started = time.time()

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        # runs where the job ran (a worker, a submitit process): its own folder, nobody else's
        _remove_if_empty(Path(str(config.hydra.runtime.output_dir)))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from bench.runner import main, sweepers

        replay_job_logs(config, since=getattr(self, "_started", 0.0))
        sweep_dir = Path(str(config.hydra.sweep.dir))
        # `bench run -m` exits 1 if any job failed, wherever it ran
        main._statuses.extend(sweepers.collect_job_statuses(sweep_dir))
        if sweep_dir.is_dir():  # a job that stopped on a signal never reached on_job_end
            for root, _, _ in sorted(os.walk(sweep_dir), key=lambda w: len(w[0]), reverse=True):
                _remove_if_empty(Path(root))
