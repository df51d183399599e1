"""One optimizer made of two: matrix-shaped hidden weights go to a matrix optimizer (Muon, SWAN),
everything else (biases, norms, embeddings, output heads) to AdamW.

The split needs parameter names, which is why these classes declare `param_partition` and receive
(name, parameter) pairs from the runner. A 2-D parameter is a "matrix" unless its name contains one
of `exclude` (embeddings and heads are lookup tables / classifiers, not hidden linear maps, and the
Muon and SWAN papers leave them to Adam). Conv kernels (>2-D) also go to AdamW: torch.optim.Muon
only accepts matrices.

Both inner optimizers share this object's param_groups (the same dicts) and state, so the learning
rate scheduler scales both, and state_dict() / load_state_dict() cover both.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch

from bench.optimizers import evaluate_closure

DEFAULT_EXCLUDE = ("embed", "wte", "wpe", "lm_head", "head", "output", "classifier")


def split(named: Iterable, exclude: Iterable[str]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(matrices, others). Plain tensors without names are split by shape alone."""
    exclude = tuple(exclude)
    matrices, others = [], []
    for item in named:
        name, p = item if isinstance(item, tuple) else ("", item)
        if p.dim() == 2 and not any(word in name for word in exclude):
            matrices.append(p)
        else:
            others.append(p)
    return matrices, others


class Partitioned(torch.optim.Optimizer):
    param_partition = True

    def __init__(self, named_params, exclude: Iterable[str], make_matrix: Callable, make_other: Callable):
        matrices, others = split(named_params, exclude)
        self.parts = [make(ps) for make, ps in ((make_matrix, matrices), (make_other, others)) if ps]
        if not self.parts:
            raise ValueError("optimizer got an empty parameter list")
        # The same group dicts: the base class registers them without copying.
        super().__init__([g for part in self.parts for g in part.param_groups], {})
        self._link()

    def _link(self) -> None:
        start = 0
        for part in self.parts:
            n = len(part.param_groups)
            part.param_groups = self.param_groups[start:start + n]
            part.state = self.state
            start += n

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self._link()  # loading replaces the group dicts and the state mapping

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for part in self.parts:
            part.step()
        return loss
