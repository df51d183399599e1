"""Optimizer construction from config, and the capabilities the training loop acts on.

An optimizer is a plain `torch.optim.Optimizer`. Its yaml names the class in `_target_`;
every other non-metadata key is a constructor argument, with torch's names (lr, betas, ...).
Capabilities are data: a class attribute of the same name on the optimizer, or a
`capabilities:` mapping in the yaml for classes we do not own. The runner never checks names.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from omegaconf import DictConfig
from torch import nn

from bench import BenchError
from bench.config import check_arguments, constructor_kwargs, resolve_target


@dataclass(frozen=True)
class Capabilities:
    needs_closure: bool = False  # step(closure) re-evaluates the loss (SAM, L-BFGS)
    needs_hvp: bool = False  # backward(create_graph=True) so step() can take Hessian-vector products
    has_eval_mode: bool = False  # optimizer.eval()/train() swap in evaluation weights (Schedule-Free)
    param_partition: bool = False  # constructor takes (name, param) pairs and splits them itself (Muon)
    needs_optimum: bool = False  # constructor takes `optimum`, the task's optimal value f* (Polyak step size)


def evaluate_closure(closure) -> torch.Tensor | None:
    """The loss from `step(closure)`'s closure, with gradients on (step itself runs under no_grad)."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


def capabilities(optimizer_cls: type, cfg: DictConfig) -> Capabilities:
    declared = dict(cfg.get("capabilities") or {})
    values = {f.name: bool(declared.get(f.name, getattr(optimizer_cls, f.name, False))) for f in fields(Capabilities)}
    return Capabilities(**values)


def build_optimizer(cfg: DictConfig, model: nn.Module,
                    optimum: float | None = None) -> tuple[torch.optim.Optimizer, Capabilities]:
    """`optimum`: the task's f*, given to optimizers that declare `needs_optimum` (an `optimum` in
    the config wins: the toy problems set it)."""
    cls = resolve_target(cfg, "optimizer")
    kwargs = constructor_kwargs(cfg)
    caps = capabilities(cls, cfg)
    if caps.needs_optimum and "optimum" not in kwargs:
        if optimum is None:
            from bench.optimizers.sps import tasks_with_optimum

            raise BenchError(f"optimizer {cfg.get('name', cfg._target_)} needs the task's optimal value f*, which "
                             f"this task does not know; use a task that has one: {', '.join(tasks_with_optimum())}")
        kwargs["optimum"] = optimum
    check_arguments(cls, kwargs, "optimizer", cfg.get("name", cfg._target_))
    if caps.param_partition:
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    else:
        params = [p for p in model.parameters() if p.requires_grad]
    return cls(params, **kwargs), caps


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in optimizer state tensors (what 'AdamW 8 bytes/param' counts)."""

    def size(value) -> int:
        if isinstance(value, torch.Tensor):
            return value.numel() * value.element_size() if value.dim() > 0 else 0
        if isinstance(value, dict):
            return sum(size(v) for v in value.values())
        if isinstance(value, (list, tuple)):
            return sum(size(v) for v in value)
        return 0

    return sum(size(s) for s in optimizer.state.values())


def implementation(optimizer: torch.optim.Optimizer) -> str:
    """Which code path the step uses (fused / compiled / foreach / loop): a fair time comparison
    needs comparable implementation quality, so every run records it. For torch's optimizers it
    is what torch will run, not what the settings hint: `foreach=None` lets torch choose, and it
    chooses its per-tensor loop unless every parameter is on a GPU."""
    declared = getattr(optimizer, "implementation", None)
    if isinstance(declared, str):
        return declared
    group = optimizer.param_groups[0] if optimizer.param_groups else optimizer.defaults
    if group.get("fused"):
        return "fused"
    if "foreach" not in group:
        return "loop"
    foreach = group["foreach"]
    if foreach is None:
        from torch.optim.optimizer import _default_to_fused_or_foreach

        params = [p for g in optimizer.param_groups for p in g["params"]]
        _, foreach = _default_to_fused_or_foreach(params, bool(group.get("differentiable")), use_fused=False)
    return "foreach" if foreach else "loop"
