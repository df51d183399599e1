"""Stochastic Polyak step size, SPS_max (Loizou et al. 2021, "Stochastic Polyak Step-size for SGD:
An Adaptive Learning Rate for Fast Convergence", eq. 5): SGD whose step is the Polyak step of the
minibatch loss, capped. It needs the optimal value f*, so only tasks that know theirs can run it
(the runner passes the task's `optimum`; capability `needs_optimum`). State: none.

    gamma = min(max(f_i(x) - f*, 0) / (c ||g||^2), gamma_b);   x = x - gamma g

gamma_b is `lr`, so an lr schedule scales the cap. The paper writes f_i* (each minibatch's own
minimum); bench uses the task's f*, the common stand-in (exact for interpolating models, where both
are 0). A minibatch loss below f* would make the step negative (ascent): it is clamped at 0,
as in SPS+ (Garrigos et al. 2023). The loss comes from the closure (`needs_closure`).
"""

from __future__ import annotations

import math

import torch

from bench.optimizers import evaluate_closure


class SPS(torch.optim.Optimizer):
    needs_closure = True
    needs_optimum = True

    def __init__(self, params, optimum: float, lr: float = 1.0, c: float = 0.5):
        if lr <= 0 or c <= 0 or not math.isfinite(float(optimum)):
            raise ValueError(f"invalid SPS hyperparameters: lr (gamma_b)={lr}, c={c}, optimum={optimum}")
        super().__init__(params, dict(lr=lr, c=c))
        self.optimum = float(optimum)
        self.last_step_size = 0.0  # the latest gamma, for inspection

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise RuntimeError("SPS needs step(closure): the Polyak step uses the loss")
        loss = evaluate_closure(closure)
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if not grads:
            return loss
        # one global norm over every parameter: the Polyak step is a property of the whole iterate
        grad_sq = float(torch.stack([torch.linalg.vector_norm(g).square() for g in grads]).sum())
        gap = max(float(global_mean(loss)) - self.optimum, 0.0)
        for group in self.param_groups:
            size = min(gap / (group["c"] * grad_sq), group["lr"]) if grad_sq > 0 else 0.0
            self.last_step_size = size
            params = [p for p in group["params"] if p.grad is not None]
            if params and size > 0:
                torch._foreach_add_(params, [p.grad for p in params], alpha=-size)
        return loss


def global_mean(loss: torch.Tensor) -> torch.Tensor:
    """The loss over the global batch. Under DDP each rank holds its shard's loss while the gradients
    are already averaged over ranks: without this, ranks would take different Polyak steps and
    their parameters would drift apart."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return loss
    total = loss.detach().clone()
    torch.distributed.all_reduce(total)
    return total / torch.distributed.get_world_size()


def tasks_with_optimum() -> list[str]:
    """Task yamls whose class sets `optimum` (f*): what an error for a task without one suggests.
    Read from the classes' constructors, so a new task with f* is listed without a table here."""
    import dis
    import inspect

    from bench.config import choices, option_defaults, resolve_target

    def sets_optimum(cls) -> bool:
        for klass in cls.__mro__:
            if vars(klass).get("optimum") is not None:
                return True
            init = vars(klass).get("__init__")
            if inspect.isfunction(init) and any(i.opname == "STORE_ATTR" and i.argval == "optimum"
                                        for i in dis.get_instructions(init)):
                return True
        return False

    names = []
    for name in choices("task"):
        try:
            cls = resolve_target(option_defaults("task", name), "task")
        except Exception:  # a task whose dependencies are missing cannot be suggested anyway
            continue
        if sets_optimum(cls):
            names.append(name)
    return names
