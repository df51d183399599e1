"""What every experiment preset shares: its spec at a scale, running its cells in this process,
and reading them back through the results store. Numbers with CIs and verdicts as text are in
verdicts.py; its section of CLAIMS.md is written by claims.py.

A preset is `conf/experiment/<name>.yaml` (the claim, its source, the sweep, and per-scale
overrides under `scales:`) plus `bench/experiments/<name>.py` with two functions:
`sweep(exp)` runs the runs (finished ones are skipped, so a re-run only redoes the analysis) and
`analyse(exp) -> Finding` turns the runs into figures, a table and a verdict.
"""

from __future__ import annotations

import contextlib
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from omegaconf import DictConfig, OmegaConf, open_dict

from bench import BenchError
from bench.config import CONF_DIR

# numpy, pandas and matplotlib are imported by the functions that analyse runs: listing the
# experiments (`bench experiment`) reads only their yaml.
if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from bench.results.store import Runs

SCALES = ("test", "cpu", "gpu")
VERDICTS = ("reproduced", "partly reproduced", "not reproduced at this scale")


@dataclass
class Cell:
    """One run: Hydra overrides, and optionally a whole task node that replaces `task` (for the
    experiment's own tasks, which have no yaml in conf/task)."""

    overrides: list[str]
    task: dict[str, Any] | None = None
    label: str = ""
    #: a finished run's resolved config to start from instead of composing one (re-running a
    #: tuned trial with other seeds); `overrides` are then plain `key=value` updates of it
    config: DictConfig | None = None


@dataclass
class Finding:
    verdict: str  # one of VERDICTS
    summary: str  # one sentence with the decisive numbers
    body: str  # markdown: the table and how to read it
    figures: list[Path] = field(default_factory=list)


@dataclass
class Experiment:
    name: str
    scale: str
    spec: DictConfig
    runs_root: Path
    docs: Path  # CLAIMS.md goes here, figures into docs/claims/
    read_only: bool = False  # run() only reads finished runs back (the analysis after the sweep)
    #: the figures' folder under `docs`; "" puts them beside CLAIMS.md (in a runs root, where a
    #: folder that holds no runs would be listed as foreign by every command that reads it)
    figures_subdir: str = "claims"

    @property
    def figures_dir(self) -> Path:
        return self.docs / self.figures_subdir if self.figures_subdir else self.docs

    def run(self, cells: Sequence[Cell], label: str | None = None) -> list[dict[str, Any]]:
        """Execute each cell here (no interpreter start-up per run); finished cells are skipped.
        Read-only: return each cell's summary from disk (status "missing" when it never ran)."""
        from bench.compose import composer
        from bench.config import run_id
        from bench.execute import Job, execute_all
        from bench.runner.rundir import read_summary

        jobs = []
        with composer() as make:  # every cell composed before the first runs: bad input stops nothing midway
            for cell in cells:
                if cell.config is not None:
                    cfg = OmegaConf.merge(cell.config, OmegaConf.from_dotlist(cell.overrides))
                    cfg.runs_root, cfg.progress = str(self.runs_root), "off"  # set, not parsed: YAML reads off as false
                else:
                    cfg = make([*self.base_overrides(), *cell.overrides])
                if cell.task is not None:
                    with open_dict(cfg):
                        cfg.task = OmegaConf.create(cell.task)
                jobs.append(Job(f"{label or self.name} {cell.label or ' '.join(cell.overrides)}", cfg))
        if self.read_only:
            return [read_summary(self.runs_root / run_id(job.cfg)) or
                    {"status": "missing", "run_dir": str(self.runs_root / run_id(job.cfg))} for job in jobs]
        summaries = execute_all(jobs)
        return summaries

    def tune(self, args: list[str]) -> None:
        """An equal-budget quasi-random search through `bench tune`, in this process."""
        from bench.sweep.tune import tune

        if self.read_only:
            return
        with contextlib.redirect_stdout(sys.stderr):  # its per-run lines are progress, not results
            tune([*self.base_overrides(), *args])

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """One run's config as `run` would compose it, for measurements made in this process."""
        from bench.compose import composer

        with composer() as make:
            return make([*self.base_overrides(), *overrides])

    def base_overrides(self) -> list[str]:
        return [f"runs_root={self.runs_root}", "progress=off", *self.spec.get("overrides", [])]

    def load(self) -> Runs:
        from bench.results.store import load

        return load(self.runs_root)

    @property
    def key(self) -> str:
        """The name of this experiment's CLAIMS.md section and figures: the CPU preset's results
        and a GPU run's live side by side."""
        return self.name if self.scale in ("cpu", "test") else f"{self.name}-{self.scale}"

    def save(self, fig: Figure, stem: str) -> Path:
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        path = self.figures_dir / f"{self.key}-{stem}.png"
        fig.savefig(path, dpi=110)
        return path


@dataclass
class Tuned:
    """A grid point after `tune_grid`: the best lr, its search score, and the seed runs' summaries."""

    lr: float | None
    score: float | None
    search: list[dict[str, Any]]
    seeds: list[dict[str, Any]]


def tune_grid(exp: Experiment, points: dict[str, Cell], lrs: Sequence[float], search_seed: int,
              seeds: Sequence[int], label: str = "") -> dict[str, Tuned]:
    """Equal-budget lr tuning on a grid: every point runs every lr once (seed `search_seed`), the
    best final metric picks its lr, and that lr is re-run with `seeds`, which the search never
    used (so the winner's luck in the search is not counted again). Diverged or failed runs can
    never win; a point whose every lr failed gets no seed runs."""
    from bench.runner.rundir import read_summary
    from bench.sweep.select import score

    def with_lr(cell: Cell, lr: float, seed: int) -> Cell:
        return Cell([*cell.overrides, f"optimizer.lr={lr}", f"seed={seed}"], cell.task,
                    f"{cell.label} lr={lr:g} seed={seed}")

    def finished(summaries: list[dict]) -> list[dict]:  # a skipped run's summary is on disk
        return [s if s.get("status") != "skipped" else read_summary(Path(s["run_dir"])) or s for s in summaries]

    keys = list(points)
    search = finished(exp.run([with_lr(points[k], lr, search_seed) for k in keys for lr in lrs],
                              label=f"{label} search".strip()))
    out: dict[str, Tuned] = {}
    for i, key in enumerate(keys):
        mine = search[i * len(lrs):(i + 1) * len(lrs)]
        scored = [(score(s), lr) for s, lr in zip(mine, lrs, strict=True) if score(s) is not None]
        if not scored:
            out[key] = Tuned(None, None, mine, [])
            continue
        sign = -1 if mine[0].get("mode") == "max" else 1
        best_score, best_lr = min(scored, key=lambda t: sign * t[0])
        out[key] = Tuned(best_lr, best_score, mine, [])
    again = [(k, with_lr(points[k], out[k].lr, seed)) for k in keys if out[k].lr is not None for seed in seeds]
    results = finished(exp.run([c for _, c in again], label=f"{label} seeds".strip()))
    for (key, _), summary in zip(again, results, strict=True):
        out[key].seeds.append(summary)
    return out


def load_spec(name: str, scale: str) -> DictConfig:
    path = CONF_DIR / "experiment" / f"{name}.yaml"
    if not path.exists():
        raise BenchError(f"unknown experiment {name!r}; choose one of: {', '.join(names())}")
    if scale not in SCALES:
        raise BenchError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    spec = OmegaConf.load(path)
    scales = spec.pop("scales", {}) or {}
    return OmegaConf.merge(spec, scales.get(scale, {}), {"scale": scale})


def names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def figure(ncols: int = 1, width: float = 5.5, height: float = 3.8) -> tuple[Figure, list]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig, axes


def hyperparameter(row: Any, key: str) -> Any:
    """One optimizer hyperparameter of a store row (the store keeps them as JSON text)."""
    import json

    return json.loads(row.hyperparameters).get(key)


def selected(runs: Runs, task: str, lrs: Sequence[float], seeds: Sequence[int]) -> list:
    """Store rows of this spec's task, step sizes and seeds (a runs root may hold runs of an
    earlier spec: those are left out), sorted by (lr, seed)."""
    rows = [r for r in runs.table[runs.table["task"] == task].itertuples()
            if float(hyperparameter(r, "lr")) in [float(x) for x in lrs] and int(r.seed) in list(seeds)]
    return sorted(rows, key=lambda r: (float(hyperparameter(r, "lr")), int(r.seed)))


def curves_by_run(runs: Runs, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """run_id → (steps, values) of one metric, sorted by step."""
    frame = runs.curves()
    frame = frame[frame["metric"] == metric]
    out = {}
    for run_id, part in frame.groupby("run_id"):
        part = part.sort_values("step")
        out[run_id] = (part["step"].to_numpy(dtype=float), part["value"].to_numpy(dtype=float))
    return out
