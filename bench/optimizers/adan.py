"""Adan (Xie et al. 2022, "Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep
Models", Algorithm 1, in the authors' code's beta convention): Nesterov momentum estimated from
the gradient difference. State: m, the averaged difference n, v and the previous gradient,
16 bytes per fp32 parameter.

    d = g - g_prev                       (0 at the first step)
    m = beta1 m + (1 - beta1) g;  n = beta2 n + (1 - beta2) d
    u = g + beta2 d;  v = beta3 v + (1 - beta3) u^2
    p = (p - lr (m / (1 - beta1^t) + beta2 n / (1 - beta2^t)) / (sqrt(v / (1 - beta3^t)) + eps))
        / (1 + lr * weight_decay)        the paper's proximal weight decay

The authors' betas (0.98, 0.92, 0.99) are one minus the paper's (0.02, 0.08, 0.01).
"""

from __future__ import annotations

import math

from bench.optimizers.elementwise import ElementwiseOptimizer


def adan_kernel(p, g, m, n, v, g_prev, *, lr: float, beta1: float, beta2: float, beta3: float, eps: float,
                weight_decay: float, bias1: float, bias2: float, bias3_sqrt: float, has_prev: float) -> None:
    d = (g - g_prev) * has_prev  # a float flag, not a branch: one compiled graph serves every step
    m.lerp_(g, 1 - beta1)
    n.lerp_(d, 1 - beta2)
    u = g + beta2 * d
    v.lerp_(u * u, 1 - beta3)
    step = (m / bias1 + beta2 * n / bias2) / (v.sqrt() / bias3_sqrt + eps)
    p.sub_(step * lr).div_(1 + lr * weight_decay)
    g_prev.copy_(g)


class Adan(ElementwiseOptimizer):
    state_names = ("exp_avg", "exp_avg_diff", "exp_avg_sq", "previous_grad")
    kernel = staticmethod(adan_kernel)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float, float] = (0.98, 0.92, 0.99),
                 eps: float = 1e-8, weight_decay: float = 0.0, compile="auto"):
        self.validate(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        if len(betas) != 3:  # a length is no range rule
            raise ValueError(f"invalid Adan hyperparameters: betas={tuple(betas)} (must be three: beta1, beta2, beta3)")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay), compile)

    def scalars(self, group: dict, step: int) -> dict:
        beta1, beta2, beta3 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, beta3=beta3, eps=group["eps"],
                    weight_decay=group["weight_decay"], bias1=1 - beta1**step, bias2=1 - beta2**step,
                    bias3_sqrt=math.sqrt(1 - beta3**step), has_prev=0.0 if step == 1 else 1.0)
