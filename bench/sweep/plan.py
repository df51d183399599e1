"""A tuning sweep as cells: which runs, with which values, in which phase.

The command's sweep overrides (`optimizer=adamw,lion`, `task=a,b`) span the comparison grid; each
grid point is tuned on its own with the same budget:

    search  studies × trials runs: study s draws `trials` scrambled Sobol points (scramble seed
            from `search_seed` and s) and trains them with seed `seed + s`
    seeds   the best search point re-run with `seeds` fresh seeds (`seed + studies + i`), never
            used in the search, so that the winner's luck is not counted twice

A cell's config is its point's composed config with plain values set (hyperparameters, seed,
`tune.*`), exactly what Hydra does with the equivalent overrides, so every launcher computes the
same run id for it.
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bench.config import run_id, semantic_config
from bench.sweep.space import Dimension, sobol_points


@dataclass(frozen=True)
class Budget:
    trials: int = 16  # per study
    studies: int = 1
    seeds: int = 3
    search_seed: int = 0

    @property
    def runs_per_point(self) -> int:
        return self.trials * self.studies + self.seeds


@dataclass
class Point:
    """One combination of the command's comparison axes, e.g. ["optimizer=lion"]."""

    overrides: list[str]
    cfg: DictConfig
    space: list[Dimension]

    @property
    def label(self) -> str:
        return "/".join(o.split("=", 1)[1] for o in self.overrides) or str(self.cfg.optimizer.name)


@dataclass
class Cell:
    point: int  # index into the sweep's points
    phase: str  # search | seeds
    study: int | None
    trial: int
    seed: int
    params: dict[str, float]
    sweep: str
    run_id: str = ""
    cfg: DictConfig | None = field(default=None, repr=False)

    def values(self) -> dict[str, Any]:
        """Dotted keys and values set on the point's config."""
        return {**{f"optimizer.{k}": v for k, v in self.params.items()}, "seed": self.seed,
                "tune.sweep": self.sweep, "tune.phase": self.phase, "tune.study": self.study, "tune.trial": self.trial}

    def overrides(self, base: list[str], point: Point) -> list[str]:
        """The same cell as Hydra overrides, for launchers that compose each job themselves."""
        return [*base, *point.overrides, *(f"{k}={_literal(v)}" for k, v in self.values().items())]

    def describe(self) -> str:
        where = f"s{self.study}/t{self.trial}" if self.phase == "search" else f"seed {self.seed}"
        params = " ".join(f"{k}={v:.3g}" for k, v in self.params.items())
        return f"{self.phase} {where} {params}"


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    return repr(value) if isinstance(value, float) else str(value)


def sweep_id(points: list[Point], budget: Budget) -> str:
    """Same experiment → same id, however the command was spelled (launcher, runs root, order of
    keys): the semantic configs, the search spaces and the budget."""
    spec = {"points": [semantic_config(p.cfg) for p in points],
            "spaces": [[d.describe() | {"key": d.key} for d in p.space] for p in points],
            "budget": budget.__dict__}
    return "tune-" + hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]


def study_seed(search_seed: int, study: int) -> int:
    return int(hashlib.sha256(f"{search_seed}/{study}".encode()).hexdigest()[:8], 16)


def materialize(cell: Cell, point: Point) -> Cell:
    """Give the cell its config and run id."""
    cfg = copy.deepcopy(point.cfg)
    for key, value in cell.values().items():
        OmegaConf.update(cfg, key, value, merge=True)
    cell.cfg, cell.run_id = cfg, run_id(cfg)
    return cell


def search_cells(points: list[Point], budget: Budget, sweep: str) -> list[Cell]:
    cells = []
    for index, point in enumerate(points):
        for study in range(budget.studies):
            draws = sobol_points(point.space, budget.trials, study_seed(budget.search_seed, study))
            for trial, params in enumerate(draws):
                cell = Cell(index, "search", study, trial, int(point.cfg.seed) + study, params, sweep)
                cells.append(materialize(cell, point))
    return cells


def seed_cells(index: int, point: Point, best: Cell, budget: Budget) -> list[Cell]:
    first = int(point.cfg.seed) + budget.studies
    return [materialize(Cell(index, "seeds", None, i, first + i, dict(best.params), best.sweep), point)
            for i in range(budget.seeds)]
