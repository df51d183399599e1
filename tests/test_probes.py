"""The sharpness probe: power iteration on Hessian-vector products finds a known top eigenvalue,
leaves the run it measures untouched, and reaches metrics.jsonl through `probe.sharpness.every`."""

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import only_run, read_run
from torch import nn

from bench import BenchError
from bench.runner.probes import SharpnessProbe, build_probes, hvp_power_iteration
from bench.tasks.base import Task

SPECTRUM = [9.0, 4.0, 2.0, 1.0, 0.5, 0.25, -0.5, 0.0]


def rotated(spectrum, seed=0) -> torch.Tensor:
    """H = Q diag(spectrum) Qᵀ with a seeded random rotation Q, so no eigenvector is an axis."""
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(len(spectrum), len(spectrum), generator=g, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(spectrum, dtype=torch.float64)) @ q.T


class QuadraticTask(Task):
    """Loss ½ (x − c)ᵀ H (x − c) for a batch c: its Hessian is H whatever the batch and the point."""

    def __init__(self, hessian: torch.Tensor, **base):
        super().__init__(**base)
        self.hessian = hessian

    def model(self):
        model = nn.Linear(1, len(self.hessian), bias=False).double()
        nn.init.normal_(model.weight)
        return model

    def batches(self, start=0):
        g = torch.Generator().manual_seed(start)
        while True:
            yield torch.randn(len(self.hessian), generator=g, dtype=torch.float64)

    def loss(self, model, batch):
        d = model.weight[:, 0] - batch
        return 0.5 * d @ self.hessian @ d


def test_power_iteration_finds_the_top_eigenvalue_of_a_known_spectrum():
    task = QuadraticTask(rotated(SPECTRUM))
    model = task.model()
    probe = SharpnessProbe(task, every=1, iters=30)
    # the ratio of the top two eigenvalues is 4/9, so 30 iterations pin the Rayleigh quotient to ~1e-20
    assert probe(0, model)["probe/sharpness"] == pytest.approx(9.0, rel=1e-9)


def test_power_iteration_converges_at_the_rate_the_spectral_gap_predicts():
    hessian = rotated([2.0, 1.9, 1.0, 0.1])
    x = torch.randn(4, dtype=torch.float64, requires_grad=True)
    loss = 0.5 * x @ hessian @ x
    g = torch.Generator().manual_seed(1)
    few, _ = hvp_power_iteration(loss, [x], 3, generator=g)
    many, vector = hvp_power_iteration(loss, [x], 400, generator=torch.Generator().manual_seed(1))
    assert many == pytest.approx(2.0, rel=1e-12)
    assert abs(few - 2.0) > 1e-4  # a gap of 0.95 is slow: 3 iterations are visibly short of it
    # the returned vector is the top eigenvector, so warm-starting from it needs one iteration
    again, _ = hvp_power_iteration(loss, [x], 1, start=vector)
    assert again == pytest.approx(2.0, rel=1e-12)


class Noisy(nn.Module):
    """BatchNorm (running statistics) and dropout (global RNG): what a probe must not disturb."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 3))

    def forward(self, x):
        return self.net(x)


class NoisyTask(Task):
    def model(self):
        torch.manual_seed(0)
        return Noisy()

    def batches(self, start=0):
        g = torch.Generator().manual_seed(start)
        while True:
            yield torch.randn(16, 5, generator=g), torch.randint(0, 3, (16,), generator=g)

    def loss(self, model, batch):
        x, y = batch
        return F.cross_entropy(model(x), y)


def test_probe_leaves_buffers_rng_and_gradients_as_they_were():
    task = NoisyTask()
    model = task.model().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(123)
    expected_draw = torch.rand(3)
    torch.manual_seed(123)
    value = SharpnessProbe(task, every=1, iters=5, batch=40)(0, model)["probe/sharpness"]
    assert math.isfinite(value) and value > 0
    assert torch.equal(torch.rand(3), expected_draw)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_probe_runs_at_the_first_log_point_past_each_multiple_of_every():
    task = QuadraticTask(rotated(SPECTRUM))
    model = task.model()
    probe = SharpnessProbe(task, every=10, iters=2)
    ran = [step for step in (0, 4, 8, 12, 16, 20, 24, 28, 32) if probe(step, model)]
    assert ran == [0, 12, 20, 32]


def test_first_examples_batch_joins_the_streams_first_batches():
    probe = SharpnessProbe(NoisyTask(), every=1, batch=40)
    x, y = probe.batch
    assert x.shape == (40, 5) and y.shape == (40,)
    first = next(NoisyTask().batches(0))
    assert torch.equal(x[:16], first[0])


def test_probe_off_builds_nothing_and_bad_settings_are_one_line_errors():
    task = NoisyTask()
    assert build_probes({"sharpness": {"every": 0, "iters": 20, "batch": 0}}, task) == []
    assert build_probes(None, task) == []
    with pytest.raises(BenchError, match="probe.sharpness.iters"):
        build_probes({"sharpness": {"every": 5, "iters": 0, "batch": 0}}, task)
    with pytest.raises(BenchError, match="probe.sharpness.every"):
        build_probes({"sharpness": {"every": -1}}, task)


def test_sharpness_reaches_the_run_and_does_not_change_its_training(bench_cli, tmp_path):
    common = ("run", "task=logreg", "optimizer=sgd", "optimizer.lr=0.5", "steps=20", "log_every=5", "progress=off")
    curves = {}
    for name, extra in (("off", ()), ("on", ("probe.sharpness.every=10", "probe.sharpness.iters=30"))):
        res = bench_cli(*common, f"runs_root={tmp_path / name}", *extra)
        assert res.code == 0, res.output
        _, lines = read_run(only_run(tmp_path / name))
        curves[name] = lines
    probed = {x["step"]: x["probe/sharpness"] for x in curves["on"] if "probe/sharpness" in x}
    assert sorted(probed) == [0, 10, 20]
    assert not any("probe/sharpness" in x for x in curves["off"])
    assert all(math.isfinite(v) and v > 0 for v in probed.values())
    assert probed[0] == pytest.approx(exact_top_eigenvalue_at_start(), rel=1e-4)
    strip = lambda lines: [{k: v for k, v in x.items() if not k.startswith(("time/", "probe/"))} for x in lines]
    assert strip(curves["on"]) == strip(curves["off"])


def exact_top_eigenvalue_at_start() -> float:
    """logreg's full-batch loss Hessian at its (zero) initial point, formed densely by central
    differences of gradients (single backward passes: independent of the double backward the
    probe uses), then symmetrised and diagonalised."""
    from bench.tasks.logreg import LogReg

    task = LogReg(seed=0)
    model = task.model().double()
    batch = tuple(t.double() if t.is_floating_point() else t for t in next(task.batches()))
    params = list(model.parameters())

    def gradient() -> torch.Tensor:
        grads = torch.autograd.grad(task.loss(model, batch), params)
        return torch.cat([g.flatten() for g in grads])

    flat = [(p, i) for p in params for i in range(p.numel())]
    h, columns = 1e-5, []
    for p, i in flat:
        with torch.no_grad():
            p.view(-1)[i] += h
        plus = gradient()
        with torch.no_grad():
            p.view(-1)[i] -= 2 * h
        minus = gradient()
        with torch.no_grad():
            p.view(-1)[i] += h
        columns.append((plus - minus) / (2 * h))
    hessian = torch.stack(columns, 1)
    return float(torch.linalg.eigvalsh((hessian + hessian.T) / 2).max())
