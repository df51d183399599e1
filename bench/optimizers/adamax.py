"""AdaMax (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization", Sec. 7.1, Algorithm 2):
Adam with the infinity norm in place of the second moment. State: m and u, 8 bytes per fp32
parameter. Written to match torch.optim.Adamax exactly (its eps guard, coupled L2 decay), which
the parity test checks; ours because one compiled pass is several times faster than torch's foreach step
on CPU (docs/OPTIMIZERS.md, Speed).

    g = g + weight_decay * p          (L2, as torch; the paper has no decay)
    m = beta1 m + (1 - beta1) g;  u = max(beta2 u, |g| + eps)
    p = p - lr / (1 - beta1^t) * m / u
"""

from __future__ import annotations

import torch

from bench.optimizers.elementwise import AdamStyle


def adamax_kernel(p, g, m, u, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                  step_size: float) -> None:
    g = g + p * weight_decay
    m.lerp_(g, 1 - beta1)
    u.copy_(torch.maximum(u * beta2, g.abs() + eps))
    p.sub_(m / u * step_size)


class Adamax(AdamStyle):
    state_names = ("exp_avg", "exp_inf")
    kernel = staticmethod(adamax_kernel)

    adam_defaults = {"lr": 2e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}

    def step_scalars(self, lr: float, beta1: float, beta2: float, step: int) -> dict:
        return dict(step_size=lr / (1 - beta1**step))
