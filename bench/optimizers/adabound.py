"""AdaBound (Luo et al. 2019, "Adaptive Gradient Methods with Dynamic Bound of Learning Rate",
Algorithm 2 and the authors' code): Adam whose per-coordinate step size is clipped into a band
that narrows from [0, inf) to the SGD step `final_lr`. State: m and v, 8 bytes per fp32 parameter.

    p = p * (1 - lr * weight_decay)                     decoupled decay (AdamW form, as everywhere here)
    m, v = Adam's moments
    eta = clip(lr * sqrt(1 - beta2^t) / (1 - beta1^t) / (sqrt(v) + eps), lower_t, upper_t)
    lower_t = final * (1 - 1 / (gamma t + 1)),  upper_t = final * (1 + 1 / (gamma t))
    p = p - eta * m

`final` is final_lr scaled by lr / initial lr, as in the authors' code, so an lr schedule moves the
band with it; the initial lr is kept in the param group (`base_lr`) so a resumed run keeps it.
"""

from __future__ import annotations

import math

import torch

from bench.optimizers.elementwise import ElementwiseOptimizer


def adabound_kernel(p, g, m, v, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                    step_size: float, lower: float, upper: float) -> None:
    p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.lerp_(g * g, 1 - beta2)
    eta = torch.clamp(step_size / (v.sqrt() + eps), min=lower, max=upper)
    p.sub_(eta * m)


class AdaBound(ElementwiseOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")
    ranges = {**ElementwiseOptimizer.ranges, "final_lr": "> 0", "gamma": "> 0"}
    kernel = staticmethod(adabound_kernel)

    def __init__(self, params, lr: float = 1e-3, final_lr: float = 0.1, betas: tuple[float, float] = (0.9, 0.999),
                 gamma: float = 1e-3, eps: float = 1e-8, weight_decay: float = 0.0, compile="auto"):
        self.validate(lr=lr, final_lr=final_lr, betas=betas, gamma=gamma, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, final_lr=final_lr, betas=tuple(betas), gamma=gamma, eps=eps,
                                      weight_decay=weight_decay, base_lr=None), compile)
        for group in self.param_groups:  # each group's own initial lr (groups may set their own)
            if group["base_lr"] is None:
                group["base_lr"] = group["lr"]

    def scalars(self, group: dict, step: int) -> dict:
        beta1, beta2 = group["betas"]
        final = group["final_lr"] * group["lr"] / (group["base_lr"] or group["lr"])
        gamma_t = group["gamma"] * step
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                    step_size=group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step),
                    lower=final * (1 - 1 / (gamma_t + 1)), upper=final * (1 + 1 / gamma_t))
