"""RMSprop (Tieleman & Hinton 2012, Lecture 6.5) in torch.optim.RMSprop's form, as one element-wise
kernel: torch has no fused CPU RMSprop, and its foreach path makes one pass over memory per
operation (0.57-0.66 of copy bandwidth on CPU); compiled, the step is a single pass.
State: the running mean of g^2 (4 bytes per fp32 parameter), plus a momentum buffer when
momentum > 0 and a running mean of g when centered (4 bytes each).

    g = g + weight_decay * p                    L2 decay, coupled, as in torch
    v = alpha * v + (1 - alpha) * g^2
    d = sqrt(v) + eps                           centered: d = sqrt(v - a^2) + eps, a = alpha a + (1 - alpha) g
    p = p - lr * g / d                          momentum: b = momentum * b + g / d;  p = p - lr * b

The parity test checks it against torch.optim.RMSprop with every option switched on.
"""

from __future__ import annotations

from bench.optimizers.elementwise import ElementwiseOptimizer


def rmsprop_kernel(p, g, v, *extra, lr: float, alpha: float, eps: float, weight_decay: float, momentum: float,
                   decay: bool, centered: bool, heavy_ball: bool) -> None:
    if decay:
        g = g + weight_decay * p
    v.lerp_(g * g, 1 - alpha)
    if centered:
        a = extra[0]
        a.lerp_(g, 1 - alpha)
        denom = (v - a * a).sqrt() + eps
    else:
        denom = v.sqrt() + eps
    if heavy_ball:
        b = extra[-1]
        b.mul_(momentum).add_(g / denom)
        p.sub_(lr * b)
    else:
        p.sub_(lr * g / denom)


class RMSprop(ElementwiseOptimizer):
    kernel = staticmethod(rmsprop_kernel)
    ranges = {**ElementwiseOptimizer.ranges, "alpha": "in [0, 1)"}

    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8, weight_decay: float = 0.0,
                 momentum: float = 0.0, centered: bool = False, compile="auto"):
        self.validate(lr=lr, eps=eps, weight_decay=weight_decay, momentum=momentum, alpha=alpha)
        # The kernel's state arguments are fixed per optimizer, so every group shares these two choices
        self.state_names = ("square_avg",) + (("grad_avg",) if centered else ()) + \
            (("momentum_buffer",) if momentum > 0 else ())
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                                      centered=bool(centered)), compile)
        for group in self.param_groups:
            if bool(group["centered"]) != bool(centered) or (group["momentum"] > 0) != (momentum > 0):
                raise ValueError("RMSprop: every param group must agree with the constructor on centered and on "
                                 "whether momentum is on")

    def scalars(self, group: dict, step: int) -> dict:
        return dict(lr=group["lr"], alpha=group["alpha"], eps=group["eps"], weight_decay=group["weight_decay"],
                    momentum=group["momentum"], decay=group["weight_decay"] != 0, centered=bool(group["centered"]),
                    heavy_ball=group["momentum"] > 0)
