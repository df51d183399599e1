"""Slow, obviously-correct twins of our optimizers, written line by line from the papers' equations.

They exist only for the parity tests, where no trusted package implements the same algorithm (or
where the package disagrees with the paper: see docs/OPTIMIZERS.md). Each twin keeps its state in
plain attributes, recomputes everything out of place, and favours the paper's notation over speed.
"""

from __future__ import annotations

import torch


class Twin(torch.optim.Optimizer):
    """Out-of-place update per parameter: `update(p, g, state, group) -> new p`."""

    def update(self, p: torch.Tensor, g: torch.Tensor, state: dict, group: dict) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    state = self.state[p]
                    state["t"] = state.get("t", 0) + 1
                    p.copy_(self.update(p.detach().clone(), p.grad.clone(), state, group))
        return loss


def cautious_mask(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """phi = 1[u * g > 0], scaled by d / (nnz(phi) + 1) (Liang et al. 2024, Algorithm 1)."""
    phi = (u * g > 0).double()
    return phi * (phi.numel() / (phi.sum() + 1))


class CautiousLion(Twin):
    """C-Lion: Lion (Chen et al. 2023, Alg. 2) with the cautious mask on sign(c)."""

    def __init__(self, params, lr, betas, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    def update(self, p, g, state, group):
        b1, b2 = group["betas"]
        m = state.get("m", torch.zeros_like(p))
        c = b1 * m + (1 - b1) * g
        u = torch.sign(c)
        u = u * cautious_mask(u, g)
        state["m"] = b2 * m + (1 - b2) * g
        return p - group["lr"] * (u + group["weight_decay"] * p)
