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


def fadam_kernel(p, g, m, fim, *, lr: float, beta1: float, beta2_t: float, eps: float, weight_decay: float,
                 clip: float, power: float, square_root: bool) -> None:
    def precond_of(f):  # pow with a tensor exponent is exp(log(x) * p): ~5x slower than sqrt for p = 1/2
        return (f.sqrt() if square_root else f.pow(power)) + eps

    # The two mean squares are written from the old F and g alone, sharing nothing with the update:
    # compiled, both sums then come from one reading pass (g, F, p) and the update from a second
    # (40 bytes per parameter). Written from g' and w' themselves, the compiler stored g' and w' in
    # two temporary tensors between the passes (56 bytes, 0.3-0.6 of copy bandwidth). Dividing is
    # the costly part once memory is streamed: one reciprocal per pass, then multiplications.
    w = 1 - beta2_t
    r_sq = precond_of(torch.lerp(fim, g * g, w)).reciprocal().square()
    g_ms = (g * g * r_sq).mean()
    p_ms = (p * p * r_sq).mean()
    fim.lerp_(g * g, w)
    r = precond_of(fim).reciprocal()
    g_scale = torch.clamp(g_ms.sqrt() / clip, min=1.0).reciprocal()  # RMS clipping: 1 / max(1, rms / clip)
    p_scale = torch.clamp(p_ms.sqrt() / clip, min=1.0).reciprocal()
    m.lerp_(g * r * g_scale, 1 - beta1)
    p.sub_(lr * (m + weight_decay * (p * r * p_scale)))


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
