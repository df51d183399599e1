"""Adam-mini (Zhang et al. 2025, "Adam-mini: Use Fewer Learning Rates To Gain More", ICLR): Adam whose
second moment is one number per block of the Hessian's block-diagonal structure instead of one per
entry, so v costs almost nothing and the state is ~4 bytes per parameter.

Blocks, as the paper's final partition (Sec. 2.3 and the authors' code): embeddings and output heads
keep Adam's per-entry v (their rows see very different token frequencies); query and key matrices
one v per attention head (rows of `head_dim`), when `head_dim` is given; every other matrix one v
per output neuron (row); a vector (bias, norm gain) one v for the whole tensor. For a block b,

    m = b1 m + (1 - b1) g,   v_b = b2 v_b + (1 - b2) mean_b(g^2)
    p = p (1 - lr wd) - lr (m / (1 - b1^t)) / (sqrt(v_b / (1 - b2^t)) + eps)

pytorch-optimizer's AdamMini follows the paper's first version instead (one v per whole tensor for
V, output projections and MLPs) and keeps its state in float32 whatever the parameter's dtype
(docs/OPTIMIZERS.md); the parity test checks this file against a twin in reference_matrix.py.
"""

from __future__ import annotations

import torch

from bench.optimizers.partition import DEFAULT_EXCLUDE

QK_NAMES = (".q.", ".k.", "q_proj", "k_proj", ".wq.", ".wk.")


class AdamMini(torch.optim.Optimizer):
    param_partition = True  # the blocks depend on parameter names
    implementation = "loop"

    def __init__(self, named_params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, head_dim: int | None = None,
                 adam_names: tuple[str, ...] = DEFAULT_EXCLUDE, qk_names: tuple[str, ...] = QK_NAMES):
        groups = {}
        for item in named_params:
            name, p = item if isinstance(item, tuple) else ("", item)
            groups.setdefault(self._block_rule(name, p, head_dim, tuple(adam_names), tuple(qk_names)), []).append(p)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        super().__init__([{"params": ps, "block": rule} for rule, ps in groups.items()],
                         dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    @staticmethod
    def _block_rule(name: str, p: torch.Tensor, head_dim, adam_names, qk_names) -> str | int:
        """'entry' (Adam), 'tensor' (one v), 'row' (one v per output neuron) or an int (rows per block)."""
        if p.dim() < 2:
            return "tensor"
        if any(word in name for word in adam_names):
            return "entry"
        if head_dim and any(word in name for word in qk_names) and p.shape[0] % head_dim == 0:
            return int(head_dim)
        return "row"

    @staticmethod
    def _blocks(g: torch.Tensor, rule) -> torch.Tensor:
        """g reshaped to (blocks, entries per block)."""
        if rule == "tensor":
            return g.reshape(1, -1)
        if rule == "row":
            return g.reshape(g.shape[0], -1)
        return g.reshape(g.shape[0] // rule, -1)

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            (b1, b2), rule = group["betas"], group["block"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g, state = p.grad, self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["m"] = torch.zeros_like(p)
                    shape = p.shape if rule == "entry" else self._blocks(p, rule).shape[:1]
                    state["v"] = torch.zeros(shape, dtype=p.dtype, device=p.device)
                state["step"] += 1
                t = state["step"].item()
                state["m"].lerp_(g, 1 - b1)
                square = g * g if rule == "entry" else self._blocks(g * g, rule).mean(dim=1)
                state["v"].mul_(b2).add_(square, alpha=1 - b2)
                denom = (state["v"] / (1 - b2**t)).sqrt_().add_(group["eps"])
                if rule != "entry":  # one denominator per block, spread over its entries
                    denom = denom[:, None].expand(-1, self._blocks(p, rule).shape[1]).reshape(p.shape)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.addcdiv_(state["m"], denom, value=-group["lr"] / (1 - b1**t))
        return loss
