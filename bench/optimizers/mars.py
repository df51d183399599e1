"""MARS (Yuan et al. 2024, "MARS: Unleashing the Power of Variance Reduction for Training Large
Models", Algorithm 2, MARS-AdamW with the approximate correction of the authors' code): AdamW on a
variance-reduced gradient. Matrices (dim >= 2) take MARS; vectors and scalars take plain AdamW with
their own lr, betas and weight decay (the authors' `optimize_1d=False`). State: m, v and the previous
gradient, 12 bytes per fp32 parameter (vectors keep the unused previous gradient too).

    c = g + gamma * beta1 / (1 - beta1) * (g - g_prev);  c = c / max(1, ||c||)     (per tensor)
    m = beta1 m + (1 - beta1) c;  v = beta2 v + (1 - beta2) c^2
    p = p * (1 - lr * weight_decay) - lr * m / (1 - beta1^t) / (sqrt(v / (1 - beta2^t)) + eps)

g_prev starts at zero, as in the authors' code. lr_1d is scaled with lr by a schedule (lr_1d / the
initial lr, kept in the param group as `base_lr`).
"""

from __future__ import annotations

import math

import torch

from bench.optimizers.elementwise import ElementwiseOptimizer


def mars_kernel(p, g, m, v, g_prev, *, matrix: bool, lr: float, beta1: float, beta2: float, weight_decay: float,
                bias1: float, bias2_sqrt: float, lr_1d: float, beta1_1d: float, beta2_1d: float,
                weight_decay_1d: float, bias1_1d: float, bias2_sqrt_1d: float, scale: float, eps: float) -> None:
    if matrix:
        c = g + (g - g_prev) * scale
        c = c / torch.clamp(torch.linalg.vector_norm(c), min=1.0)  # a reduction: norm first, then one pass
    else:  # Python bool, specialised at compile time: vectors are plain AdamW
        c, lr, beta1, beta2, weight_decay, bias1, bias2_sqrt = (
            g, lr_1d, beta1_1d, beta2_1d, weight_decay_1d, bias1_1d, bias2_sqrt_1d)
    m.lerp_(c, 1 - beta1)
    v.lerp_(c * c, 1 - beta2)
    p.mul_(1 - lr * weight_decay).sub_(m / (v.sqrt() / bias2_sqrt + eps) * (lr / bias1))
    g_prev.copy_(g)


class MARS(ElementwiseOptimizer):
    state_names = ("exp_avg", "exp_avg_sq", "last_grad")
    ranges = {**ElementwiseOptimizer.ranges, "gamma": ">= 0", "lr_1d": "> 0", "betas_1d": "in [0, 1)",
              "weight_decay_1d": ">= 0"}
    kernel = staticmethod(mars_kernel)

    def __init__(self, params, lr: float = 3e-3, betas: tuple[float, float] = (0.95, 0.99), gamma: float = 0.025,
                 eps: float = 1e-8, weight_decay: float = 0.0, lr_1d: float = 3e-3,
                 betas_1d: tuple[float, float] = (0.9, 0.95), weight_decay_1d: float = 0.1, compile="auto"):
        self.validate(lr=lr, betas=betas, gamma=gamma, eps=eps, weight_decay=weight_decay, lr_1d=lr_1d,
                      betas_1d=betas_1d, weight_decay_1d=weight_decay_1d)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), gamma=gamma, eps=eps, weight_decay=weight_decay,
                                      lr_1d=lr_1d, betas_1d=tuple(betas_1d), weight_decay_1d=weight_decay_1d,
                                      base_lr=None), compile)
        for group in self.param_groups:  # each group's own initial lr (groups may set their own)
            if group["base_lr"] is None:
                group["base_lr"] = group["lr"]

    def tensor_scalars(self, p: torch.Tensor) -> dict:
        return {"matrix": p.dim() >= 2}

    def scalars(self, group: dict, step: int) -> dict:
        (beta1, beta2), (b1_1d, b2_1d) = group["betas"], group["betas_1d"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                    bias1=1 - beta1**step, bias2_sqrt=math.sqrt(1 - beta2**step),
                    lr_1d=group["lr_1d"] * group["lr"] / (group["base_lr"] or group["lr"]),
                    beta1_1d=b1_1d, beta2_1d=b2_1d, weight_decay_1d=group["weight_decay_1d"],
                    bias1_1d=1 - b1_1d**step, bias2_sqrt_1d=math.sqrt(1 - b2_1d**step),
                    scale=group["gamma"] * beta1 / (1 - beta1), eps=group["eps"])
