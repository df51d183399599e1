"""EXAdam (Adly 2024, "EXAdam: The Power of Adaptive Cross-Moments", arXiv:2412.20302v2, Alg. 1):
Adam with cross-moment debiasing and a gradient acceleration term. State: 8 bytes per fp32 parameter.

    d1 = 1 + v / (v + eps) * beta2^t          second moment informs the first's correction
    d2 = 1 + m^2 / (m^2 + eps) * beta1^t      and the first informs the second's
    m~ = m / (1 - beta1^t) * d1;   v~ = v / (1 - beta2^t) * d2;   g~ = g / (1 - beta1^t) * d1
    p = p - lr * (m~ + g~) / (sqrt(v~) + eps)

Version 1 of the paper also grew the step size as lr * ln(sqrt(2 (t + 1))); v2 dropped it, and so
do we (and pytorch-optimizer). Weight decay (not in the paper) is decoupled, applied first.
"""

from __future__ import annotations

from bench.optimizers.elementwise import AdamStyle


def exadam_kernel(p, g, m, v, *, lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
                  beta1_t: float, beta2_t: float) -> None:
    p.mul_(1 - lr * weight_decay)
    m.lerp_(g, 1 - beta1)
    v.lerp_(g * g, 1 - beta2)
    d1 = 1 + v / (v + eps) * beta2_t
    m_sq = m * m
    d2 = 1 + m_sq / (m_sq + eps) * beta1_t
    numerator = (m + g) * d1 / (1 - beta1_t)
    denominator = (v / (1 - beta2_t) * d2).sqrt() + eps
    p.sub_(lr * numerator / denominator)


class EXAdam(AdamStyle):
    state_names = ("exp_avg", "exp_avg_sq")
    kernel = staticmethod(exadam_kernel)

    def step_scalars(self, lr: float, beta1: float, beta2: float, step: int) -> dict:
        return dict(beta1_t=beta1**step, beta2_t=beta2**step)
