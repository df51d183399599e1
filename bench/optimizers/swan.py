"""SWAN (Ma, Gong, Scetbon & Meeds 2024, "SWAN: SGD with Normalization and Whitening Enables
Stateless LLM Training"): plain SGD on a gradient that is standardised row-wise and then whitened.
No state for the matrices; other parameters go to AdamW (see partition.py), as in the paper.

    G~ = (G - mean_row(G)) / (std_row(G) + eps)          GradNorm: each row over the n inputs
    W  = (G~ G~^T)^(-1/2) G~                             GradWhitening, i.e. the polar factor U V^T
    W  = W * ||G~||_F / ||W||_F                           keep GradNorm's scale (about 1 per entry)
    p  = p - lr (W + weight_decay p)

The polar factor comes from the cubic Newton-Schulz iteration X <- (3 X - X X^T X) / 2 on
X0 = G~ / ||G~||_F, which sends every singular value in (0, 1] to 1 and needs only matmuls. It works
on G~ itself rather than on A = G~ G~^T: forming A squares the condition number, and gradient-like
1024x1024 layers have cond(A) ~ 1e10, beyond float32, where an A^(-1/2) iteration stalls at ~2% error.
A singular value s grows by 1.5x per step while small, so the steps needed grow with
log(||G~||_F / s_min); rather than a fixed count the loop stops once the residual
||P - X X^T||_F / sqrt(rank) on the smaller gram (P the projector the polar factor must reach) is
below `ns_tol`, then takes one more step (convergence is quadratic there), or when the residual
stops falling (the rounding floor: on a rank-deficient gradient, the point past which rounding noise
in its null space would grow into whitened directions), or after `ns_steps`. Row-centring puts the
all-ones vector 1 in G~'s null space (G~ 1 = 0); rounding noise along it would grow 1.5x per step
into a spurious unit direction, so every step projects it out again. The parity test checks the
result against an eigendecomposition twin; `python -m bench.optimizers.swan_accuracy` measures
error and time per setting (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import torch

from bench.optimizers.partition import DEFAULT_EXCLUDE, Partitioned


def polar_newton_schulz(g: torch.Tensor, steps: int, tol: float, centred: bool = True) -> tuple[torch.Tensor, int]:
    """(U V^T of g over its nonzero singular values, steps taken). `centred`: g 1 = 0 (rows sum to 0)."""
    wide = g.shape[0] < g.shape[1]
    x = g if wide else g.T  # x x^T is the smaller gram; for a square g, g^T g, whose null vector is 1
    x = x / torch.linalg.matrix_norm(x).clamp_min(torch.finfo(x.dtype).tiny)
    k = x.shape[0]
    target = torch.eye(k, dtype=x.dtype, device=x.device)
    if centred and not wide:
        target -= 1.0 / k  # the polar factor's gram is the projector I - 1 1^T / k
    rank = k - 1 if centred and not wide else k
    previous, finishing, taken = float("inf"), False, 0
    while taken < steps:
        gram = x @ x.T
        if tol > 0 and not finishing:
            r = (torch.linalg.matrix_norm(target - gram) / max(rank, 1) ** 0.5).item()
            if r >= previous:
                break  # the rounding floor: further steps would only grow noise
            finishing, previous = r < tol, r
        x = 1.5 * x - 0.5 * gram @ x
        if centred:  # keep g 1 = 0 exactly: x = g has zero row means, x = g^T zero column means
            x = x - x.mean(dim=1 if wide else 0, keepdim=True)
        taken += 1
        if finishing:
            break
    return (x if wide else x.T), taken


def swan_direction(g: torch.Tensor, steps: int, eps: float, rescale: bool, tol: float = 0.0) -> torch.Tensor:
    g = (g - g.mean(dim=1, keepdim=True)) / (g.std(dim=1, correction=0, keepdim=True) + eps)
    w, _ = polar_newton_schulz(g, steps, tol)
    if rescale:
        w = w * (torch.linalg.matrix_norm(g) / torch.linalg.matrix_norm(w).clamp_min(torch.finfo(w.dtype).tiny))
    return w


class SwanMatrix(torch.optim.Optimizer):
    """The stateless matrix part of SWAN."""

    def __init__(self, params, lr: float, ns_steps: int, ns_tol: float, eps: float, rescale: bool,
                 weight_decay: float):
        super().__init__(params, dict(lr=lr, ns_steps=ns_steps, ns_tol=ns_tol, eps=eps, rescale=rescale,
                                      weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                w = swan_direction(p.grad, group["ns_steps"], group["eps"], group["rescale"],
                                   group.get("ns_tol", 0.0))  # checkpoints from before ns_tol: fixed steps
                p.mul_(1 - group["lr"] * group["weight_decay"]).sub_(w, alpha=group["lr"])


class SWAN(Partitioned):
    implementation = "loop"

    def __init__(self, params, lr: float = 1e-3, ns_steps: int = 60, ns_tol: float = 1e-4, eps: float = 1e-8,
                 rescale: bool = True, weight_decay: float = 0.0, adamw_lr: float | None = None,
                 adamw_betas: tuple[float, float] = (0.9, 0.999), adamw_eps: float = 1e-8,
                 adamw_weight_decay: float = 0.0, exclude: tuple[str, ...] = DEFAULT_EXCLUDE):
        if lr <= 0 or ns_steps < 1 or ns_tol < 0:
            raise ValueError(f"invalid SWAN hyperparameters: lr={lr}, ns_steps={ns_steps}, ns_tol={ns_tol}")

        def matrix(ps):
            return SwanMatrix(ps, lr=lr, ns_steps=ns_steps, ns_tol=ns_tol, eps=eps, rescale=rescale,
                              weight_decay=weight_decay)

        def other(ps):
            return torch.optim.AdamW(ps, lr=adamw_lr or lr, betas=tuple(adamw_betas), eps=adamw_eps,
                                     weight_decay=adamw_weight_decay, fused=True)

        super().__init__(params, exclude, matrix, other)
