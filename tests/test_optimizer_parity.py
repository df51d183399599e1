"""Parity: each optimizer we implement runs 100 steps on a small float64 model and must match its
reference (torch.optim, the authors' package, pytorch-optimizer, or a twin in
bench/optimizers/reference.py) to rtol 1e-6, with non-default hyperparameters switched on."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from bench.optimizers import reference as twin
from bench.optimizers.lion import Lion

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


# id -> (ours, reference); every case runs STEPS steps from the same start on the same batches
CASES = {
    "lion-defaults": (lambda m: Lion(params(m), compile=False), lion_pytorch()),
    "lion-wd-betas": (lambda m: Lion(params(m), lr=3e-3, betas=(0.8, 0.95), weight_decay=0.3, compile=False),
                      lion_pytorch(lr=3e-3, betas=(0.8, 0.95), weight_decay=0.3)),
    "clion-wd-betas": (lambda m: Lion(params(m), lr=3e-3, betas=(0.8, 0.95), weight_decay=0.3, cautious=True,
                                      compile=False),
                       lambda m: twin.CautiousLion(params(m), lr=3e-3, betas=(0.8, 0.95), weight_decay=0.3)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_reference(case):
    ours, ref = CASES[case]
    got, want = trajectory(ours), trajectory(ref)
    start = [p.detach() for p in small_model().parameters()]
    assert any(not torch.equal(a, b) for a, b in zip(got, start)), "the optimizer did not move"
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-12)
