"""LAMB (You et al. 2020, "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
Algorithm 2): Adam's direction, rescaled per tensor by a trust ratio ||p|| / ||r||.
State: 8 bytes per fp32 parameter.

    m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
    r = m / (1 - beta1^t) / (sqrt(v / (1 - beta2^t)) + eps) + weight_decay * p
    p = p - lr * ||p|| / ||r|| * r          (ratio 1 when either norm is zero; phi = identity)

pytorch-optimizer's Lamb differs from the paper (no bias correction of v, weight decay outside the
trust ratio, ||p|| clamped at 10), so the parity reference is a twin; see docs/OPTIMIZERS.md.
"""

from __future__ import annotations

import math

import torch

from bench.optimizers.elementwise import AdamStyle


def lamb_kernel(p, g, m, v, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                bias1: float, bias2_sqrt: float) -> None:
    m.lerp_(g, 1 - beta1)
    v.lerp_(g * g, 1 - beta2)
    r = (m / bias1) / (v.sqrt() / bias2_sqrt + eps) + weight_decay * p
    p_norm, r_norm = p.norm(), r.norm()
    trust = torch.where((p_norm > 0) & (r_norm > 0), p_norm / r_norm, torch.ones_like(p_norm))
    p.sub_(lr * trust * r)


class Lamb(AdamStyle):
    state_names = ("exp_avg", "exp_avg_sq")
    kernel = staticmethod(lamb_kernel)

    adam_defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01}

    def step_scalars(self, lr: float, beta1: float, beta2: float, step: int) -> dict:
        return dict(bias1=1 - beta1**step, bias2_sqrt=math.sqrt(1 - beta2**step))
