"""Logistic regression: f* against scikit-learn, the on-disk cache, data handling, resumable
batches, and `bench run task=logreg` end to end."""

import itertools
import json
import math
import os
import subprocess
import sys
import warnings

import pytest
import torch
from conftest import only_run, read_run
from omegaconf import OmegaConf

from bench import BenchError
from bench.tasks import logreg as L


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets an empty f* cache, so a stale value elsewhere cannot hide a bug."""
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def sklearn_solution(task: L.LogReg) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's (W, b), fitted tightly in float64 with C = 1/(n l2)."""
    from sklearn.linear_model import LogisticRegression

    x, y = task.x64.cpu().numpy(), task.y.cpu().numpy()
    clf = LogisticRegression(C=1 / (len(y) * task.l2), fit_intercept=True, solver="lbfgs", tol=1e-12, max_iter=10_000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a ConvergenceWarning would make the comparison meaningless
        clf.fit(x, y)
    return torch.tensor(clf.coef_), torch.tensor(clf.intercept_)


def sklearn_objective(task: L.LogReg) -> float:
    """Our objective F at scikit-learn's solution."""
    return L.objective(*sklearn_solution(task), task.x64, task.y, task.l2).item()


@pytest.mark.parametrize("dataset,classes", [("breast_cancer", 2), ("wine", 3)])
def test_optimum_matches_scikit_learn(dataset, classes):
    task = L.LogReg(dataset=dataset, l2=1e-3)
    assert task.classes == classes
    weight, bias = sklearn_solution(task)
    reference = L.objective(weight, bias, task.x64, task.y, task.l2).item()
    # f* is the minimum: scikit-learn's point can only be as good, and here it is as good to 1e-8.
    assert task.optimum <= reference * (1 + 1e-12)
    assert reference == pytest.approx(task.optimum, rel=1e-8)
    assert task.solver["newton_decrement"] / 2 <= L.RELATIVE_ACCURACY * task.optimum
    assert task.solver["gradient_norm"] < 1e-10
    # A model holding that solution is evaluated at (almost exactly) zero suboptimality.
    model = task.model().double()
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    assert 0 <= task.evaluate(model)["train/subopt"] < 1e-8 * task.optimum


@pytest.mark.parametrize("dataset,classes", [("breast_cancer", 2), ("iris", 3)])
def test_zero_model_has_objective_log_k(dataset, classes):
    # Zero logits give every class probability 1/K and no penalty: F(0) = log K exactly.
    task = L.LogReg(dataset=dataset)
    metrics = task.evaluate(task.model())
    assert metrics["train/loss"] == pytest.approx(math.log(classes), rel=1e-12)
    assert metrics["train/subopt"] == pytest.approx(math.log(classes) - task.optimum, rel=1e-12)
    assert set(metrics) == {"train/loss", "val/loss", "train/subopt", "val/acc"}


def test_optimum_is_cached_on_disk_and_reused(private_cache, monkeypatch):
    first = L.LogReg(dataset="wine", l2=1e-2)
    assert not first.cache_hit and len(list(private_cache.glob("logreg/*.json"))) == 1

    def no_solving(*args, **kwargs):
        raise AssertionError("f* recomputed despite the cache")

    monkeypatch.setattr(L, "newton_optimum", no_solving)
    second = L.LogReg(dataset="wine", l2=1e-2)
    assert second.cache_hit and second.optimum == first.optimum  # bit for bit: json keeps every digit
    # Another l2 or another split is another problem, so another entry.
    with pytest.raises(AssertionError, match="recomputed"):
        L.LogReg(dataset="wine", l2=2e-2)
    with pytest.raises(AssertionError, match="recomputed"):
        L.LogReg(dataset="wine", l2=1e-2, split_seed=1)


def test_corrupt_cache_entry_is_recomputed(private_cache):
    optimum = L.LogReg(dataset="iris").optimum
    (entry,) = private_cache.glob("logreg/*.json")
    entry.write_text("{not json")
    again = L.LogReg(dataset="iris")
    assert not again.cache_hit and again.optimum == optimum
    assert json.loads(entry.read_text())["optimum"] == optimum


def test_split_seed_fixes_the_instance_and_defaults_to_the_run_seed():
    a, b = L.LogReg(dataset="iris", seed=0), L.LogReg(dataset="iris", seed=1)
    assert a.optimum != b.optimum
    fixed = L.LogReg(dataset="iris", seed=1, split_seed=0)
    assert fixed.optimum == a.optimum and torch.equal(fixed.x, a.x)


def test_bad_options_are_one_line_errors():
    with pytest.raises(BenchError, match="choose one of: breast_cancer, digits, wine, iris, separable"):
        L.LogReg(dataset="mnist")
    with pytest.raises(BenchError, match="l2 must be > 0"):
        L.LogReg(l2=0.0)
    with pytest.raises(BenchError, match="val_fraction"):
        L.LogReg(dataset="iris", val_fraction=1.0)


def test_standardisation_uses_training_statistics_and_survives_constant_pixels():
    x, _, xv, _ = L.load_data("digits", split_seed=0, val_fraction=0.2, n=0, dim=0, margin=0.0)
    assert x.shape[1] == 64 and torch.isfinite(xv).all()
    varying = x.std(0) > 1e-12
    assert torch.allclose(x[:, varying].mean(0), torch.zeros(int(varying.sum()), dtype=x.dtype), atol=1e-12)
    assert torch.allclose(x[:, varying].std(0), torch.ones(int(varying.sum()), dtype=x.dtype))
    assert (~varying).any() and xv.abs().max() < 100  # blank pixels do not blow up validation rows


def test_separable_data_keeps_its_margin():
    x, y, normal = L.separable(2000, 5, 0.3, torch.Generator().manual_seed(0))
    distance = (2 * y - 1).double() * (x @ normal)
    assert distance.min() >= 0.3 - 1e-12 and distance.min() < 0.35  # the margin is exact, not loose
    assert 0.4 < y.double().mean() < 0.6
    task = L.LogReg(dataset="separable", n=400, dim=5, margin=0.3, l2=1e-3)
    assert task.classes == 2 and task.x.shape == (320, 5) and task.xv.shape == (80, 5)
    assert sklearn_objective(task) == pytest.approx(task.optimum, rel=1e-8)


def test_minibatches_resume_and_cover_each_epoch():
    task = L.LogReg(dataset="breast_cancer", batch_size=64, seed=2)  # 455 training rows: 7 batches/epoch
    skipped = list(itertools.islice(task.batches(), 20))
    resumed = list(itertools.islice(task.batches(start=16), 4))
    for (xa, ya), (xb, yb) in zip(skipped[16:], resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    epoch = torch.cat([x for x, _ in skipped[:7]])
    assert len(torch.unique(epoch, dim=0)) == 7 * 64  # no row twice within an epoch
    full = next(L.LogReg(dataset="breast_cancer", batch_size=0).batches())
    assert len(full[0]) == 455


def test_training_loss_is_an_estimate_of_the_objective():
    task = L.LogReg(dataset="wine", l2=1e-2)
    model = task.model()
    with torch.no_grad():
        model.weight.normal_(generator=torch.Generator().manual_seed(0))
    full = task.evaluate(model)["train/loss"]
    assert task.loss(model, next(task.batches())).item() == pytest.approx(full, rel=1e-5)
    # Minibatch losses (same penalty, a sample of the examples) average to the full objective.
    task.batch_size = 8
    losses = [task.loss(model, b).item() for b in itertools.islice(task.batches(), 17 * 20)]  # 20 epochs
    assert sum(losses) / len(losses) == pytest.approx(full, rel=0.05)
    assert max(losses) > 1.2 * min(losses)


def test_data_present_for_bundled_and_generated_data():
    assert L.LogReg.data_present(OmegaConf.create({"dataset": "digits"}))
    assert L.LogReg.data_present(OmegaConf.create({"dataset": "separable"}))


def test_bench_run_logreg_end_to_end(bench_cli, runs_root):
    res = bench_cli("run", "task=logreg", "optimizer=adamw", "optimizer.lr=0.1", "steps=30", "batch_size=32",
                    f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    summary, lines = read_run(only_run(runs_root))
    assert summary["status"] == "ok" and summary["metric"] == "train/subopt" and summary["mode"] == "min"
    assert summary["optimum"] == pytest.approx(L.LogReg(dataset="breast_cancer", seed=0).optimum, rel=1e-15)
    assert summary["task_info"]["dataset"] == "breast_cancer" and summary["batch_size"] == 32
    final = summary["final"]
    assert 0 < final["train/subopt"] < lines[0]["train/subopt"]
    assert final["val/acc"] > 0.9


@pytest.mark.parametrize("dataset", ["breast_cancer", "digits", "wine", "iris"])
def test_bundled_reader_matches_scikit_learn(dataset):
    import sklearn.datasets

    from bench.tasks import bundled

    x, y = bundled.load(dataset)
    x_ref, y_ref = getattr(sklearn.datasets, f"load_{dataset}")(return_X_y=True)
    assert torch.equal(x, torch.tensor(x_ref, dtype=torch.float64))
    assert torch.equal(y, torch.tensor(y_ref, dtype=torch.int64))


def test_a_logreg_run_does_not_import_scikit_learn(tmp_path):
    """The bundled files are read directly: scikit-learn's import (scipy.stats, pandas) costs more
    than a tiny run trains."""
    code = ("import sys; from bench.tasks.logreg import LogReg; "
            "LogReg(dataset='digits', seed=0, device='cpu'); "
            "print(sorted(m for m in ('sklearn', 'pandas', 'scipy.stats') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "BENCH_CACHE": str(tmp_path)}, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
