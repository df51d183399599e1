"""One table over the whole optimizer zoo (optax style): every optimizer yaml must descend on an
ill-conditioned quadratic and on Rosenbrock, continue identically after a state_dict() round trip,
hold the state its yaml advertises, and run `bench run task=logreg` end to end. The test drives each
optimizer only through its declared capabilities, as the runner does."""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import read_run
from omegaconf import OmegaConf
from torch import nn

from bench.config import choices, option_defaults
from bench.optimizers import build_optimizer, state_bytes

ZOO = choices("optimizer")

def test_the_zoo_is_complete():
    assert len(ZOO) >= 24
    for name in ("sam", "muon", "adahessian", "schedulefree_adamw", "cadamw", "clion", "ademamix", "swan"):
        assert name in ZOO


def test_yaml_colours_are_distinct_matplotlib_colours():
    """Plots give each optimizer its yaml `color:`; two yamls with one colour would make two lines alike."""
    from matplotlib.colors import is_color_like

    stated = {name: option_defaults("optimizer", name).get("color") for name in ZOO}
    stated = {name: c for name, c in stated.items() if c}
    assert all(is_color_like(c) for c in stated.values()), stated
    assert len(set(stated.values())) == len(stated), stated


class Point(nn.Module):
    """A 2x5 matrix and a length-5 vector: matrix optimizers (Muon, SWAN) and their AdamW part both act."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight.clone())
        self.bias = nn.Parameter(bias.clone())


def quadratic(model: Point) -> torch.Tensor:
    """0.5 x^T H x with H diagonal, eigenvalues log-spaced over [1, 100] (condition number 100)."""
    x = torch.cat([model.weight.flatten(), model.bias])
    return 0.5 * (torch.logspace(0, 2, x.numel()) * x * x).sum()


def rosenbrock(model: Point) -> torch.Tensor:
    a, b = model.weight[0, 0], model.weight[0, 1]
    return (1 - a) ** 2 + 100 * (b - a * a) ** 2


def starts(problem):
    if problem is rosenbrock:
        weight = torch.zeros(2, 5)
        weight[0, :2] = torch.tensor([-1.2, 1.0])  # the classic start; the other entries have no gradient
        return weight, torch.zeros(5)
    gen = torch.Generator().manual_seed(0)
    return torch.randn(2, 5, generator=gen), torch.randn(5, generator=gen)


def build(name: str, model: nn.Module, toy: bool):
    cfg = option_defaults("optimizer", name)
    over = {"compile": False} if "compile" in cfg else {}
    if toy:  # the defaults target networks; the toy problems are stiffer and shorter (the yaml's `toy:`)
        over.update(OmegaConf.to_container(cfg.toy) if cfg.get("toy") else {})
    return build_optimizer(OmegaConf.merge(cfg, over), model)


def train(model, opt, caps, loss_fn, steps: int) -> None:
    def closure():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model)
        loss.backward(create_graph=caps.needs_hvp)
        return loss

    for _ in range(steps):
        if caps.needs_closure:
            opt.step(closure)
        else:
            closure()
            opt.step()
    opt.zero_grad(set_to_none=True)  # drops a create_graph gradient's reference cycle


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("problem", [quadratic, rosenbrock], ids=["quadratic", "rosenbrock"])
def test_descends(name, problem):
    model = Point(*starts(problem))
    with torch.no_grad():
        start = problem(model).item()
    opt, caps = build(name, model, toy=True)
    train(model, opt, caps, problem, steps=200)
    if caps.has_eval_mode:
        opt.eval()  # Schedule-Free: judge the averaged iterate x, not the gradient point y
    with torch.no_grad():
        final = problem(model).item()
    assert final < 0.25 * start, f"{name}: {start:.4g} -> {final:.4g}"


@pytest.mark.parametrize("name", ZOO)
def test_state_dict_round_trip_continues_identically(name):
    model = Point(*starts(quadratic))
    opt, caps = build(name, model, toy=True)
    train(model, opt, caps, quadratic, steps=10)
    saved_state = copy.deepcopy(opt.state_dict())
    saved_params = [p.detach().clone() for p in model.parameters()]
    train(model, opt, caps, quadratic, steps=10)

    resumed = Point(*saved_params)
    opt2, _ = build(name, resumed, toy=True)
    opt2.load_state_dict(saved_state)
    train(resumed, opt2, caps, quadratic, steps=10)
    for a, b in zip(model.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b), name


#: what a yaml's `state_formula` may call besides the shape `s`
FORMULA_BUILTINS = {"len": len, "max": max, "min": min, "range": range, "sum": sum, "int": int}


def formula_bytes(formula: str, shape: tuple[int, ...]) -> int:
    """The yaml's `state_formula` (float32 state bytes for one tensor of shape `s`) at this shape.
    `s` sits in the globals so that generator expressions in the formula see it."""
    return eval(formula, {"__builtins__": FORMULA_BUILTINS, "s": shape})


@pytest.mark.parametrize("name", ZOO)
def test_state_matches_the_advertised_bytes_per_parameter(name):
    cfg = option_defaults("optimizer", name)
    advertised = cfg.state_per_param
    model = Point(*starts(quadratic))  # a 2x5 matrix and a 5-vector
    opt, caps = build(name, model, toy=True)
    train(model, opt, caps, quadratic, steps=2)
    if isinstance(advertised, int):
        expected = advertised * sum(p.numel() for p in model.parameters())
    else:
        # the formula the docs advertise as text is the one the state must follow
        assert cfg.get("state_formula"), f"{name}: state_per_param {advertised!r} needs a state_formula in its yaml"
        expected = sum(formula_bytes(cfg.state_formula, tuple(p.shape)) for p in model.parameters())
    assert state_bytes(opt) == expected


def test_bench_run_logreg_for_every_optimizer(bench_cli, runs_root):
    """`bench run task=logreg optimizer=<name> steps=20` for the whole zoo, as one Hydra sweep (one
    process, one compose per job), then every run directory is checked."""
    res = bench_cli("run", "-m", "task=logreg", f"optimizer={','.join(ZOO)}", "steps=20", f"runs_root={runs_root}",
                    "progress=off")
    assert res.code == 0, res.output
    runs = {read_run(d)[0]["optimizer"]: read_run(d) for d in runs_root.iterdir()
            if d.is_dir() and not d.name.startswith(".")}
    assert sorted(runs) == ZOO
    bad = {name: s.get("error", s["status"]) for name, (s, _) in runs.items() if s["status"] != "ok"}
    assert not bad, bad
    for name, (summary, lines) in runs.items():
        assert summary["implementation"] in ("fused", "compiled", "foreach", "loop"), name
        assert lines[-1]["step"] == 20, name


def test_elementwise_constructors_refuse_out_of_range_hyperparameters():
    """One range check in the element-wise base class; each optimizer names itself and the bad value."""
    from hydra.utils import get_class

    from bench.optimizers.elementwise import ElementwiseOptimizer

    model = Point(*starts(quadratic))
    for name in ZOO:
        cfg = option_defaults("optimizer", name)
        if not issubclass(get_class(cfg._target_), ElementwiseOptimizer):
            continue
        with pytest.raises(ValueError, match=r"invalid \w+ hyperparameters: lr=-1"):
            build_optimizer(OmegaConf.merge(cfg, {"lr": -1}), model)
    with pytest.raises(ValueError) as bad:
        ElementwiseOptimizer.validate(lr=0.1, betas=(0.9, 1.0), eps=1e-8, weight_decay=-0.1)
    assert str(bad.value) == ("invalid ElementwiseOptimizer hyperparameters: betas=(0.9, 1.0) (each must be in [0, 1)), "
                              "weight_decay=-0.1 (must be >= 0)")
