"""Lion: EvoLved Sign Momentum (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms",
Algorithm 2). State: one momentum buffer, 4 bytes per fp32 parameter.

    c = beta1 * m + (1 - beta1) * g           interpolation used only for the update direction
    p = p - lr * (sign(c) + weight_decay * p)  decoupled weight decay, scaled by lr as in the paper
    m = beta2 * m + (1 - beta2) * g           the momentum itself tracks with the slower beta2

`cautious=True` gives C-Lion (Liang et al. 2024): only coordinates where sign(c) agrees with g move.
"""

from __future__ import annotations

import torch

from bench.optimizers.elementwise import ElementwiseOptimizer, cautious


def lion_kernel(p: torch.Tensor, g: torch.Tensor, m: torch.Tensor, *, lr: float, beta1: float, beta2: float,
                weight_decay: float, cautious_mask: bool) -> None:
    update = torch.lerp(g, m, beta1).sign()  # beta1*m + (1-beta1)*g
    if cautious_mask:
        update = cautious(update, g)
    p.mul_(1 - lr * weight_decay).sub_(lr * update)
    m.lerp_(g, 1 - beta2)


class Lion(ElementwiseOptimizer):
    state_names = ("exp_avg",)
    kernel = staticmethod(lion_kernel)

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99),
                 weight_decay: float = 0.0, cautious: bool = False, compile="auto"):
        self.validate(lr=lr, betas=betas, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), weight_decay=weight_decay, cautious=cautious),
                         compile)

    def scalars(self, group: dict, step: int) -> dict:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                    cautious_mask=bool(group["cautious"]))
