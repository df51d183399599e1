"""Synthetic test functions: known minima, seeded starts, unbiased noise, resumable streams, and
`bench run` end to end."""

import itertools
import math

import pytest
import torch
from conftest import only_run, read_run

from bench import BenchError
from bench.config import option_defaults
from bench.tasks import synthetic as S
from bench.tasks.quadratic import Quadratic

FUNCTIONS = [S.Rosenbrock, S.Rastrigin, S.Ackley, S.StyblinskiTang, S.Levy, S.Griewank, S.Zakharov, Quadratic]
SUMS = [cls for cls in FUNCTIONS if cls.sum_of_terms]


def value_and_grad(task, x):
    x = x.detach().clone().double().requires_grad_(True)
    f = task.value(x)
    (grad,) = torch.autograd.grad(f, x)
    return f.item(), grad


@pytest.mark.parametrize("dim", [2, 10_000])
@pytest.mark.parametrize("cls", FUNCTIONS, ids=lambda c: c.__name__)
def test_known_minimiser_is_a_stationary_minimum_with_value_f_star(cls, dim):
    task = cls(dim=dim)
    x_star = task.minimizer()
    f, grad = value_and_grad(task, x_star)
    scale = max(1.0, abs(task.optimum))
    assert f == pytest.approx(task.optimum, abs=1e-12 * scale)
    assert grad.abs().max().item() < 1e-9
    # Not just stationary: every nearby point (in a few random directions) is worse.
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        delta = 1e-3 * torch.randn(dim, generator=g, dtype=torch.float64)
        assert task.value(x_star + delta).item() > task.optimum
    # f* as an evaluation: a model sitting at x* has zero suboptimality.
    model = task.model()
    model.x.data = x_star.to(model.x.dtype)
    if model.x.dtype == torch.float64:
        assert task.evaluate(model)["train/subopt"] == pytest.approx(0.0, abs=1e-12 * scale)


def test_styblinski_tang_optimum_matches_the_literature():
    # -39.16617 d < f* < -39.16616 d (Styblinski & Tang 1990; Surjanovic & Bingham's library)
    for dim in (2, 37):
        per_dim = S.StyblinskiTang(dim=dim).optimum / dim
        assert -39.16617 < per_dim < -39.16616
        assert S.StyblinskiTang.root() == pytest.approx(-2.903534, abs=1e-6)


@pytest.mark.parametrize("cls", FUNCTIONS, ids=lambda c: c.__name__)
def test_start_is_seeded_and_inside_the_documented_box(cls):
    a, b, other = cls(dim=50, seed=3), cls(dim=50, seed=3), cls(dim=50, seed=4)
    xa, xb = a.model().x.detach(), b.model().x.detach()
    assert torch.equal(xa, xb)
    assert not torch.equal(xa, other.model().x.detach())
    centre = torch.tensor(cls.centre, dtype=torch.float64).flatten().repeat(50)[:50]
    offset = (xa.double() - centre).abs()
    assert offset.max().item() <= cls.start_box * (1 + 1e-6)
    assert offset.max().item() > 0.5 * cls.start_box  # the box is used, not a point
    narrow = cls(dim=50, seed=3, start_radius=0.01).model().x.detach().double()
    assert (narrow - centre).abs().max().item() <= 0.01 + 1e-6


def noisy_gradients(task, x, draws):
    """The gradient the optimizer sees at x for each of the first `draws` batches."""
    model = task.model()
    model.x.data.copy_(x)
    grads = []
    for batch in itertools.islice(task.batches(), draws):
        model.zero_grad()
        task.loss(model, batch).backward()
        grads.append(model.x.grad.detach().clone())
    return torch.stack(grads)


def assert_mean_close(samples, truth, z=5.0):
    """Every coordinate's sample mean within z standard errors of the truth (a fixed seed makes
    this deterministic; z=5 keeps a correct implementation from failing by chance)."""
    mean, stderr = samples.mean(0), samples.std(0) / math.sqrt(len(samples))
    assert ((mean - truth).abs() <= z * stderr + 1e-9 * truth.abs().max()).all(), (mean, truth)


def test_gradient_noise_is_unbiased_seeded_and_invisible_to_evaluate():
    task = S.Rosenbrock(dim=5, noise=2.0, dtype="float64", seed=1)
    x = task.start()
    _, true_grad = value_and_grad(task, x)
    grads = noisy_gradients(task, x, 1000)
    assert_mean_close(grads, true_grad)
    assert grads.std(0).mean().item() == pytest.approx(2.0, rel=0.1)  # σ as configured
    same = noisy_gradients(S.Rosenbrock(dim=5, noise=2.0, dtype="float64", seed=1), x, 20)
    other = noisy_gradients(S.Rosenbrock(dim=5, noise=2.0, dtype="float64", seed=2), x, 20)
    assert torch.equal(grads[:20], same) and not torch.equal(same, other)
    # The loss value and the evaluation see the true f.
    model = task.model()
    assert task.loss(model, next(task.batches())).item() == pytest.approx(task.value(task.start()).item())
    assert task.evaluate(model)["val/loss"] == pytest.approx(task.value(task.start()).item(), rel=1e-12)


@pytest.mark.parametrize("cls", SUMS, ids=lambda c: c.__name__)
def test_sampled_terms_are_uniform_and_scaled_to_an_unbiased_estimate(cls):
    task = cls(dim=6, batch_size=2, dtype="float64", seed=5)
    m = task.n_terms
    assert task.sample == 2 < m
    # Scaling: averaged over every possible subset of 2 terms, the loss and its gradient are f and ∇f.
    x = task.start()
    f, true_grad = value_and_grad(task, x)
    model = task.model()
    values, grads = [], []
    for subset in itertools.combinations(range(m), 2):
        model.zero_grad()
        loss = task.loss(model, S.Draw(None, torch.tensor(subset)))
        loss.backward()
        values.append(loss.item())
        grads.append(model.x.grad.clone())
    assert sum(values) / len(values) == pytest.approx(f, rel=1e-12)
    assert torch.allclose(torch.stack(grads).mean(0), true_grad, rtol=1e-10, atol=1e-12)
    assert len(set(values)) > 1  # the subsets really differ
    # Sampling: distinct terms, each term equally likely.
    draws = [b.terms for b in itertools.islice(task.batches(), 3000)]
    assert all(len(set(d.tolist())) == 2 for d in draws)
    counts = torch.bincount(torch.cat(draws), minlength=m).double()
    expected = 2 * 3000 / m
    assert ((counts - expected).abs() <= 5 * math.sqrt(expected)).all(), counts


def test_batch_size_at_least_the_number_of_terms_means_all_terms():
    task = S.Rastrigin(dim=4, batch_size=4)
    assert task.sample == 0 and next(task.batches()).terms is None


def test_batches_from_start_equal_skipping():
    task = S.Levy(dim=8, noise=0.5, batch_size=3, seed=7)
    skipped = list(itertools.islice(task.batches(), 12))[9:]
    resumed = list(itertools.islice(task.batches(start=9), 3))
    for a, b in zip(skipped, resumed, strict=True):
        assert torch.equal(a.noise, b.noise) and torch.equal(a.terms, b.terms)


def test_bad_options_are_one_line_errors():
    with pytest.raises(BenchError, match="not a sum of terms"):
        S.Ackley(dim=4, batch_size=2)
    with pytest.raises(BenchError, match="dim must be an integer >= 2"):
        S.Rosenbrock(dim=1)
    with pytest.raises(BenchError, match="noise must be >= 0"):
        S.Rastrigin(noise=-1.0)
    with pytest.raises(BenchError, match="start_radius must be >= 0"):
        S.Griewank(start_radius=-1.0)
    with pytest.raises(BenchError, match="float32, float64"):
        S.Levy(dtype="bf16")
    with pytest.raises(BenchError, match="condition_number"):
        Quadratic(condition_number=0.5)


def quadratic_hessian(task):
    x = torch.zeros(task.dim, dtype=torch.float64)
    return torch.autograd.functional.hessian(task.value, x)


@pytest.mark.parametrize("dim,block", [(6, 4), (9, 256)])  # padded last block; one dense rotation
def test_quadratic_spectrum_is_log_spaced_and_rotated(dim, block):
    task = Quadratic(dim=dim, condition_number=100.0, rotation_block=block)
    hess = quadratic_hessian(task)
    expected = torch.logspace(0, 2, dim, dtype=torch.float64)
    assert torch.allclose(torch.linalg.eigvalsh(hess), expected, rtol=1e-10)
    # Rotated: the eigenvectors are not the axes, so the diagonal is far from the spectrum's ends.
    off_diagonal = hess - torch.diag(hess.diagonal())
    assert off_diagonal.norm() > 0.3 * hess.norm()
    assert hess.diagonal().max() < 0.9 * 100.0


def test_quadratic_instance_follows_rotation_seed():
    base = quadratic_hessian(Quadratic(dim=5, seed=0))
    assert torch.equal(base, quadratic_hessian(Quadratic(dim=5, seed=9, rotation_seed=0)))
    assert not torch.allclose(base, quadratic_hessian(Quadratic(dim=5, seed=9)))


def test_every_synthetic_yaml_builds_its_class_with_defaults():
    for name, cls in [("rosenbrock", S.Rosenbrock), ("rastrigin", S.Rastrigin), ("ackley", S.Ackley),
                      ("styblinski_tang", S.StyblinskiTang), ("levy", S.Levy), ("griewank", S.Griewank),
                      ("zakharov", S.Zakharov), ("quadratic", Quadratic)]:
        node = option_defaults("task", name)
        assert node._target_ == f"{cls.__module__}.{cls.__name__}" and node.target is not None
        assert node.batch_size == 0 and node.noise == 0.0


def test_bench_run_rosenbrock_end_to_end(bench_cli, runs_root):
    res = bench_cli("run", "task=rosenbrock", "optimizer=adamw", "optimizer.lr=0.03", "steps=60", "task.noise=0.01",
                    f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    summary, lines = read_run(only_run(runs_root))
    assert summary["status"] == "ok" and summary["steps"] == 60
    assert summary["metric"] == "train/subopt" and summary["mode"] == "min" and summary["optimum"] == 0.0
    assert summary["task_info"]["dim"] == 2 and summary["task_info"]["noise"] == 0.01
    final = summary["final"]
    assert final["train/subopt"] == pytest.approx(final["val/loss"]) and final["train/subopt"] > 0
    assert lines[0]["step"] == 0 and "train/subopt" in lines[0]


def test_adamw_drives_the_quadratic_to_its_target(bench_cli, runs_root):
    res = bench_cli("run", "task=quadratic", "task.dim=20", "optimizer=adamw", "optimizer.lr=0.3", "steps=400",
                    f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    summary, lines = read_run(only_run(runs_root))
    start = lines[0]["train/subopt"]
    assert start > 1.0
    assert summary["final"]["train/subopt"] < 1e-6 < start
    assert summary["steps_to_target"] is not None and summary["steps_to_target"] <= 400
