"""FAdam (Hwang 2024, "FAdam: Adam is a natural gradient optimizer using diagonal empirical Fisher
information", Algorithm 1). State: momentum and the Fisher diagonal, 8 bytes per fp32 parameter.

    b2 = beta2 (1 - beta2^(t-1)) / (1 - beta2^t)          bias correction folded into the decay
    F = b2 F + (1 - b2) g^2
    g' = g / (F^p + eps);  g' = g' / max(1, rms(g') / clip)     natural gradient, per-tensor clipped
    m = beta1 m + (1 - beta1) g'                                 momentum *after* preconditioning
    w' = p / (F^p + eps);  w' = w' / max(1, rms(w') / clip)      weight decay is preconditioned too
    p = p - lr (m + weight_decay w')

The rms is over one tensor, so the kernel holds two reductions. pytorch-optimizer (after the
authors' code) swaps eps for min(eps, eps_2 * rms(g))^(2p); we keep the paper's plain eps
(docs/OPTIMIZERS.md).
"""

from __future__ import annotations

import torch

from bench.optimizers.elementwise import ElementwiseOptimizer


def _clip_rms(x: torch.Tensor, clip: float) -> torch.Tensor:
    return x / torch.clamp(x.square().mean().sqrt() / clip, min=1.0)


def fadam_kernel(p, g, m, fim, *, lr: float, beta1: float, beta2_t: float, eps: float, weight_decay: float,
                 clip: float, power: float, square_root: bool) -> None:
    fim.lerp_(g * g, 1 - beta2_t)
    # pow with a tensor exponent is exp(log(x) * p): ~5x slower than sqrt for the default p = 1/2
    precond = (fim.sqrt() if square_root else fim.pow(power)) + eps
    m.lerp_(_clip_rms(g / precond, clip), 1 - beta1)
    decay = _clip_rms(p / precond, clip)
    p.sub_(lr * (m + weight_decay * decay))


class FAdam(ElementwiseOptimizer):
    state_names = ("momentum", "fim")
    ranges = {**ElementwiseOptimizer.ranges, "clip": "> 0", "p": "> 0"}
    kernel = staticmethod(fadam_kernel)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.1, clip: float = 1.0, p: float = 0.5, compile="auto"):
        self.validate(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, clip=clip, p=p)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, clip=clip,
                                      p=p), compile)

    def scalars(self, group: dict, step: int) -> dict:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2_t=beta2 * (1 - beta2 ** (step - 1)) / (1 - beta2**step),
                    eps=group["eps"], weight_decay=group["weight_decay"], clip=group["clip"], power=group["p"],
                    square_root=group["p"] == 0.5)
