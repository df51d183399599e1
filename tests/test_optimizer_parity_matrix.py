"""Parity for the matrix and second-order optimizers (SOAP, Kron, Sophia, Adam-mini, Scion, D-Muon):
100 float64 steps of the small MLP from test_optimizer_parity.py with non-default hyperparameters,
final parameters equal to rtol 1e-6 against an independent reference. The stochastic ones (Kron,
Sophia) run with seed=None so that they draw their probes from the global generators, which
`trajectory` (and numpy_seeded) seed identically for both sides."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_optimizer as po
import torch
from test_optimizer_parity import B, Pair, assert_parity, named, ref

from bench.optimizers import reference_matrix as twin
from bench.optimizers.adam_mini import AdamMini
from bench.optimizers.dmuon import DMuon
from bench.optimizers.kron import Kron
from bench.optimizers.scion import Scion
from bench.optimizers.sophia import SophiaH


def dmuon_reference(m, lr, wd):
    """torch.optim.Muon with Moonlight's RMS match and AdamW sharing its lr and decay."""
    mats = [p for p in m.parameters() if p.dim() == 2]
    rest = [p for p in m.parameters() if p.dim() != 2]
    return Pair(torch.optim.Muon(mats, lr=lr, momentum=0.9, weight_decay=wd, nesterov=True,
                                 adjust_lr_fn="match_rms_adamw"),
                torch.optim.AdamW(rest, lr=lr, betas=B, weight_decay=wd))


def numpy_seeded(make):
    """Kron draws its balancing coin from numpy's global generator; seed it for both sides."""

    def build(m):
        np.random.seed(3)
        return make(m)

    return build


def adam_mini_named(m):
    """The MLP's first layer named as a query projection (2 rows per head), its second as an output
    head (per-entry Adam): every Adam-mini block rule is exercised."""
    first, _, second = m
    return [("attn.q.weight", first.weight), ("attn.q.bias", first.bias), ("head.weight", second.weight),
            ("head.bias", second.bias)]


def adam_mini_rows(p):
    return {(8, 6): 2, (3, 8): "adam"}.get(tuple(p.shape), None)


def scion_named(m):
    """The MLP's second layer named as an output head: spectral, sign and RMS oracles all act."""
    first, _, second = m
    return [("0.weight", first.weight), ("0.bias", first.bias), ("head.weight", second.weight),
            ("head.bias", second.bias)]


def scion_twin(**kw):
    from pytorch_optimizer.optimizer.utils.matrix import zero_power_via_newton_schulz_5

    roles = {(8, 6): "spectral", (3, 8): "sign"}
    return ref(twin.Scion, role_of=lambda p: roles.get(tuple(p.shape), "rms"),
               radius_of=lambda p: 7.0 if p.shape == (3, 8) else 2.0,
               orthogonalise=lambda d: zero_power_via_newton_schulz_5(d, 5), **kw)


SCION = dict(lr=0.01, momentum=0.3)
ADAM_MINI = dict(lr=3e-3, betas=B, eps=1e-7, weight_decay=0.1)
KRON = dict(lr=3e-3, momentum=0.8, weight_decay=0.1)

# id -> (ours, reference)
CASES = {
    "dmuon-shared-lr": (lambda m: DMuon(named(m), lr=3e-3, momentum=0.9, weight_decay=0.2, adamw_betas=B),
                        lambda m: dmuon_reference(m, lr=3e-3, wd=0.2)),
    # frequency 3 (not the default 10) so that the QR refresh runs ~33 times in 100 steps
    "soap-wd-betas-freq3": (ref(po.SOAP, lr=3e-3, betas=B, shampoo_beta=0.9, eps=1e-7, weight_decay=0.1,
                                precondition_frequency=3),
                            ref(twin.SOAP, lr=3e-3, betas=B, shampoo_beta=0.9, eps=1e-7, weight_decay=0.1,
                                precondition_frequency=3)),
    # the Hessian refreshed every 3 steps; Gaussian probes from the same seeded generator on both sides
    "sophiah-wd-betas-k3": (ref(SophiaH, seed=None, lr=0.05, betas=B, p=0.05, weight_decay=0.1, update_period=3, eps=1e-10),
                            ref(twin.SophiaH, lr=0.05, betas=B, rho=0.05, weight_decay=0.1, k=3, eps=1e-10)),
    # preconditioner every 2nd step, balancing on 30% of those; the package's Q in float64 (its
    # default is float32, which alone would move a float64 trajectory by ~1e-7 per step)
    "kron-wd-prob-balance": (numpy_seeded(ref(Kron, seed=None, pre_conditioner_update_probability=0.5, balance_prob=0.3,
                                              precondition_dtype=torch.float64, **KRON)),
                             numpy_seeded(ref(twin.Kron, update_probability=0.5, balance_prob=0.3, **KRON))),
    "adam-mini-heads-rows-adam": (lambda m: AdamMini(adam_mini_named(m), head_dim=2, **ADAM_MINI),
                                  ref(twin.AdamMini, rows_of=adam_mini_rows, **ADAM_MINI)),
    "scion-unconstrained-wd": (lambda m: Scion(scion_named(m), radius=2.0, output_radius=7.0, weight_decay=0.1,
                                                **SCION),
                               scion_twin(weight_decay=0.1, constraint=False, **SCION)),
    "scion-constrained": (lambda m: Scion(scion_named(m), radius=2.0, output_radius=7.0, constraint=True, **SCION),
                          scion_twin(weight_decay=0.0, constraint=True, **SCION)),
    "adam-mini-rows": (lambda m: AdamMini(named(m), **ADAM_MINI),
                       ref(twin.AdamMini, rows_of=lambda p: 1, **ADAM_MINI)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(case):
    assert_parity(*CASES[case])


def test_dmuon_update_has_adamw_rms():
    """Moonlight's rule: a matrix's update RMS is 0.2 lr whatever its shape (up to Newton-Schulz's
    inexact singular values, which the quintic leaves in about [0.7, 1.2])."""
    for shape in [(64, 16), (16, 64), (48, 48)]:
        w = torch.nn.Parameter(torch.zeros(shape))
        opt = DMuon([("layer.weight", w)], lr=1.0, weight_decay=0.0)
        w.grad = torch.randn(shape, generator=torch.Generator().manual_seed(0))
        opt.step()
        rms = w.detach().square().mean().sqrt().item()
        assert 0.2 * 0.7 < rms < 0.2 * 1.2, (shape, rms)
        assert math.isfinite(rms)
