"""AdEMAMix (Pagliardini, Ablin & Grangier 2024, "The AdEMAMix Optimizer: Better, Faster, Older",
Algorithm 1): Adam whose numerator mixes a fast EMA m1 with a slow EMA m2 (beta3 ~ 0.9999).
State: m1, m2, v: 12 bytes per fp32 parameter.

    m1 = beta1 m1 + (1 - beta1) g;  m2 = beta3(t) m2 + (1 - beta3(t)) g;  v = beta2 v + (1 - beta2) g^2
    p = p - lr * ((m1 / (1 - beta1^t) + alpha(t) m2) / (sqrt(v / (1 - beta2^t)) + eps) + weight_decay p)

The slow EMA is only useful once it has seen many gradients, and a large alpha early on diverges,
so the paper warms both up (Sec. 3, "schedulers"):
    alpha(t) = min(t * alpha / T_alpha, alpha)
    beta3(t) = min(exp(ln(beta1) ln(beta3) / ((1 - t/T_b3) ln(beta3) + (t/T_b3) ln(beta1))), beta3)
beta3(t) interpolates the EMA half-life linearly from beta1's to beta3's. The paper sets
T_alpha = T_b3 = total steps; `alpha_warmup`/`beta3_warmup` = null switch a scheduler off.
"""

from __future__ import annotations

import math

from bench.optimizers.elementwise import ElementwiseOptimizer, cautious


def alpha_schedule(step: int, alpha: float, warmup: int | None) -> float:
    return alpha if not warmup else min(step * alpha / warmup, alpha)


def beta3_schedule(step: int, beta1: float, beta3: float, warmup: int | None) -> float:
    if not warmup:
        return beta3
    frac = step / warmup
    log1, log3 = math.log(beta1), math.log(beta3)
    return min(math.exp(log1 * log3 / ((1 - frac) * log3 + frac * log1)), beta3)


def ademamix_kernel(p, g, m1, m2, v, *, lr: float, beta1: float, beta2: float, beta3: float, alpha: float,
                    eps: float, weight_decay: float, bias1: float, bias2_sqrt: float, cautious_mask: bool) -> None:
    p.mul_(1 - lr * weight_decay)
    m1.lerp_(g, 1 - beta1)
    m2.lerp_(g, 1 - beta3)
    v.lerp_(g * g, 1 - beta2)
    fast = cautious(m1, g) if cautious_mask else m1
    p.sub_((fast / bias1 + alpha * m2) / (v.sqrt() / bias2_sqrt + eps) * lr)


class AdEMAMix(ElementwiseOptimizer):
    state_names = ("exp_avg", "exp_avg_slow", "exp_avg_sq")
    kernel = staticmethod(ademamix_kernel)

    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
                 alpha: float = 5.0, alpha_warmup: int | None = None, beta3_warmup: int | None = None,
                 eps: float = 1e-8, weight_decay: float = 0.0, cautious: bool = False, compile="auto"):
        if len(betas) != 3:
            raise ValueError(f"AdEMAMix takes three betas (fast EMA, second moment, slow EMA), got {betas}")
        self.validate(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), alpha=alpha, alpha_warmup=alpha_warmup,
                                      beta3_warmup=beta3_warmup, eps=eps, weight_decay=weight_decay,
                                      cautious=cautious), compile)

    def scalars(self, group: dict, step: int) -> dict:
        beta1, beta2, beta3 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2,
                    beta3=beta3_schedule(step, beta1, beta3, group["beta3_warmup"]),
                    alpha=alpha_schedule(step, group["alpha"], group["alpha_warmup"]),
                    eps=group["eps"], weight_decay=group["weight_decay"], bias1=1 - beta1**step,
                    bias2_sqrt=math.sqrt(1 - beta2**step), cautious_mask=bool(group["cautious"]))
