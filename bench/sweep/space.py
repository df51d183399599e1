"""Search spaces and the scrambled Sobol points drawn from them.

An optimizer's yaml declares its space next to its defaults:

    search:
      lr: {low: 1.0e-5, high: 1.0, log: true}
      betas.0: {low: 0.8, high: 0.99}        # one element of a list hyperparameter

Points come from torch's scrambled Sobol sequence with a fixed seed: the same seed gives the same
points, and optimizers whose spaces have the same dimension get the same unit-cube points (common
random numbers, so that differences between optimizers are not differences in luck). `search=random`
draws independent uniform points from the same seed instead (the same sharing holds); TPE's points
depend on the results so far and come from bench/sweep/search.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import torch

from bench import BenchError

SPEC_KEYS = {"low", "high", "log"}


@dataclass(frozen=True)
class Dimension:
    key: str  # relative to the optimizer node: "lr", "betas.0"
    low: float
    high: float
    log: bool = False

    def value(self, u: float) -> float:
        """Map u in [0, 1) onto the range, rounded to 6 significant digits so that the value
        written in a Hydra override and the value that ran are the same number."""
        if self.log:
            v = math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low)))
        else:
            v = self.low + u * (self.high - self.low)
        return float(f"{v:.6g}")

    def describe(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log}


def parse_space(search: Mapping[str, Any] | None, where: str) -> list[Dimension]:
    """The `search:` block of an optimizer as dimensions, checked; `where` names the yaml."""
    if not search:
        raise BenchError(f"{where} has no `search:` block; add one like `lr: {{low: 1.0e-4, high: 1.0, log: true}}`")
    dims = []
    for key, spec in search.items():
        if not isinstance(spec, Mapping) or not {"low", "high"} <= set(spec) or set(spec) - SPEC_KEYS:
            raise BenchError(f"{where} search.{key} must look like {{low: 1.0e-4, high: 1.0, log: true}}, got {spec!r}")
        low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or not low < high:
            raise BenchError(f"{where} search.{key}: need numbers with low < high, got low={low!r} high={high!r}")
        if log and low <= 0:
            raise BenchError(f"{where} search.{key}: a log scale needs low > 0, got {low!r}")
        dims.append(Dimension(str(key), float(low), float(high), log))
    return dims


def sobol_points(space: list[Dimension], n: int, seed: int) -> list[dict[str, float]]:
    """`n` points of the space: the first n of a scrambled Sobol sequence seeded with `seed`."""
    engine = torch.quasirandom.SobolEngine(dimension=len(space), scramble=True, seed=seed)
    unit = engine.draw(n, dtype=torch.float64).tolist()
    return [{d.key: d.value(u) for d, u in zip(space, row, strict=True)} for row in unit]


def random_points(space: list[Dimension], n: int, seed: int) -> list[dict[str, float]]:
    """`n` independent uniform points of the space (`search=random`): the baseline Sobol improves on
    (no gaps or clumps by chance), drawn from torch's generator seeded with `seed`."""
    generator = torch.Generator().manual_seed(seed)
    unit = torch.rand(n, len(space), dtype=torch.float64, generator=generator).tolist()
    return [{d.key: d.value(u) for d, u in zip(space, row, strict=True)} for row in unit]


def rounded(dim: Dimension, v: float) -> float:
    """A value proposed in the space's own units (TPE) as `Dimension.value` writes it: 6
    significant digits, kept inside [low, high]."""
    return min(dim.high, max(dim.low, float(f"{v:.6g}")))
