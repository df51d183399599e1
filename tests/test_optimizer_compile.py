"""What runs is what is recorded, and compiled kernels equal eager ones.

- Every optimizer, on CPU: the recorded `implementation` (fused / foreach / compiled / loop) is
  the path that ran, checked by intercepting torch's `_fused_*`, `_multi_tensor_*` and
  `_single_tensor_*` functions, and for our element-wise optimizers by the kernel they call.
- Four representative kernels (Lion: sign; AdEMAMix: two momenta; Schedule-Free AdamW: an
  interpolated iterate and a begin-of-step hook; LAMB: a per-tensor trust ratio) with compilation
  forced: compiled equals eager, and a changing learning rate (a schedule) triggers no
  recompilation. Compiling costs seconds per kernel on a CPU, so every other element-wise
  optimizer runs only with BENCH_SLOW=1:

    BENCH_SLOW=1 .venv/bin/python -m pytest tests/test_optimizer_compile.py -q
"""

from __future__ import annotations

import inspect
import os

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torch._dynamo.utils import counters

from bench.config import choices, option_defaults
from bench.optimizers import build_optimizer, implementation
from bench.optimizers.elementwise import ElementwiseOptimizer

REPRESENTATIVE = ["lion", "ademamix", "schedulefree_adamw", "lamb"]
PATHS = {"_fused_": "fused", "_multi_tensor_": "foreach", "_single_tensor_": "loop"}


def ours_elementwise() -> list[str]:
    from hydra.utils import get_class

    return [n for n in choices("optimizer")
            if issubclass(get_class(option_defaults("optimizer", n)._target_), ElementwiseOptimizer)]


def _kernels_ran(monkeypatch, optimizer) -> list[str]:
    """Wrap torch's kernel functions in the modules of the optimizer (and of a wrapped base
    optimizer, SAM's); returns the list the calls are recorded in."""
    ran: list[str] = []
    for opt in (optimizer, getattr(optimizer, "base", None)):
        module = inspect.getmodule(type(opt).step) if opt is not None else None
        if module is None or not module.__name__.startswith("torch.optim"):
            continue
        for name, fn in list(vars(module).items()):
            path = next((p for prefix, p in PATHS.items() if name.startswith(prefix)), None)
            if path is not None and callable(fn) and not name.endswith("_doc"):
                monkeypatch.setattr(module, name, lambda *a, _fn=fn, _path=path, **k: (ran.append(_path), _fn(*a, **k))[1])
    return ran


@pytest.mark.parametrize("name", choices("optimizer"))
def test_recorded_implementation_is_what_ran(name, monkeypatch):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))
    opt, caps = build_optimizer(option_defaults("optimizer", name), model, optimum=0.0)
    recorded = implementation(opt)
    assert recorded in ("fused", "foreach", "compiled", "loop")
    ran = _kernels_ran(monkeypatch, opt)
    x = torch.randn(5, 6)

    def closure():
        opt.zero_grad()
        loss = model(x).square().mean()
        loss.backward(create_graph=caps.needs_hvp)
        return loss

    closure()
    opt.step(closure) if caps.needs_closure else opt.step()
    if ran:  # torch's own step
        assert set(ran) == {recorded}, f"{name} records {recorded} but ran {sorted(set(ran))}"
    elif isinstance(opt, ElementwiseOptimizer):
        eager = opt._fn is type(opt).kernel
        assert recorded == ("loop" if eager else "compiled")
    if name == "adafactor":  # torch chooses its per-tensor loop on CPU when foreach is left to it
        assert recorded == "loop"


def run(name: str, compile: bool) -> tuple[list[torch.Tensor], torch.optim.Optimizer, int]:
    torch.manual_seed(0)
    # two parameters of one shape: one graph to compile per kernel
    model = nn.Sequential(nn.Linear(8, 8, bias=False), nn.Tanh(), nn.Linear(8, 8, bias=False)).double()
    opt, _ = build_optimizer(OmegaConf.merge(option_defaults("optimizer", name), {"compile": compile}), model)
    graphs = counters["stats"]["unique_graphs"]
    data = torch.Generator().manual_seed(1)
    for _ in range(6):
        for group in opt.param_groups:
            group["lr"] *= 0.9  # as a schedule would: must not recompile
        opt.zero_grad()
        x = torch.randn(4, 8, generator=data, dtype=torch.float64)
        model(x).square().mean().backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()], opt, counters["stats"]["unique_graphs"] - graphs


SLOW = pytest.mark.skipif(not os.environ.get("BENCH_SLOW"), reason="compiles a kernel; set BENCH_SLOW=1")


@pytest.mark.parametrize("name", [n if n in REPRESENTATIVE else pytest.param(n, marks=SLOW) for n in ours_elementwise()])
def test_compiled_equals_eager_without_recompiling(name):
    got, opt, new_graphs = run(name, compile=True)
    assert opt.implementation == "compiled" and opt.compile_time_s > 0
    assert new_graphs == 0, f"{name} recompiled {new_graphs}x during training"
    want, _, _ = run(name, compile=False)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_the_representative_kernels_exist():
    assert set(REPRESENTATIVE) <= set(ours_elementwise())
