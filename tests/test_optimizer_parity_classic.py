"""Parity for the classic and element-wise optimizers of issue 14 (AMSGrad, AdaMax, RAdam, AdaBelief,
AdaBound, Adan, ADOPT, MARS, Signum, signSGD, SPS): 100 float64 steps against an independent
reference, rtol 1e-6, non-default hyperparameters, as in tests/test_optimizer_parity.py.

Optimizers are built from their yaml (with the case's overrides) where the yaml carries a setting
that defines the algorithm (amsgrad on, torch.optim's form of AdaMax and RAdam, SPS's f* plumbing),
so a change of those defaults fails here."""

from __future__ import annotations

import pytest
import pytorch_optimizer as po
import torch
from test_optimizer_parity import B, assert_parity, params, ref, yaml

from bench.optimizers import reference as twin
from bench.optimizers.adabelief import AdaBelief
from bench.optimizers.adabound import AdaBound
from bench.optimizers.adamax import Adamax
from bench.optimizers.adan import Adan
from bench.optimizers.adopt import ADOPT
from bench.optimizers.mars import MARS
from bench.optimizers.radam import RAdam
from bench.optimizers.signum import SignSGD, Signum
from bench.optimizers.sps import SPS


def ours(cls, **kw):
    return lambda m: cls(params(m), compile=False, **kw)


ADAM = dict(lr=3e-3, betas=B, eps=1e-7)
B3 = (0.9, 0.85, 0.95)  # Adan: non-default betas

# id -> (ours, reference); every case runs STEPS steps from the same start on the same batches
CASES = {
    "amsgrad-yaml-l2": (yaml("amsgrad", weight_decay=0.1, **ADAM), ref(twin.AMSGrad, weight_decay=0.1, **ADAM)),
    "adamax-l2-vs-torch": (yaml("adamax", weight_decay=0.1, **ADAM), ref(torch.optim.Adamax, weight_decay=0.1, **ADAM)),
    "adamax-l2-vs-po": (yaml("adamax", weight_decay=0.1, **ADAM), ref(po.AdaMax, weight_decay=0.1, **ADAM)),
    "radam-wd-vs-torch": (yaml("radam", weight_decay=0.1, **ADAM),
                          ref(torch.optim.RAdam, weight_decay=0.1, decoupled_weight_decay=True, **ADAM)),
    # beta2 0.9: rho_inf = 19, so the rectified phase starts at step 6 and both phases are covered
    "radam-short-beta2-vs-po": (yaml("radam", weight_decay=0.1, lr=3e-3, betas=(0.8, 0.9), eps=1e-7),
                                ref(po.RAdam, weight_decay=0.1, degenerated_to_sgd=True, lr=3e-3, betas=(0.8, 0.9),
                                    eps=1e-7)),
    "adabelief-wd-betas": (ours(AdaBelief, weight_decay=0.1, **ADAM), ref(po.AdaBelief, weight_decay=0.1, **ADAM)),
    "adabound-wd-bounds": (ours(AdaBound, weight_decay=0.1, final_lr=0.05, gamma=0.02, **ADAM),
                           ref(po.AdaBound, weight_decay=0.1, final_lr=0.05, gamma=0.02, **ADAM)),
    "adan-proximal-wd": (ours(Adan, lr=3e-3, betas=B3, eps=1e-7, weight_decay=0.1),
                         ref(po.Adan, lr=3e-3, betas=B3, eps=1e-7, weight_decay=0.1, weight_decouple=False)),
    "adopt-wd-betas": (ours(ADOPT, lr=3e-3, betas=B, eps=1e-5, weight_decay=0.1),
                       ref(po.ADOPT, lr=3e-3, betas=B, eps=1e-5, weight_decay=0.1, weight_decouple=True)),
    # eps 1e-12: the two place eps before / after v's bias correction (docs/OPTIMIZERS.md); gamma 0.5
    # makes ||c|| > 1 (the norm clip) on 70 of the 200 matrix steps
    "mars-wd-betas-1d": (ours(MARS, lr=3e-3, betas=B, gamma=0.5, eps=1e-12, weight_decay=0.1, lr_1d=1e-2,
                              betas_1d=(0.85, 0.9), weight_decay_1d=0.05),
                         ref(po.MARS, lr=3e-3, betas=B, gamma=0.5, eps=1e-12, weight_decay=0.1, lr_1d=1e-2,
                             betas_1d=(0.85, 0.9), weight_decay_1d=0.05)),
    "signum-wd-momentum": (ours(Signum, lr=3e-3, momentum=0.8, weight_decay=0.1),
                           ref(po.SignSGD, lr=3e-3, momentum=0.8, weight_decay=0.1)),
    "signsgd-wd": (ours(SignSGD, lr=3e-3, weight_decay=0.1), ref(po.SignSGD, lr=3e-3, momentum=0.0, weight_decay=0.1)),
    # f* below every minibatch loss: 95 Polyak steps, 5 capped
    "sps-c-cap": (ref(SPS, optimum=0.05, lr=5.0, c=0.5), ref(twin.SPS, optimum=0.05, gamma_b=5.0, c=0.5)),
    # f* among the minibatch losses (0.41-0.89): 87 Polyak steps, 7 capped, 6 with the gap clamped at 0
    "sps-yaml-clamped": (yaml("sps", c=0.4, lr=3.0, optimum=0.45), ref(twin.SPS, optimum=0.45, gamma_b=3.0, c=0.4)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(case):
    assert_parity(*CASES[case])


@pytest.mark.parametrize("cls", [AdaBelief, AdaBound, Adan, ADOPT, MARS, Signum, SignSGD, Adamax, RAdam],
                         ids=lambda c: c.__name__)
def test_refuses_negative_lr(cls):
    """The shared range check names the optimizer and the bad value; a valid lr builds."""
    model = torch.nn.Linear(2, 1)
    with pytest.raises(ValueError, match=rf"^invalid {cls.__name__} hyperparameters: lr=-1 \(must be > 0\)$"):
        cls(model.parameters(), lr=-1, compile=False)
    cls(model.parameters(), lr=1e-3, compile=False)


def test_range_checks_specific_to_one_optimizer():
    """Rules that differ from the shared defaults: Adan's three betas, ADOPT's eps > 0, Signum's momentum
    in (0, 1), MARS's 1-D group; weight decay below zero is refused everywhere."""
    params = list(torch.nn.Linear(2, 1).parameters())
    for make, words in [(lambda: Adan(params, betas=(0.9, 0.9)), "betas=(0.9, 0.9) (must be three"),
                        (lambda: ADOPT(params, eps=0.0), "eps=0.0 (must be > 0)"),
                        (lambda: Signum(params, momentum=0.0), "momentum=0.0 (must be in (0, 1))"),
                        (lambda: MARS(params, lr_1d=0.0, betas_1d=(0.9, 1.0)),
                         "lr_1d=0.0 (must be > 0), betas_1d=(0.9, 1.0) (each must be in [0, 1))"),
                        (lambda: AdaBelief(params, weight_decay=-0.1), "weight_decay=-0.1 (must be >= 0)")]:
        with pytest.raises(ValueError) as bad:
            make()
        assert words in str(bad.value)
