"""NAdamW: Adam with Nesterov momentum (Dozat 2016) and decoupled weight decay, in the form the
AlgoPerf baseline and "A Large Batch Optimizer Reality Check" (Nado et al. 2021) use.
State: 8 bytes per fp32 parameter.

    p = p * (1 - lr * weight_decay)
    m = beta1 * m + (1 - beta1) * g;  v = beta2 * v + (1 - beta2) * g^2
    n = beta1 * m + (1 - beta1) * g                      Nesterov: look one momentum step ahead
    p = p - lr / (1 - beta1^t) * n / (sqrt(v) / sqrt(1 - beta2^t) + eps)

torch.optim.NAdam is a different algorithm (Dozat's momentum-decay schedule mu_t with psi=0.004),
so it is not used here; see docs/OPTIMIZERS.md.
"""

from __future__ import annotations

import torch

from bench.optimizers.adamw import AdamW
from bench.optimizers.elementwise import cautious


def nadamw_kernel(p, g, m, v, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                  bias1: float, bias2_sqrt: float, cautious_mask: bool) -> None:
    p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.lerp_(g * g, 1 - beta2)
    n = torch.lerp(g, m, beta1)
    if cautious_mask:
        n = cautious(n, g)
    p.sub_(n / (v.sqrt() / bias2_sqrt + eps) * (lr / bias1))


class NAdamW(AdamW):
    """AdamW's state, hyperparameters and validation with the Nesterov kernel; no weight decay
    by default, as in the AlgoPerf baseline."""

    kernel = staticmethod(nadamw_kernel)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, cautious: bool = False, compile="auto"):
        super().__init__(params, lr, betas, eps, weight_decay, cautious, compile)
