"""SWAN (Ma, Gong, Scetbon & Meeds 2024, "SWAN: SGD with Normalization and Whitening Enables
Stateless LLM Training"): plain SGD on a gradient that is standardised row-wise and then whitened.
No state for the matrices; other parameters go to AdamW (see partition.py), as in the paper.

    G~ = (G - mean_row(G)) / (std_row(G) + eps)          GradNorm: each row over the n inputs
    W  = (G~ G~^T)^(-1/2) G~                             GradWhitening, i.e. the polar factor U V^T
    W  = W * ||G~||_F / ||W||_F                           keep GradNorm's scale (about 1 per entry)
    p  = p - lr (W + weight_decay p)

The inverse square root comes from the coupled Newton-Schulz iteration (Y -> A^(1/2),
Z -> A^(-1/2)) on A / ||A||_F, which converges for a PSD A and needs only matmuls; we apply it to the
smaller of G~ G~^T and G~^T G~ (both give U V^T). On a singular A the iteration multiplies null-space
components by 1.5 per step, which turns rounding noise into error. Row-centring always puts the
all-ones vector 1 in the null space of G~^T G~, so that side is whitened as
G~ (G~^T G~ + c 1 1^T / n)^(-1/2): G~ 1 = 0, so the added term changes nothing but the conditioning.
The parity test checks the iteration against an eigendecomposition twin.
"""

from __future__ import annotations

import torch

from bench.optimizers.partition import DEFAULT_EXCLUDE, Partitioned


def inverse_sqrt_newton_schulz(a: torch.Tensor, steps: int) -> torch.Tensor:
    """A^(-1/2) for a symmetric PSD A (pseudo-inverse on its null space, up to the growth noted above)."""
    scale = torch.linalg.matrix_norm(a).clamp_min(torch.finfo(a.dtype).tiny)
    eye = torch.eye(a.shape[0], dtype=a.dtype, device=a.device)
    y, z = a / scale, eye
    for _ in range(steps):
        t = 0.5 * (3 * eye - z @ y)
        y, z = y @ t, t @ z
    return z / scale.sqrt()


def swan_direction(g: torch.Tensor, steps: int, eps: float, rescale: bool) -> torch.Tensor:
    g = (g - g.mean(dim=1, keepdim=True)) / (g.std(dim=1, correction=0, keepdim=True) + eps)
    if g.shape[0] < g.shape[1]:
        w = inverse_sqrt_newton_schulz(g @ g.T, steps) @ g
    else:
        gram = g.T @ g
        n = gram.shape[0]
        ones = torch.full((n, n), 1.0 / n, dtype=g.dtype, device=g.device)  # projector onto 1
        w = g @ inverse_sqrt_newton_schulz(gram + (gram.trace() / n) * ones, steps)
    if rescale:
        w = w * (torch.linalg.matrix_norm(g) / torch.linalg.matrix_norm(w).clamp_min(torch.finfo(w.dtype).tiny))
    return w


class SwanMatrix(torch.optim.Optimizer):
    """The stateless matrix part of SWAN."""

    def __init__(self, params, lr: float, ns_steps: int, eps: float, rescale: bool, weight_decay: float):
        super().__init__(params, dict(lr=lr, ns_steps=ns_steps, eps=eps, rescale=rescale, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                w = swan_direction(p.grad, group["ns_steps"], group["eps"], group["rescale"])
                p.mul_(1 - group["lr"] * group["weight_decay"]).sub_(w, alpha=group["lr"])


class SWAN(Partitioned):
    implementation = "loop"

    def __init__(self, params, lr: float = 1e-3, ns_steps: int = 10, eps: float = 1e-8, rescale: bool = True,
                 weight_decay: float = 0.0, adamw_lr: float | None = None,
                 adamw_betas: tuple[float, float] = (0.9, 0.999), adamw_eps: float = 1e-8,
                 adamw_weight_decay: float = 0.0, exclude: tuple[str, ...] = DEFAULT_EXCLUDE):
        if lr <= 0 or ns_steps < 1:
            raise ValueError(f"invalid SWAN hyperparameters: lr={lr}, ns_steps={ns_steps}")

        def matrix(ps):
            return SwanMatrix(ps, lr=lr, ns_steps=ns_steps, eps=eps, rescale=rescale, weight_decay=weight_decay)

        def other(ps):
            return torch.optim.AdamW(ps, lr=adamw_lr or lr, betas=tuple(adamw_betas), eps=adamw_eps,
                                     weight_decay=adamw_weight_decay, fused=True)

        super().__init__(params, exclude, matrix, other)
