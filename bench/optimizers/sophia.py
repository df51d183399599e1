"""Sophia-H (Liu et al. 2024) as pytorch-optimizer implements it (SophiaH), with its Hutchinson
probes drawn from a private stream (private_rng.py) so that resuming from a checkpoint continues
identically, and the Hessian-vector-product capability declared. The parity test checks the package
against a twin written from the paper's algorithm."""

from __future__ import annotations

import pytorch_optimizer

from bench.optimizers.private_rng import PrivateRandom


class SophiaH(PrivateRandom, pytorch_optimizer.SophiaH):
    needs_hvp = True  # step() takes Hessian-vector products through the gradients' graph

    def __init__(self, params, seed: int | None = 0, **kwargs):
        super().__init__(params, **kwargs)
        self._init_rng(seed)
