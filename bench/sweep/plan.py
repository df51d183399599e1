"""A tuning sweep as cells: which runs, with which values, in which phase.

The command's sweep overrides (`optimizer=adamw,lion`, `task=a,b`) span the comparison grid; each
grid point is tuned on its own with the same budget:

    search  studies × trials runs: study s draws `trials` scrambled Sobol points (scramble seed
            from `search_seed` and s; `search=random`: uniform points from that seed) and trains
            them with seed `seed + s`; `search=tpe` proposes each study's next point from its
            finished ones, in rounds (bench/sweep/search.py)
    seeds   the best search point re-run with `seeds` fresh seeds (`seed + studies + i`), never
            used in the search, so that the winner's luck is not counted twice; with `seeds=auto`
            more of them (i = seeds, seeds + 1, ...) where a comparison is undecided
            (bench/sweep/auto_seeds.py)

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
from bench.sweep.auto_seeds import Schedule
from bench.sweep.space import Dimension, random_points, sobol_points

#: how the search phase picks its points; sobol is the default and leaves sweep ids as they were
SEARCH_METHODS = ("sobol", "random", "tpe")


@dataclass(frozen=True)
class Budget:
    trials: int = 16  # per study
    studies: int = 1
    #: re-runs of each point's best; None until `bench tune` resolves the default for its grid
    #: (auto_seeds.default_seeds); with `auto`, the seeds of the first look
    seeds: int | None = None
    search_seed: int = 0
    auto: bool = False  # seeds=auto: add seeds where a comparison is undecided, up to max_seeds
    max_seeds: int = 20
    seed_step: int = 4
    search: str = "sobol"  # one of SEARCH_METHODS

    @property
    def schedule(self) -> Schedule | None:
        return Schedule(self.seeds, self.max_seeds, self.seed_step) if self.auto else None

    @property
    def runs_per_point(self) -> int:
        """At most: seeds=auto may stop a point below max_seeds."""
        return self.trials * self.studies + (self.max_seeds if self.auto else self.seeds)

    def spec(self) -> dict[str, Any]:
        """What identifies the sweep. A fixed `seeds` gives exactly the keys sweeps had before
        seeds=auto existed, so their ids (and their manifests) do not move."""
        fixed = {"trials": self.trials, "studies": self.studies, "seeds": self.seeds, "search_seed": self.search_seed}
        if self.search != "sobol":  # a sobol sweep keeps the id it had before there was a choice
            fixed["search"] = self.search
        if not self.auto:
            return fixed
        return {**fixed, "seeds": "auto", "initial_seeds": self.seeds, "max_seeds": self.max_seeds,
                "seed_step": self.seed_step, "looks": self.schedule.looks}


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
    looks: int | None = None  # seeds=auto: the planned looks L, recorded for whoever re-judges the seeds
    search: str = "sobol"  # how the search phase chose the point (recorded; never part of the run id)
    run_id: str = ""
    cfg: DictConfig | None = field(default=None, repr=False)

    def values(self) -> dict[str, Any]:
        """Dotted keys and values set on the point's config."""
        looks = {} if self.looks is None else {"tune.looks": self.looks}  # other sweeps' overrides stay as they were
        return {**{f"optimizer.{k}": v for k, v in self.params.items()}, "seed": self.seed,
                "tune.sweep": self.sweep, "tune.phase": self.phase, "tune.study": self.study, "tune.trial": self.trial,
                "tune.search": self.search, **looks}

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
            "budget": budget.spec()}
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
    """Every search cell of a sobol or random sweep, known before any has run (TPE's are not:
    bench/sweep/search.py)."""
    draw = {"sobol": sobol_points, "random": random_points}[budget.search]
    cells = []
    for index, point in enumerate(points):
        for study in range(budget.studies):
            draws = draw(point.space, budget.trials, study_seed(budget.search_seed, study))
            for trial, params in enumerate(draws):
                cell = Cell(index, "search", study, trial, int(point.cfg.seed) + study, params, sweep,
                            search=budget.search)
                cells.append(materialize(cell, point))
    return cells


def seed_cells(index: int, point: Point, best: Cell, budget: Budget, count: int) -> list[Cell]:
    """The first `count` fresh-seed re-runs of the point's best (the same cells whatever the count:
    seeds=auto extends the list, never reshuffles it)."""
    first = int(point.cfg.seed) + budget.studies
    looks = budget.schedule.looks if budget.auto else None
    return [materialize(Cell(index, "seeds", None, i, first + i, dict(best.params), best.sweep, looks, search=best.search),
                        point) for i in range(count)]
