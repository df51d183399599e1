"""ADOPT (Taniguchi et al. 2024, "ADOPT: Modified Adam Can Converge with Any beta2 with the Optimal
Rate", Algorithm 2 with the clipping of its Sec. 4 and the authors' code): normalise the gradient by
the second moment of the *previous* steps, then take momentum of the normalised gradient.
State: m and v, 8 bytes per fp32 parameter.

    t = 1:  v = g^2 (no step)
    t > 1:  p = p * (1 - lr * weight_decay)
            m = beta1 m + (1 - beta1) clip(g / max(sqrt(v), eps), t^(1/4))
            p = p - lr * m
            v = beta2 v + (1 - beta2) g^2

Weight decay is decoupled (the authors' `decouple=True`, what the LLM studies ran). The first step
runs the same kernel with weights that leave p and m unchanged (one compiled graph for all steps).
"""

from __future__ import annotations

from bench.optimizers.elementwise import ElementwiseOptimizer


def adopt_kernel(p, g, m, v, *, lr: float, decay: float, m_weight: float, v_keep: float, v_weight: float,
                 eps: float, clip: float) -> None:
    p.mul_(1 - decay)
    normed = (g / v.sqrt().clamp(min=eps)).clamp(min=-clip, max=clip)
    m.lerp_(normed, m_weight)
    p.sub_(m * lr)
    v.mul_(v_keep).add_(g * g * v_weight)


class ADOPT(ElementwiseOptimizer):
    state_names = ("exp_avg", "exp_avg_sq")
    ranges = {**ElementwiseOptimizer.ranges, "eps": "> 0"}  # eps also floors v's square root: it must be positive
    kernel = staticmethod(adopt_kernel)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.9999), eps: float = 1e-6,
                 weight_decay: float = 0.0, clip_exponent: float = 0.25, compile="auto"):
        self.validate(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      clip_exponent=clip_exponent), compile)

    def scalars(self, group: dict, step: int) -> dict:
        beta1, beta2 = group["betas"]
        first = step == 1
        # the first step only fills v; the authors' code applies the decoupled decay there too
        return dict(lr=0.0 if first else group["lr"], decay=group["lr"] * group["weight_decay"],
                    m_weight=0.0 if first else 1 - beta1, v_keep=0.0 if first else beta2,
                    v_weight=1.0 if first else 1 - beta2, eps=group["eps"],
                    clip=float(step) ** group["clip_exponent"])
