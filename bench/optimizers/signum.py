"""signSGD and Signum (Bernstein et al. 2018, "signSGD: Compressed Optimisation for Non-Convex
Problems", Algorithms 1 and 3): every coordinate moves by lr, in the sign of the gradient (signSGD)
or of its momentum (Signum). State: none, or the momentum: 0 or 4 bytes per fp32 parameter.

    m = beta m + (1 - beta) g          (Signum only; signSGD uses g)
    p = p * (1 - lr * weight_decay) - lr * sign(m)

Weight decay is decoupled (as in the studies that benchmark Signum on LLMs; the paper has none).
"""

from __future__ import annotations

from bench.optimizers.elementwise import ElementwiseOptimizer


def signsgd_kernel(p, g, *, lr: float, weight_decay: float) -> None:
    p.mul_(1 - lr * weight_decay).sub_(g.sign() * lr)


def signum_kernel(p, g, m, *, lr: float, weight_decay: float, momentum: float) -> None:
    m.lerp_(g, 1 - momentum)
    p.mul_(1 - lr * weight_decay).sub_(m.sign() * lr)


class SignSGD(ElementwiseOptimizer):
    kernel = staticmethod(signsgd_kernel)

    def __init__(self, params, lr: float = 1e-4, weight_decay: float = 0.0, compile="auto"):
        self.validate(lr=lr, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay), compile)

    def scalars(self, group: dict, step: int) -> dict:
        return dict(lr=group["lr"], weight_decay=group["weight_decay"])


class Signum(ElementwiseOptimizer):
    state_names = ("momentum_buffer",)
    ranges = {**ElementwiseOptimizer.ranges, "momentum": "in (0, 1)"}  # momentum 0 is SignSGD
    kernel = staticmethod(signum_kernel)

    def __init__(self, params, lr: float = 1e-4, momentum: float = 0.9, weight_decay: float = 0.0, compile="auto"):
        self.validate(lr=lr, momentum=momentum, weight_decay=weight_decay)
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay), compile)

    def scalars(self, group: dict, step: int) -> dict:
        return dict(lr=group["lr"], weight_decay=group["weight_decay"], momentum=group["momentum"])
