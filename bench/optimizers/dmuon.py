"""D-Muon (Liu et al. 2025, "Muon is Scalable for LLM Training", the Moonlight report): Muon whose
update is rescaled to AdamW's RMS, with decoupled weight decay on every parameter, so that the
matrices and the AdamW part can share one learning rate and one decay.

    O = NewtonSchulz5(momentum)                     Muon's orthogonalised update
    W = W - lr (0.2 sqrt(max(A, B)) O + wd W)        an A x B matrix: RMS(0.2 sqrt(max(A, B)) O) ~ 0.2,
                                                    the RMS of a typical AdamW update

torch.optim.Muon implements the 0.2 sqrt(max(A, B)) factor as adjust_lr_fn="match_rms_adamw"; this
is Muon (muon.py) with that factor and with the AdamW part's lr and decay tied to the matrices' own
unless given (adamw_lr / adamw_weight_decay null), as the report prescribes.
"""

from __future__ import annotations

from bench.optimizers.muon import Muon
from bench.optimizers.partition import DEFAULT_EXCLUDE


class DMuon(Muon):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0.95, nesterov: bool = True, ns_steps: int = 5,
                 weight_decay: float = 0.1, adamw_lr: float | None = None,
                 adamw_betas: tuple[float, float] = (0.9, 0.95), adamw_eps: float = 1e-8,
                 adamw_weight_decay: float | None = None, exclude: tuple[str, ...] = DEFAULT_EXCLUDE):
        super().__init__(params, lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                         weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw",
                         adamw_lr=lr if adamw_lr is None else adamw_lr, adamw_betas=adamw_betas, adamw_eps=adamw_eps,
                         adamw_weight_decay=weight_decay if adamw_weight_decay is None else adamw_weight_decay,
                         exclude=exclude)
