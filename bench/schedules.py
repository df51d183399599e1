"""Learning-rate schedules: callables `(step, total) -> multiplier` of the optimizer's base lr.

A schedule is its own config group so that every optimizer in a comparison gets the same one.
Warm-up lengths are fractions of the run, so a schedule means the same thing at any budget.

Each also answers `varies(start, total)`: whether the multiplier can take more than one value
over steps start..total. The loop skips LambdaLR.step() where it cannot; answering from the
formula rather than by evaluating every step keeps a run of 10^12 steps from spending hours before
its first step. A "yes" where unsure is always safe (the scheduler is then stepped).
"""

from __future__ import annotations

import math


class Constant:
    def __call__(self, step: int, total: int) -> float:
        return 1.0

    def varies(self, start: int, total: int) -> bool:
        return False


class _WarmupThenDecay:
    """Linear warm-up over the first `warmup` fraction of the run, then `decay(progress)` with
    progress going from 0 to 1 over the rest."""

    def __init__(self, warmup: float, final: float):
        self.warmup, self.final = warmup, final

    def __call__(self, step: int, total: int) -> float:
        warm = int(self.warmup * total)
        if step < warm:
            return (step + 1) / warm
        return self.decay(min(1.0, (step - warm) / max(1, total - warm)))

    def varies(self, start: int, total: int) -> bool:
        # both decays are 1 throughout when final is 1; the warm-up ramps wherever it is left
        return start < total and (start < int(self.warmup * total) or self.final != 1)


class WarmupCosine(_WarmupThenDecay):
    """Linear warm-up, then cosine decay to `final` × base lr."""

    def __init__(self, warmup: float = 0.05, final: float = 0.0):
        super().__init__(warmup, final)

    def decay(self, progress: float) -> float:
        return self.final + (1 - self.final) * 0.5 * (1 + math.cos(math.pi * progress))


class LinearDecay(_WarmupThenDecay):
    """Linear warm-up, then linear decay to `final` × base lr at the last step."""

    def __init__(self, warmup: float = 0.0, final: float = 0.0):
        super().__init__(warmup, final)

    def decay(self, progress: float) -> float:
        return 1 - (1 - self.final) * progress


class WarmupStableDecay:
    """WSD (trapezoid): warm-up, a long constant phase, then a short linear cool-down."""

    def __init__(self, warmup: float = 0.05, decay: float = 0.2, final: float = 0.0):
        self.warmup, self.decay, self.final = warmup, decay, final

    def __call__(self, step: int, total: int) -> float:
        warm = int(self.warmup * total)
        decay_start = total - int(self.decay * total)
        if step < warm:
            return (step + 1) / warm
        if step < decay_start:
            return 1.0
        progress = (step - decay_start) / max(1, total - decay_start)
        return 1 - (1 - self.final) * min(1.0, progress)

    def varies(self, start: int, total: int) -> bool:
        cools_down = self.final != 1 and total - int(self.decay * total) < total
        return start < total and (start < int(self.warmup * total) or cools_down)
