"""Schedule-Free AdamW (Defazio et al. 2024, Algorithm 1 with Adam preconditioning): no learning-rate
schedule, iterate averaging instead. Matches the authors' `schedulefree.AdamWScheduleFree`.
State: z and v, 8 bytes per fp32 parameter.

    v = beta2 v + (1 - beta2) g^2;  d = g / (sqrt(v / (1 - beta2^k)) + eps) + weight_decay * y
    y = (1 - c) y + c z + lr (beta1 (1 - c) - 1) d        (the parameter holds y; c = c_{k+1})
    z = z - lr d

Pair it with schedule=constant: the averaging replaces the decay a schedule would give.
"""

from __future__ import annotations

from bench.optimizers.schedulefree_common import ScheduleFreeBase


def sf_adamw_kernel(y, g, z, v, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                    ckp1: float, bias2: float) -> None:
    v.lerp_(g * g, 1 - beta2)
    d = g / ((v / bias2).sqrt() + eps) + weight_decay * y
    y.lerp_(z, ckp1)
    y.add_(d * (lr * (beta1 * (1 - ckp1) - 1)))
    z.sub_(d * lr)


class ScheduleFreeAdamW(ScheduleFreeBase):
    state_names = ("z", "exp_avg_sq")
    ranges = {**ScheduleFreeBase.ranges, "beta1": "in (0, 1)"}
    kernel = staticmethod(sf_adamw_kernel)

    def __init__(self, params, lr: float = 0.0025, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0, weight_lr_power: float = 2.0,
                 compile="auto"):
        # beta1 = 0 would make the gradient point y the average x itself: no interpolation left
        self.validate(lr=lr, betas=betas, beta1=betas[0], eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power), compile)

    def _beta(self, group: dict) -> float:
        return group["betas"][0]

    def scalars(self, group: dict, step: int) -> dict:
        now = self._now[id(group)]
        beta1, beta2 = group["betas"]
        return dict(lr=now["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                    ckp1=now["ckp1"], bias2=1 - beta2 ** now["k"])
