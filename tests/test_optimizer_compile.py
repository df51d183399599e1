"""The compiled path of our element-wise optimizers equals their eager path, and a changing
learning rate (a schedule) triggers no recompilation during training.

Compiling costs 5-20 s per kernel on a CPU, so this module runs only with BENCH_SLOW=1:

    BENCH_SLOW=1 .venv/bin/python -m pytest tests/test_optimizer_compile.py -q
"""

from __future__ import annotations

import os

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch._dynamo.utils import counters

from bench.config import choices, option_defaults
from bench.optimizers import build_optimizer
from bench.optimizers.elementwise import ElementwiseOptimizer

pytestmark = pytest.mark.skipif(not os.environ.get("BENCH_SLOW"), reason="compiles every kernel; set BENCH_SLOW=1")


def ours_elementwise() -> list[str]:
    from hydra.utils import get_class

    return [n for n in choices("optimizer")
            if issubclass(get_class(option_defaults("optimizer", n)._target_), ElementwiseOptimizer)]


def run(name: str, compile: bool) -> tuple[list[torch.Tensor], torch.optim.Optimizer, int]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 16), nn.Tanh(), nn.Linear(16, 4)).double()
    opt, _ = build_optimizer(OmegaConf.merge(option_defaults("optimizer", name), {"compile": compile}), model)
    graphs = counters["stats"]["unique_graphs"]
    data = torch.Generator().manual_seed(1)
    for _ in range(6):
        for group in opt.param_groups:
            group["lr"] *= 0.9  # as a schedule would: must not recompile
        opt.zero_grad()
        x = torch.randn(8, 12, generator=data, dtype=torch.float64)
        model(x).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], opt, counters["stats"]["unique_graphs"] - graphs


@pytest.mark.parametrize("name", ours_elementwise())
def test_compiled_equals_eager_without_recompiling(name):
    got, opt, new_graphs = run(name, compile=True)
    assert opt.implementation == "compiled" and opt.compile_time_s > 0
    assert new_graphs == 0, f"{name} recompiled {new_graphs}x during training"
    want, _, _ = run(name, compile=False)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
