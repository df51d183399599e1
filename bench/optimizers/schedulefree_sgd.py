"""Schedule-Free SGD (Defazio et al. 2024, Algorithm 1): SGD with interpolated momentum and iterate
averaging in place of a schedule. Matches the authors' `schedulefree.SGDScheduleFree`.
State: z, 4 bytes per fp32 parameter.

    d = g + weight_decay * y
    y = (1 - c) y + c z + lr (momentum (1 - c) - 1) d;   z = z - lr d
"""

from __future__ import annotations

from bench.optimizers.schedulefree_common import ScheduleFreeBase


def sf_sgd_kernel(y, g, z, *, lr: float, momentum: float, weight_decay: float, ckp1: float) -> None:
    d = g + weight_decay * y
    y.lerp_(z, ckp1)
    y.add_(d * (lr * (momentum * (1 - ckp1) - 1)))
    z.sub_(d * lr)


class ScheduleFreeSGD(ScheduleFreeBase):
    state_names = ("z",)
    ranges = {**ScheduleFreeBase.ranges, "momentum": "in (0, 1)"}  # momentum 0: y = z, no averaging
    kernel = staticmethod(sf_sgd_kernel)

    def __init__(self, params, lr: float = 1.0, momentum: float = 0.9, weight_decay: float = 0.0,
                 warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0, compile="auto"):
        self.validate(lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power), compile)

    def _beta(self, group: dict) -> float:
        return group["momentum"]

    def scalars(self, group: dict, step: int) -> dict:
        now = self._now[id(group)]
        return dict(lr=now["lr"], momentum=group["momentum"], weight_decay=group["weight_decay"], ckp1=now["ckp1"])
