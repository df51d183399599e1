"""How results compare: which of two metric values is better, and the median of a few seeds.
Plain Python, no numpy or scipy, so the training loop and the sweep can import it for free."""

from __future__ import annotations

import math
from typing import Iterable


def better(a: float, b: float | None, mode: str) -> bool:
    """Whether `a` beats `b` for a metric whose mode is "max" (higher is better) or "min";
    anything beats nothing (b None)."""
    return b is None or (a > b if mode == "max" else a < b)


def median(values: Iterable[float]) -> float:
    """The median of a handful of values, as np.median computes it but without its overhead (the
    calibration simulations call it ~10⁵ times): the middle value, or the mean of the two middle
    ones, where (x + inf) / 2 = inf is the honest answer when half the runs missed. A nan is a
    run without a number, a miss, as everywhere in bench.results; nan when there are no values."""
    x = sorted(math.inf if v != v else float(v) for v in _flat(values))
    if not x:
        return math.nan
    mid = len(x) // 2
    return x[mid] if len(x) % 2 else (x[mid - 1] + x[mid]) / 2


def _flat(values) -> Iterable:
    # a numpy array (of any shape) or a pandas Series iterates fastest as a flat list
    return values.ravel().tolist() if hasattr(values, "ravel") else values
