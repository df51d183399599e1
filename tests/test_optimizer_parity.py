"""Parity: each optimizer we implement runs 100 steps on a small float64 model and must match its
reference (torch.optim, the authors' package, pytorch-optimizer, or a twin in
bench/optimizers/reference.py) to rtol 1e-6, with non-default hyperparameters switched on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import pytorch_optimizer as po
import schedulefree

from bench.optimizers import reference as twin
from bench.optimizers.adamsn import AdamSN, subset_size
from bench.optimizers.ademamix import AdEMAMix
from bench.optimizers.adamw import AdamW
from bench.optimizers.diffgrad import DiffGrad
from bench.optimizers.exadam import EXAdam
from bench.optimizers.fadam import FAdam
from bench.optimizers.lamb import Lamb
from bench.optimizers.lars import LARS
from bench.optimizers.lion import Lion
from bench.optimizers.nadamw import NAdamW
from bench.optimizers.schedulefree_adamw import ScheduleFreeAdamW
from bench.optimizers.schedulefree_sgd import ScheduleFreeSGD

STEPS = 100


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def trajectory(make_optimizer, steps: int = STEPS, closure: bool = False, hvp: bool = False) -> list[torch.Tensor]:
    """Train on seeded minibatches; return the final parameters."""
    model = small_model()
    opt = make_optimizer(model)
    data = torch.Generator().manual_seed(1)
    target_w = torch.randn(6, 3, generator=data, dtype=torch.float64)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=data, dtype=torch.float64)
        y = torch.sin(x @ target_w)

        def loss_fn():
            opt.zero_grad()
            loss = ((model(x) - y) ** 2).mean()
            loss.backward(create_graph=hvp)
            return loss

        if closure:
            opt.step(loss_fn)
        else:
            loss_fn()
            opt.step()
    return [p.detach().clone() for p in model.parameters()]


def params(model: nn.Module):
    return list(model.parameters())


def lion_pytorch(**kw):
    from lion_pytorch import Lion as Official

    return lambda m: Official(params(m), **kw)


def ours(cls, **kw):
    return lambda m: cls(params(m), compile=False, **kw)


def ref(cls, **kw):
    return lambda m: cls(params(m), **kw)


def in_train_mode(cls, **kw):
    """The schedulefree package starts in eval mode; bench's optimizers start in train mode."""

    def make(m):
        opt = cls(params(m), **kw)
        opt.train()
        return opt

    return make


def sn_groups(**kw):
    """pytorch-optimizer applies subset-norm to the groups flagged `sn`; bench to every matrix."""

    def make(m):
        mats = [p for p in m.parameters() if p.dim() > 1]
        vecs = [p for p in m.parameters() if p.dim() <= 1]
        return po.AdamWSN([{"params": mats, "sn": True}, {"params": vecs, "sn": False}], subset_size=-1, **kw)

    return make


def sn_k(p):
    return subset_size(p.numel(), None) if p.dim() > 1 else 1


B = (0.8, 0.95)  # non-default betas everywhere
ADAM = dict(lr=3e-3, betas=B, eps=1e-7)
EMA = dict(lr=3e-3, betas=(0.8, 0.95, 0.995), alpha=3.0, eps=1e-7)

# id -> (ours, reference); every case runs STEPS steps from the same start on the same batches
CASES = {
    "lion-defaults": (ours(Lion), lion_pytorch()),
    "lion-wd-betas": (ours(Lion, lr=3e-3, betas=B, weight_decay=0.3), lion_pytorch(lr=3e-3, betas=B, weight_decay=0.3)),
    "clion-wd-betas": (ours(Lion, lr=3e-3, betas=B, weight_decay=0.3, cautious=True),
                       ref(po.Lion, lr=3e-3, betas=B, weight_decay=0.3, cautious=True)),
    "adamw-vs-torch": (ours(AdamW, weight_decay=0.1, **ADAM), ref(torch.optim.AdamW, weight_decay=0.1, **ADAM)),
    "cadamw-wd-betas": (ours(AdamW, weight_decay=0.1, cautious=True, **ADAM),
                        ref(twin.CautiousAdamW, weight_decay=0.1, **ADAM)),
    "nadamw-wd-betas": (ours(NAdamW, weight_decay=0.1, **ADAM), ref(twin.NAdamW, weight_decay=0.1, **ADAM)),
    # pytorch-optimizer defaults to coupled (L2) decay; the paper decouples it (docs/OPTIMIZERS.md)
    "ademamix-warmup-vs-po": (ours(AdEMAMix, weight_decay=0.1, alpha_warmup=60, beta3_warmup=60, **EMA),
                              ref(po.AdEMAMix, weight_decay=0.1, weight_decouple=True, t_alpha_beta3=60, **EMA)),
    "ademamix-two-warmups": (ours(AdEMAMix, weight_decay=0.1, alpha_warmup=30, beta3_warmup=80, **EMA),
                             ref(twin.AdEMAMix, weight_decay=0.1, t_alpha=30, t_beta3=80, **EMA)),
    "cademamix-vs-po": (ours(AdEMAMix, cautious=True, **EMA), ref(po.AdEMAMix, cautious=True, **EMA)),
    "diffgrad-wd-betas": (ours(DiffGrad, weight_decay=0.1, **ADAM), ref(po.DiffGrad, weight_decay=0.1, **ADAM)),
    "exadam-wd-betas": (ours(EXAdam, weight_decay=0.1, **ADAM), ref(po.EXAdam, weight_decay=0.1, **ADAM)),
    # eps_2 so large that pytorch-optimizer's adaptive epsilon reduces to the paper's plain eps
    "fadam-wd-betas": (ours(FAdam, weight_decay=0.3, clip=0.5, **ADAM),
                       ref(po.FAdam, weight_decay=0.3, clip=0.5, eps_2=1e30, momentum_dtype=torch.float64,
                                fim_dtype=torch.float64, **ADAM)),
    "lamb-wd-betas": (ours(Lamb, weight_decay=0.1, **ADAM), ref(twin.Lamb, weight_decay=0.1, **ADAM)),
    "lars-wd-momentum": (ours(LARS, lr=0.5, momentum=0.8, weight_decay=1e-3, trust_coefficient=0.02),
                         ref(po.LARS, lr=0.5, momentum=0.8, weight_decay=1e-3, trust_coefficient=0.02)),
    "adamsn-betas-vs-po": (ours(AdamSN, **ADAM), sn_groups(**ADAM)),
    "adamsn-wd": (ours(AdamSN, weight_decay=0.1, **ADAM), ref(twin.AdamSN, weight_decay=0.1, k_of=sn_k, **ADAM)),
    "sfadamw-wd-warmup": (ours(ScheduleFreeAdamW, weight_decay=0.05, warmup_steps=10, r=0.5, **ADAM),
                          in_train_mode(schedulefree.AdamWScheduleFree, weight_decay=0.05, warmup_steps=10, r=0.5,
                                        **ADAM)),
    "sfsgd-wd-warmup": (ours(ScheduleFreeSGD, lr=0.2, momentum=0.8, weight_decay=0.05, warmup_steps=10),
                        in_train_mode(schedulefree.SGDScheduleFree, lr=0.2, momentum=0.8, weight_decay=0.05,
                                      warmup_steps=10)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(case):
    ours_, ref_ = CASES[case]
    got, want = trajectory(ours_), trajectory(ref_)
    start = [p.detach() for p in small_model().parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(got, start)), "the optimizer did not move"
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)
