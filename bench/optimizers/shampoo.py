"""Shampoo (Gupta, Koren & Singer 2018, "Shampoo: Preconditioned Stochastic Tensor Optimization",
Algorithm 2 for order-k tensors; Algorithm 1 is its k = 2 case):

    for each mode i of G (k = G.dim()):  H_i = H_i + G_(i) G_(i)^T        H_i starts at eps * I
    G~ = G x_1 H_1^(-1/2k) x_2 ... x_k H_k^(-1/2k)                         mode-wise preconditioning
    W  = W - lr G~

so a matrix gets L^(-1/4) G R^(-1/4) and a vector full-matrix AdaGrad H^(-1/2) g. Weight decay is an
L2 term added to G before the statistics (the paper has none). Roots come from an
eigendecomposition, recomputed every `precondition_frequency` steps (1 = the paper). A mode longer
than `max_precond_dim` is left unpreconditioned: its statistic would cost dim^2 memory and dim^3
time. State: H_i and its root per mode, 8 * sum(d_i^2) bytes per fp32 tensor.
"""

from __future__ import annotations

import torch

from bench.optimizers import evaluate_closure


def matrix_power(h: torch.Tensor, exponent: float, floor: float) -> torch.Tensor:
    """h^exponent for a symmetric h >= floor * I, computed in float64: in float32 a statistic's
    condition number (|g|^2 / eps, easily 1e8) exceeds the precision, the small eigenvalues come out
    as noise, and their negative powers blow the step up. Eigenvalues are floored at `floor` (the
    statistic's exact lower bound) for the same reason."""
    eigenvalues, vectors = torch.linalg.eigh(h.double())
    root = (vectors * eigenvalues.clamp_min(floor).pow(exponent)) @ vectors.T
    return root.to(h.dtype)


def mode_product(g: torch.Tensor, m: torch.Tensor, mode: int) -> torch.Tensor:
    """g x_mode m: contract the mode-th index of g with m's columns (m symmetric here)."""
    return torch.tensordot(g, m, dims=([mode], [0])).movedim(-1, mode)


class Shampoo(torch.optim.Optimizer):
    implementation = "loop"

    def __init__(self, params, lr: float = 1e-3, eps: float = 1e-6, weight_decay: float = 0.0,
                 precondition_frequency: int = 1, max_precond_dim: int = 2048):
        if lr <= 0 or eps <= 0 or precondition_frequency < 1:
            raise ValueError(f"invalid Shampoo hyperparameters: lr={lr}, eps={eps}, "
                             f"precondition_frequency={precondition_frequency}")
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay,
                                      precondition_frequency=precondition_frequency,
                                      max_precond_dim=max_precond_dim))

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad if p.dim() > 0 else p.grad.view(1)
                if group["weight_decay"]:
                    g = g.add(p.view_as(g), alpha=group["weight_decay"])
                state = self.state[p]
                modes = [i for i, d in enumerate(g.shape) if d <= group["max_precond_dim"]]
                if not state:
                    state["step"] = 0
                    for i in modes:
                        eye = torch.eye(g.shape[i], dtype=g.dtype, device=g.device)
                        state[f"stat_{i}"] = group["eps"] * eye
                        state[f"root_{i}"] = torch.zeros_like(eye)
                state["step"] += 1
                refresh = (state["step"] - 1) % group["precondition_frequency"] == 0
                direction = g
                for i in modes:
                    unfolded = g.movedim(i, 0).reshape(g.shape[i], -1)
                    state[f"stat_{i}"].addmm_(unfolded, unfolded.T)
                    if refresh:
                        state[f"root_{i}"] = matrix_power(state[f"stat_{i}"], -1.0 / (2 * g.dim()), group["eps"])
                    direction = mode_product(direction, state[f"root_{i}"], i)
                p.sub_(direction.view_as(p), alpha=group["lr"])
        return loss
