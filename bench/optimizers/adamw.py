"""AdamW (Loshchilov & Hutter 2019) with an optional cautious mask: C-AdamW (Liang et al. 2024).

Plain AdamW runs on torch.optim.AdamW (fused) in bench; this file exists for the cautious variant,
and is written to match torch.optim.AdamW exactly when `cautious=False`, which the parity test
checks. State: first and second moments, 8 bytes per fp32 parameter.

    p = p * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
    u = m                          (cautious: u = m * 1[m * g > 0] * d / (nnz + 1))
    p = p - lr / (1 - beta1^t) * u / (sqrt(v) / sqrt(1 - beta2^t) + eps)

The mask compares m with g: the update m / denom has m's sign, so this is the paper's u * g > 0.
"""

from __future__ import annotations

import math

from bench.optimizers.elementwise import ElementwiseOptimizer, cautious


def adamw_kernel(p, g, m, v, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                 bias1: float, bias2_sqrt: float, cautious_mask: bool) -> None:
    p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.lerp_(g * g, 1 - beta2)
    u = cautious(m, g) if cautious_mask else m
    p.sub_(u / (v.sqrt() / bias2_sqrt + eps) * (lr / bias1))


class AdamW(ElementwiseOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")
    kernel = staticmethod(adamw_kernel)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, cautious: bool = False, compile="auto"):
        self.validate(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      cautious=cautious), compile)

    def scalars(self, group: dict, step: int) -> dict:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                    bias1=1 - beta1**step, bias2_sqrt=math.sqrt(1 - beta2**step),
                    cautious_mask=bool(group["cautious"]))
