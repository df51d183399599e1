"""The Task contract every benchmark problem implements.

A task is built from its yaml (`conf/task/<name>.yaml`): `_target_` names the class and every
other key, except the metadata keys in `bench.config.META_KEYS`, is a constructor argument.
The runner adds `seed`, `device` and `batch_size`.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch import nn


class Task:
    #: the metric the leaderboard ranks on, and whether larger is better ("max") or not ("min")
    metric: str = "val/loss"
    mode: str = "min"
    #: known optimal objective value f*, when one exists (enables `train/subopt` = F − f*)
    optimum: float | None = None

    def __init__(self, *, seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 0):
        self.seed = seed
        self.device = torch.device(device)
        self.batch_size = batch_size

    # --- the four methods the training loop calls ---------------------------------------------
    def model(self) -> nn.Module:
        """A freshly initialised model on `self.device`, deterministic given `self.seed`."""
        raise NotImplementedError

    def batches(self, start: int = 0) -> Iterator[Any]:
        """Infinite, seeded stream of batches. `batches(start)` must yield exactly what a fresh
        `batches()` yields after skipping `start` batches (resume relies on it), cheaply."""
        raise NotImplementedError

    def loss(self, model: nn.Module, batch: Any) -> torch.Tensor:
        """Scalar training loss of `model` on `batch` (what the optimizer minimises)."""
        raise NotImplementedError

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Metrics of the model, named `split/metric`: held-out ones (`val/loss`, `val/acc`) and
        ones of the training objective (`train/loss`, `train/subopt`)."""
        raise NotImplementedError

    # --- optional ----------------------------------------------------------------------------
    def items_per_batch(self, batch: Any) -> int:
        """Examples (or tokens, for language models) in a batch: used for throughput metrics."""
        first = batch[0] if isinstance(batch, (tuple, list)) else batch
        return int(first.shape[0]) if hasattr(first, "shape") and first.dim() > 0 else 1

    def describe(self) -> dict[str, Any]:
        """Extra facts recorded in summary.json (data source, sizes, f*)."""
        return {}


def seeded_generator(seed: int, *salt: int) -> torch.Generator:
    """A CPU generator seeded from (seed, *salt): independent streams for init, data, epochs."""
    g = torch.Generator()
    value = seed
    for s in salt:
        value = value * 1_000_003 + s
    g.manual_seed(value % (2**63))
    return g


def epoch_batches(n: int, batch_size: int, seed: int, start: int = 0) -> Iterator[torch.Tensor]:
    """Index batches over `n` examples: a fresh seeded permutation each epoch, drop-last.

    `batch_size <= 0` or `>= n` means full batch. Skipping `start` batches costs one permutation.
    """
    if batch_size <= 0 or batch_size >= n:
        full = torch.arange(n)
        while True:
            yield full
    per_epoch = n // batch_size
    epoch, offset = divmod(start, per_epoch)
    while True:
        perm = torch.randperm(n, generator=seeded_generator(seed, epoch))
        for i in range(offset, per_epoch):
            yield perm[i * batch_size : (i + 1) * batch_size]
        epoch, offset = epoch + 1, 0
