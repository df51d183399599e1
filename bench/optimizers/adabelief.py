"""AdaBelief (Zhuang et al. 2020, "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed
Gradients", Algorithm 2): Adam whose second moment tracks the gradient's deviation from its
prediction m, not the gradient itself. State: m and s, 8 bytes per fp32 parameter.

    p = p * (1 - lr * weight_decay)                     decoupled decay (the authors' default)
    m = beta1 * m + (1 - beta1) * g
    s = beta2 * s + (1 - beta2) * (g - m)^2 + eps       eps inside s too, as in Alg. 2
    p = p - lr / (1 - beta1^t) * m / (sqrt(s / (1 - beta2^t)) + eps)

Ours rather than pytorch-optimizer's because one compiled pass per tensor is faster than its
foreach chain; the parity test checks the two agree. No rectification (the paper's default).
"""

from __future__ import annotations

import math

from bench.optimizers.elementwise import AdamStyle


def adabelief_kernel(p, g, m, s, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                     bias1: float, bias2_sqrt: float) -> None:
    p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    d = g - m
    s.lerp_(d * d, 1 - beta2).add_(eps)
    p.sub_(m / (s.sqrt() / bias2_sqrt + eps) * (lr / bias1))


class AdaBelief(AdamStyle):
    state_names = ("exp_avg", "exp_avg_var")
    kernel = staticmethod(adabelief_kernel)

    adam_defaults = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-16, "weight_decay": 0.0}

    def step_scalars(self, lr: float, beta1: float, beta2: float, step: int) -> dict:
        return dict(bias1=1 - beta1**step, bias2_sqrt=math.sqrt(1 - beta2**step))
