"""Parity: each optimizer we implement runs 100 steps on a small float64 model and must match its
reference (torch.optim, the authors' package, pytorch-optimizer, or a twin in
bench/optimizers/reference.py) to rtol 1e-6, with non-default hyperparameters switched on."""

from __future__ import annotations

from unittest import mock

import dog
import prodigyopt
import pytest
import pytorch_optimizer as po
import pytorch_optimizer.optimizer.sam as po_sam
import schedulefree
import torch
from omegaconf import OmegaConf
from torch import nn

from bench.config import option_defaults
from bench.optimizers import build_optimizer
from bench.optimizers import reference as twin
from bench.optimizers.adahessian import AdaHessian
from bench.optimizers.adamsn import AdamSN, subset_size
from bench.optimizers.adamw import AdamW
from bench.optimizers.ademamix import AdEMAMix
from bench.optimizers.diffgrad import DiffGrad
from bench.optimizers.dog import DoG
from bench.optimizers.exadam import EXAdam
from bench.optimizers.fadam import FAdam
from bench.optimizers.lamb import Lamb
from bench.optimizers.lars import LARS
from bench.optimizers.ldog import LDoG
from bench.optimizers.lion import Lion
from bench.optimizers.muon import Muon
from bench.optimizers.nadamw import NAdamW
from bench.optimizers.prodigy import Prodigy
from bench.optimizers.rmsprop import RMSprop
from bench.optimizers.sam import SAM
from bench.optimizers.schedulefree_adamw import ScheduleFreeAdamW
from bench.optimizers.schedulefree_sgd import ScheduleFreeSGD
from bench.optimizers.shampoo import Shampoo
from bench.optimizers.swan import SWAN

STEPS = 100


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def trajectory(make_optimizer, steps: int = STEPS) -> list[torch.Tensor]:
    """Train on seeded minibatches; return the final parameters. The optimizer's capabilities (or a
    reference's `needs_closure` / `needs_hvp` attributes) decide how a step is driven."""
    model = small_model()
    torch.manual_seed(2)  # only optimizers that draw from the global generator (Hutchinson probes) see it
    opt = make_optimizer(model)
    closure = getattr(opt, "needs_closure", False)
    hvp = getattr(opt, "needs_hvp", False)
    data = torch.Generator().manual_seed(1)
    target_w = torch.randn(6, 3, generator=data, dtype=torch.float64)
    for _ in range(steps):
        x = torch.randn(16, 6, generator=data, dtype=torch.float64)
        y = torch.sin(x @ target_w)

        def loss_fn(x=x, y=y):
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


def named(model: nn.Module):
    return list(model.named_parameters())


class Pair(torch.optim.Optimizer):
    """Two reference optimizers over disjoint parameters, stepped together (Muon + AdamW)."""

    def __init__(self, first, second):
        self.first, self.second = first, second
        super().__init__(first.param_groups + second.param_groups, {})

    def step(self, closure=None):
        self.first.step()
        self.second.step()


def float64_squared_norm(param_groups, device=None, *, weight_adaptive=False):
    """pytorch-optimizer's global gradient norm, accumulated in float64 instead of float32."""
    grads = [p.grad * (p.abs() if weight_adaptive and g.get("adaptive") else 1.0)
             for g in param_groups for p in g["params"] if p.grad is not None]
    return torch.stack([x.norm() for x in grads]).square().sum().reshape(1)


class ReferenceSAM(po.SAM):
    """pytorch-optimizer's SAM, driven like bench's: it expects the gradient at w before
    step(closure) (bench's SAM computes it inside), and it rounds the perturbation norm to float32,
    which alone moves a 100-step float64 trajectory by ~1e-6; the shim keeps float64."""

    needs_closure = True

    def step(self, closure=None):
        with torch.enable_grad():
            loss = closure()
        with mock.patch.object(po_sam, "get_global_gradient_norm", float64_squared_norm):
            super().step(closure)
        return loss


class ReferenceAdaHessian(po.AdaHessian):
    needs_hvp = True


def lion_pytorch(**kw):
    from lion_pytorch import Lion as Official

    return lambda m: Official(params(m), **kw)


def ours(cls, **kw):
    return lambda m: cls(params(m), compile=False, **kw)


def ref(cls, **kw):
    return lambda m: cls(params(m), **kw)


def yaml(name: str, **over):
    """The optimizer of bench/conf/optimizer/<name>.yaml with overrides, as the runner builds it, so a
    change of the yaml's target or of a default the case does not override fails the case. The
    factory carries the yaml's name: tests/test_parity_coverage.py counts it as that yaml's row."""

    def make(model):
        cfg = OmegaConf.merge(option_defaults("optimizer", name), {k: list(v) if isinstance(v, tuple) else v
                                                                    for k, v in over.items()})
        return build_optimizer(cfg, model, optimum=0.0)[0]

    make.yaml = name
    return make


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


def muon_reference(m, **adamw):
    mats = [p for p in m.parameters() if p.dim() == 2]
    rest = [p for p in m.parameters() if p.dim() != 2]
    return Pair(torch.optim.Muon(mats, lr=0.05, momentum=0.9, weight_decay=0.1, nesterov=False),
                torch.optim.AdamW(rest, **adamw))


B = (0.8, 0.95)  # non-default betas everywhere
ADAM = dict(lr=3e-3, betas=B, eps=1e-7)
EMA = dict(lr=3e-3, betas=(0.8, 0.95, 0.995), alpha=3.0, eps=1e-7)
SGD = dict(lr=0.05, momentum=0.8, dampening=0.1, weight_decay=1e-2)
ADAGRAD = dict(lr=0.05, lr_decay=0.01, weight_decay=1e-2, initial_accumulator_value=0.1, eps=1e-7)
ADAFACTOR = dict(lr=0.2, beta2_decay=-0.7, d=1.2, weight_decay=0.1)

# id -> (ours, reference); every case runs STEPS steps from the same start on the same batches
CASES = {
    "lion-defaults": (ours(Lion), lion_pytorch()),
    "lion-wd-betas": (yaml("lion", lr=3e-3, betas=B, weight_decay=0.3), lion_pytorch(lr=3e-3, betas=B, weight_decay=0.3)),
    "clion-wd-betas": (yaml("clion", lr=3e-3, betas=B, weight_decay=0.3),
                       ref(po.Lion, lr=3e-3, betas=B, weight_decay=0.3, cautious=True)),
    "adamw-vs-torch": (ours(AdamW, weight_decay=0.1, **ADAM), ref(torch.optim.AdamW, weight_decay=0.1, **ADAM)),
    "cadamw-wd-betas": (yaml("cadamw", weight_decay=0.1, **ADAM), ref(twin.CautiousAdamW, weight_decay=0.1, **ADAM)),
    # the torch.optim yamls, built from the yaml (fused kernels, float64 on CPU) against pytorch-optimizer
    # or a twin: their targets and algorithm-defining defaults (momentum, nesterov, decay form) are pinned
    "sgd-yaml-l2": (yaml("sgd", lr=0.05, weight_decay=1e-2), ref(po.SGDW, lr=0.05, weight_decay=1e-2, weight_decouple=False)),
    "heavyball-yaml-dampening": (yaml("heavyball", **SGD), ref(po.SGDW, weight_decouple=False, **SGD)),
    "nesterov-yaml-l2": (yaml("nesterov", lr=0.05, momentum=0.8, weight_decay=1e-2),
                         ref(po.SGDW, lr=0.05, momentum=0.8, weight_decay=1e-2, weight_decouple=False, nesterov=True)),
    "adam-yaml-l2": (yaml("adam", weight_decay=0.1, **ADAM), ref(twin.Adam, weight_decay=0.1, decoupled=False, **ADAM)),
    "adamw-yaml-wd": (yaml("adamw", weight_decay=0.1, **ADAM), ref(twin.Adam, weight_decay=0.1, decoupled=True, **ADAM)),
    "adagrad-yaml-decays": (yaml("adagrad", **ADAGRAD), ref(twin.Adagrad, **ADAGRAD)),
    # pytorch-optimizer's AdaFactor is another variant (its relative step ignores lr: min(1e-2, 1/sqrt(t));
    # it adds eps1 to g^2 where torch clamps sqrt(V)), hence a twin of torch's form. lr 0.2: the
    # relative step is lr for t <= 25 and 1/sqrt(t) after; d 1.2 clips the update
    "adafactor-yaml-clip-wd": (yaml("adafactor", eps=(1e-10, 1e-2), **ADAFACTOR),
                               ref(twin.Adafactor, eps1=1e-10, eps2=1e-2, **ADAFACTOR)),
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
    "rmsprop-vs-torch": (ours(RMSprop, lr=3e-3, alpha=0.9, eps=1e-7, weight_decay=0.1),
                         ref(torch.optim.RMSprop, lr=3e-3, alpha=0.9, eps=1e-7, weight_decay=0.1)),
    "rmsprop-centered-momentum": (ours(RMSprop, lr=3e-3, alpha=0.9, eps=1e-7, weight_decay=0.1, momentum=0.8,
                                       centered=True),
                                  ref(torch.optim.RMSprop, lr=3e-3, alpha=0.9, eps=1e-7, weight_decay=0.1,
                                      momentum=0.8, centered=True)),
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
    "dog-wd": (ref(DoG, reps_rel=1e-4, weight_decay=1e-3), ref(dog.DoG, reps_rel=1e-4, weight_decay=1e-3)),
    "ldog-wd": (ref(LDoG, reps_rel=1e-4, weight_decay=1e-3), ref(dog.LDoG, reps_rel=1e-4, weight_decay=1e-3)),
    "prodigy-wd-betas": (ref(Prodigy, betas=B, weight_decay=0.05, d0=1e-5),
                         ref(prodigyopt.Prodigy, betas=B, weight_decay=0.05, d0=1e-5)),
    "prodigy-bias-safeguard": (ref(Prodigy, use_bias_correction=True, safeguard_warmup=True, growth_rate=1.05),
                               ref(prodigyopt.Prodigy, use_bias_correction=True, safeguard_warmup=True,
                                   growth_rate=1.05)),
    "sam-heavyball": (ref(SAM, base={"name": "heavyball", "fused": False}, rho=0.1, lr=0.05),
                      ref(ReferenceSAM, base_optimizer=torch.optim.SGD, rho=0.1, lr=0.05, momentum=0.9)),
    "asam-adamw": (ref(SAM, base={"_target_": "torch.optim.AdamW", "betas": B}, rho=0.5, adaptive=True,
                       lr=3e-3, weight_decay=0.1),
                   ref(ReferenceSAM, base_optimizer=torch.optim.AdamW, rho=0.5, adaptive=True, lr=3e-3,
                       weight_decay=0.1, betas=B)),
    "muon-adamw": (lambda m: Muon(named(m), lr=0.05, momentum=0.9, weight_decay=0.1, nesterov=False,
                                  adamw_lr=3e-3, adamw_betas=B, adamw_weight_decay=0.1),
                   lambda m: muon_reference(m, lr=3e-3, betas=B, weight_decay=0.1)),
    "swan-vs-eigh": (lambda m: SWAN(named(m), lr=1e-2, ns_steps=40, weight_decay=0.1, adamw_lr=3e-3, adamw_betas=B),
                     ref(twin.SWAN, lr=1e-2, eps=1e-8, weight_decay=0.1, adamw_lr=3e-3, adamw_betas=B,
                         adamw_eps=1e-8, adamw_weight_decay=0.0)),
    "adahessian-wd-betas": (ref(AdaHessian, lr=0.05, betas=B, weight_decay=0.1, seed=None),
                            ref(ReferenceAdaHessian, lr=0.05, betas=B, weight_decay=0.1, eps=1e-4,
                                hessian_distribution="rademacher")),
    "shampoo-wd": (ref(Shampoo, lr=0.02, weight_decay=1e-3, eps=1e-4),
                   ref(po.Shampoo, lr=0.02, weight_decay=1e-3, matrix_eps=1e-4)),
}


def assert_parity(ours_, ref_) -> None:
    """Both trajectories end at the same parameters (rtol 1e-6), and ours moved at all."""
    got, want = trajectory(ours_), trajectory(ref_)
    start = [p.detach() for p in small_model().parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(got, start, strict=True)), "the optimizer did not move"
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(case):
    assert_parity(*CASES[case])
