"""DoG, "Distance over Gradients" (Ivgi, Hinder & Carmon 2023, "DoG is SGD's Best Friend: A
Parameter-Free Dynamic Step Size Schedule", Eq. 1 and Alg. 1): SGD whose step size is the largest
distance travelled from the start divided by the root of the summed squared gradient norms.

    r_t   = max(r_eps, max_{i<=t} ||x_i - x_0||),     r_eps = reps_rel * (1 + ||x_0||)
    G_t   = sum_{i<=t} ||g_i||^2 (+ eps once, so the first step is finite)
    x_t+1 = x_t - lr * r_t / sqrt(G_t) * g_t          lr ("c" in the paper) stays 1

Norms run over the whole parameter group; L-DoG (ldog.py) takes them per tensor. Weight decay is
an L2 term added to g, as in the authors' package. State: x_0, 4 bytes per fp32 parameter; r_t and
G_t are 0-dim tensors kept in the group (no host sync per step).
"""

from __future__ import annotations

import torch

from bench.optimizers import evaluate_closure


class DoG(torch.optim.Optimizer):
    layerwise = False
    implementation = "foreach"

    def __init__(self, params, lr: float = 1.0, reps_rel: float = 1e-6, weight_decay: float = 0.0,
                 eps: float = 1e-8):
        if lr <= 0 or reps_rel <= 0 or eps < 0:
            raise ValueError(f"invalid DoG hyperparameters: lr={lr}, reps_rel={reps_rel}, eps={eps}")
        super().__init__(params, dict(lr=lr, reps_rel=reps_rel, weight_decay=weight_decay, eps=eps))

    def _norms(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        """Per-tensor norms for L-DoG, one group norm (broadcast to every tensor) for DoG."""
        norms = torch.stack(torch._foreach_norm(tensors))
        return norms if self.layerwise else norms.norm().expand(len(tensors))

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            if "x0" not in self.state[params[0]]:
                for p in params:
                    self.state[p]["x0"] = p.detach().clone()
                group["rbar"] = group["reps_rel"] * (1 + self._norms(params))
                group["G"] = self._norms(grads).square() + group["eps"]
            else:
                dist = self._norms(torch._foreach_sub(params, [self.state[p]["x0"] for p in params]))
                group["rbar"] = torch.maximum(group["rbar"], dist)
                group["G"] = group["G"] + self._norms(grads).square()
            eta = group["lr"] * group["rbar"] / group["G"].sqrt()
            for p, g, step in zip(params, grads, eta.unbind(), strict=True):
                p.sub_(step * g)
        return loss
