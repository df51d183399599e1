"""Muon (Jordan et al. 2024, "Muon: An optimizer for hidden layers in neural networks"): momentum,
then orthogonalise the update matrix with a quintic Newton-Schulz iteration. Matrices run on
torch.optim.Muon (the update itself is torch's, parity-tested against a direct call); everything
else runs on torch.optim.AdamW (fused), as the Muon write-up prescribes. State: 4 bytes per matrix
parameter (momentum), 8 per AdamW parameter.
"""

from __future__ import annotations

import torch

from bench.optimizers.partition import DEFAULT_EXCLUDE, Partitioned


class Muon(Partitioned):
    implementation = "loop"  # per-matrix Newton-Schulz matmuls; the AdamW part is fused

    def __init__(self, params, lr: float = 0.02, momentum: float = 0.95, nesterov: bool = True,
                 ns_steps: int = 5, weight_decay: float = 0.0, adjust_lr_fn: str | None = None,
                 adamw_lr: float = 3e-4, adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8,
                 adamw_weight_decay: float = 0.0, exclude: tuple[str, ...] = DEFAULT_EXCLUDE):
        def matrix(ps):
            return torch.optim.Muon(ps, lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                                    weight_decay=weight_decay, adjust_lr_fn=adjust_lr_fn)

        def other(ps):
            return torch.optim.AdamW(ps, lr=adamw_lr, betas=tuple(adamw_betas), eps=adamw_eps,
                                     weight_decay=adamw_weight_decay, fused=True)

        super().__init__(params, exclude, matrix, other)
