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

# The defaults target networks; these toy problems are stiffer (Rosenbrock's curvature is ~1200 at
# the start, the quadratic's up to 100) and shorter, so a few step sizes are scaled to them. LARS's
# trust coefficient 1e-3 assumes deep networks with ~1e3x larger base lr; vectors skip the ratio.
TOY = {
    **{name: {"lr": 1e-3} for name in ("sgd", "heavyball", "nesterov", "sam", "schedulefree_sgd")},
    **{name: {"lr": 1e-2} for name in ("adam", "adamw", "cadamw", "nadamw", "ademamix", "adamsn", "diffgrad",
                                       "exadam", "fadam", "lamb", "rmsprop", "schedulefree_adamw", "lion", "clion")},
    "adagrad": {"lr": 0.1}, "shampoo": {"lr": 0.1}, "swan": {"lr": 0.05},
    "lars": {"lr": 5e-3, "trust_coefficient": 1.0}, "muon": {"adamw_lr": 1e-2},
}


def test_the_zoo_is_complete():
    assert len(ZOO) >= 24
    for name in ("sam", "muon", "adahessian", "schedulefree_adamw", "cadamw", "clion", "ademamix", "swan"):
        assert name in ZOO


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
    if toy:
        over.update(TOY.get(name, {}))
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


def _largest_divisor_up_to_sqrt(n: int) -> int:
    return max(d for d in range(1, int(n**0.5) + 1) if n % d == 0)


# Shape-dependent costs, written from each yaml's `state_per_param` (bytes for one tensor of this
# shape; float32 state): the formula the docs advertise is the one the state must follow.
SHAPED = {
    "adafactor": ("sublinear", lambda s: 4 * (s[0] + s[1]) if len(s) == 2 else 4 * s[0]),
    "adamsn": ("4 + 4/k", lambda s: 4 * s[0] * s[1] + 4 * s[0] * s[1] // _largest_divisor_up_to_sqrt(s[0] * s[1])
               if len(s) == 2 else 8 * s[0]),
    "muon": ("4 (matrices), 8 (rest)", lambda s: 4 * s[0] * s[1] if len(s) == 2 else 8 * s[0]),
    "shampoo": ("8 (m^2 + n^2) / (m n)", lambda s: 8 * sum(d * d for d in s)),
    "swan": ("0 (matrices), 8 (rest)", lambda s: 0 if len(s) == 2 else 8 * s[0]),
}


@pytest.mark.parametrize("name", ZOO)
def test_state_matches_the_advertised_bytes_per_parameter(name):
    advertised = option_defaults("optimizer", name).state_per_param
    model = Point(*starts(quadratic))  # a 2x5 matrix and a 5-vector
    opt, caps = build(name, model, toy=True)
    train(model, opt, caps, quadratic, steps=2)
    if isinstance(advertised, int):
        expected = advertised * sum(p.numel() for p in model.parameters())
    else:
        assert name in SHAPED and SHAPED[name][0] == advertised, f"{name}: add its formula to SHAPED"
        expected = sum(SHAPED[name][1](tuple(p.shape)) for p in model.parameters())
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
