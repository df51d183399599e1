"""`bench demo`: the whole product on a small real sweep — runs, leaderboard, plots, report.

Runs execute in this process (composed with Hydra's compose API), so the demo pays interpreter
and torch start-up once rather than once per run.
"""

from __future__ import annotations

import contextlib
import io
import itertools
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.config import CONF_DIR
from bench.runner.main import execute


def demo_cells(spec) -> list[list[str]]:
    """Every (task, optimizer, lr, seed) of the demo as a list of Hydra overrides."""
    cells = []
    for task_overrides, opt in itertools.product(spec.tasks.values(), spec.optimizers.values()):
        for lr, seed in itertools.product(opt.lr, spec.seeds):
            cells.append([*task_overrides, *opt.overrides, f"optimizer.lr={lr}", f"seed={seed}"])
    return cells


def run_cells(cells: list[list[str]], runs_root: Path, label: str = "runs") -> list[dict]:
    """Execute each cell in-process, with one progress bar for the lot; finished cells are skipped."""
    summaries = []
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"), Progress(
        TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[last]}"),
    ) as progress:
        bar = progress.add_task(label, total=len(cells), last="")
        for overrides in cells:
            cfg = compose("config", overrides=[*overrides, f"runs_root={runs_root}", "progress=off"])
            with contextlib.redirect_stdout(io.StringIO()):
                summary = execute(cfg)
            summaries.append(summary)
            progress.update(bar, advance=1, last=f"{cfg.task.name}/{cfg.optimizer.name}: {summary['status']}")
    GlobalHydra.instance().clear()
    return summaries


def run_demo(runs_root: Path) -> list[dict]:
    spec = OmegaConf.load(CONF_DIR / "demo.yaml")
    return run_cells(demo_cells(spec), runs_root, label="demo sweep")
