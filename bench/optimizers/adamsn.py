"""Adam with Subset-Norm step sizes (Nguyen & Nguyen 2024, "Efficient Adaptive Optimization via
Subset-Norm and Subspace-Momentum", AdamSN): one second-moment entry per subset of k coordinates,
fed the subset's squared norm, so v costs d / k instead of d floats.

    m = beta1 m + (1 - beta1) g
    v_j = beta2 v_j + (1 - beta2) ||g_{S_j}||^2              S_j: the j-th run of k coordinates
    p_i = p_i - lr sqrt(1 - beta2^t) / (1 - beta1^t) * m_i / (sqrt(v_{j(i)}) + eps)

Matrices use subsets of k = the largest divisor of numel not above sqrt(numel) (the authors'
default); vectors keep one entry per coordinate (k = 1, plain Adam). State: 4 B/param for m plus
4/k for v. Weight decay is decoupled and applied first, as in AdamW.
"""

from __future__ import annotations

import math

import torch

from bench.optimizers.elementwise import ElementwiseOptimizer


def subset_size(numel: int, requested: int | None) -> int:
    """Largest divisor of numel that is <= requested (default sqrt(numel))."""
    k = max(1, min(numel, requested if requested else int(math.sqrt(numel))))
    while numel % k:
        k -= 1
    return k


def adamsn_kernel(p, g, m, v, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                  step_size: float) -> None:
    k = p.numel() // v.numel()  # v holds one entry per subset, so its size encodes k
    p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.lerp_(g.reshape(-1, k).square().sum(dim=1).view_as(v), 1 - beta2)
    update = m.reshape(-1, k) / (v.reshape(-1, 1).sqrt() + eps)
    p.sub_(step_size * update.view_as(p))


class AdamSN(ElementwiseOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")
    kernel = staticmethod(adamsn_kernel)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, subset_size: int | None = None, compile="auto"):
        self.validate(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      subset_size=subset_size), compile)

    dynamic = False  # subset sums over a symbolic k compile ~10x slower than eager; static is ~2x faster

    def init_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        # the parameter's own group; the defaults for the scratch tensors used to warm compilation up
        group = next((g for g in self.param_groups if any(q is p for q in g["params"])), self.defaults)
        k = subset_size(p.numel(), group["subset_size"]) if p.dim() > 1 else 1
        return {"exp_avg": torch.zeros_like(p), "exp_avg_sq": p.new_zeros(p.numel() // k)}

    def scalars(self, group: dict, step: int) -> dict:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                    step_size=group["lr"] * math.sqrt(1 - beta2**step) / (1 - beta1**step))
