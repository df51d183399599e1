"""RAdam (Liu et al. 2020, "On the Variance of the Adaptive Learning Rate and Beyond", Algorithm 2):
Adam whose adaptive step is switched on only once the variance of 1/sqrt(v) is tractable
(rho_t > 5), and then scaled by the rectification term r_t; before that, momentum SGD.
State: m and v, 8 bytes per fp32 parameter. Written to match torch.optim.RAdam with
decoupled_weight_decay=True exactly (the parity test checks); ours because one compiled pass is
several times faster than torch's foreach step on CPU (docs/OPTIMIZERS.md, Speed).

    p = p * (1 - lr * weight_decay)
    m, v = Adam's moments;  rho_inf = 2 / (1 - beta2) - 1;  rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
    rho_t > 5:  p = p - lr / (1 - beta1^t) * m * r_t * sqrt(1 - beta2^t) / (sqrt(v) + eps)
    otherwise:  p = p - lr / (1 - beta1^t) * m
    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
"""

from __future__ import annotations

import math

import torch

from bench.optimizers.elementwise import AdamStyle


def radam_kernel(p, g, m, v, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                 step_size: float, rect_scale: float, adaptive: float) -> None:
    p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.lerp_(g * g, 1 - beta2)
    # a float flag selects the phase, so one compiled graph serves every step
    # (a where, not a product: with eps = 0 a zero v would give 0 * inf in the unused branch)
    on = torch.as_tensor(adaptive > 0, device=v.device)  # a 0-dim tensor when compiled, a bool in the eager loop
    scale = torch.where(on, rect_scale / (v.sqrt() + eps), torch.ones_like(v))
    p.sub_(m * scale * step_size)


class RAdam(AdamStyle):
    state_names = ("exp_avg", "exp_avg_sq")
    kernel = staticmethod(radam_kernel)

    def step_scalars(self, lr: float, beta1: float, beta2: float, step: int) -> dict:
        bias2 = 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * beta2**step / bias2
        adaptive = rho_t > 5
        rect = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) if adaptive \
            else 0.0
        return dict(step_size=lr / (1 - beta1**step), rect_scale=rect * math.sqrt(bias2),
                    adaptive=1.0 if adaptive else 0.0)
