"""SAM, Sharpness-Aware Minimization (Foret et al. 2021, Algorithm 1), wrapping any base optimizer;
`adaptive=True` gives ASAM (Kwon et al. 2021) with T_w = |w|.

    e = rho * g / ||g||                 (ASAM: rho * w^2 g / ||w g||)   ascend to the sharpest nearby point
    g_sam = grad L(w + e)                                               gradient there
    w = base_step(w, g_sam)                                             descend from the original w

Each step needs two gradients, so SAM declares `needs_closure` and the runner passes step() a closure
that recomputes loss and gradients. The base optimizer is `base`: the name of an optimizer yaml in
conf/optimizer (its defaults), or a mapping with `_target_` (or `name`) plus constructor arguments.
`lr` and `weight_decay`, when given, override the base's. SAM shares the base's param_groups and
state: the scheduler and state_dict() see one optimizer. State: the base's.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from omegaconf import OmegaConf

from bench.config import constructor_kwargs, option_defaults, resolve_target
from bench.optimizers import implementation


def build_base(params, base, **overrides) -> torch.optim.Optimizer:
    if isinstance(base, str):
        node = option_defaults("optimizer", base)
    elif isinstance(base, Mapping) or OmegaConf.is_config(base):
        node = OmegaConf.create(dict(base))
        if "_target_" not in node:
            node = OmegaConf.merge(option_defaults("optimizer", node.pop("name")), node)
    else:
        raise ValueError(f"SAM base must be an optimizer name or a mapping with _target_, got {base!r}")
    kwargs = constructor_kwargs(node)
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return resolve_target(node, "optimizer")(params, **kwargs)


class SAM(torch.optim.Optimizer):
    needs_closure = True

    def __init__(self, params, base="sgd", rho: float = 0.05, adaptive: bool = False, lr: float | None = None,
                 weight_decay: float | None = None, perturb_eps: float = 1e-12):
        if rho < 0:
            raise ValueError(f"rho must be >= 0, got {rho}")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, perturb_eps=perturb_eps))
        # The base adopts these group dicts (adding its own defaults), so both see the same groups.
        self.base = build_base(self.param_groups, base, lr=lr, weight_decay=weight_decay)
        self._link()
        self.implementation = implementation(self.base)

    def _link(self) -> None:
        self.base.param_groups = self.param_groups
        self.base.state = self.state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._link()

    @torch.no_grad()
    def _perturb(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Move every parameter to w + e; return (parameter, its value at w) to undo it exactly."""
        live = [(g, p) for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not live:
            return []
        scaled = [(p.abs() * p.grad) if g["adaptive"] else p.grad for g, p in live]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s) for s in scaled]))
        moved = []
        for (g, p), s in zip(live, scaled, strict=True):
            e = (p.abs() if g["adaptive"] else 1.0) * s * (g["rho"] / (norm + g["perturb_eps"]))
            moved.append((p, p.clone()))
            p.add_(e)
        return moved

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise RuntimeError("SAM needs a closure that recomputes the loss and gradients")
        with torch.enable_grad():
            loss = closure()  # gradient at w
        moved = self._perturb()
        with torch.enable_grad():
            closure()  # gradient at w + e
        for p, original in moved:
            p.copy_(original)
        self.base.step()
        return loss
