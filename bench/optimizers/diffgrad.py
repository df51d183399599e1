"""diffGrad (Dubey et al. 2019, "diffGrad: An Optimization Method for Convolutional Neural Networks"):
Adam whose step is damped by a friction coefficient from the change in gradient.
State: m, v and the previous gradient: 12 bytes per fp32 parameter.

    xi = sigmoid(|g_prev - g|)       ~1/2 where the gradient barely moves (near an optimum), ~1 elsewhere
    p = p - lr * sqrt(1 - beta2^t) / (1 - beta1^t) * xi * m / (sqrt(v) + eps)

The bias corrections are folded into the step size and eps is added to the raw sqrt(v), as in the
authors' code (the old torch.optim.Adam form); g_prev starts at zero. Weight decay is decoupled.
"""

from __future__ import annotations

import math

import torch

from bench.optimizers.elementwise import AdamStyle


def diffgrad_kernel(p, g, m, v, g_prev, *, lr: float, beta1: float, beta2: float, eps: float,
                    weight_decay: float, step_size: float) -> None:
    p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.lerp_(g * g, 1 - beta2)
    # xi * m / (sqrt(v) + eps) with xi = 1 / (1 + exp(-|g_prev - g|)), as one division: the compiled
    # step is limited by division throughput, and sigmoid would be a second one per element
    p.sub_(m / ((1 + torch.exp(-(g_prev - g).abs())) * (v.sqrt() + eps)) * step_size)
    g_prev.copy_(g)


class DiffGrad(AdamStyle):
    state_names = ("exp_avg", "exp_avg_sq", "previous_grad")
    kernel = staticmethod(diffgrad_kernel)

    def step_scalars(self, lr: float, beta1: float, beta2: float, step: int) -> dict:
        return dict(step_size=lr * math.sqrt(1 - beta2**step) / (1 - beta1**step))
