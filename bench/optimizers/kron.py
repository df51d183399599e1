"""PSGD Kron (Li 2018) as pytorch-optimizer implements it (after kron_torch), with its probes and
balancing coin drawn from a private stream (private_rng.py) so that resuming from a checkpoint
continues identically. The algorithm is the package's; the parity test checks it against a twin."""

from __future__ import annotations

import pytorch_optimizer

from bench.optimizers.private_rng import PrivateRandom


class Kron(PrivateRandom, pytorch_optimizer.Kron):
    def __init__(self, params, seed: int | None = 0, **kwargs):
        super().__init__(params, **kwargs)
        self._init_rng(seed)
