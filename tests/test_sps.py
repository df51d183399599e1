"""The Polyak step size needs f*: the runner passes the task's optimum, a task without one is refused
up front, and the step follows SPS_max (the parity table checks 100 steps against a twin)."""

from __future__ import annotations

import torch
from conftest import only_run, read_run

from bench.optimizers.sps import SPS, tasks_with_optimum


def test_runs_on_a_task_with_a_known_optimum(bench_cli, runs_root):
    res = bench_cli("run", "task=quadratic", "optimizer=sps", "steps=30", f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    summary, lines = read_run(only_run(runs_root))
    assert summary["status"] == "ok" and summary["optimum"] is not None
    assert summary["hyperparameters"] == {"lr": 1.0, "c": 0.5}  # f* comes from the task, not the run id
    assert lines[-1]["train/subopt"] < 0.1 * lines[0]["train/subopt"], lines


def test_a_task_without_an_optimum_is_refused_before_anything_is_written(bench_cli, runs_root):
    res = bench_cli("run", "task=llama_tiny", "optimizer=sps", "steps=2", f"runs_root={runs_root}", "progress=off")
    assert res.code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in res.output, res.output
    assert "needs the task's optimal value f*" in lines[0] and "logreg" in lines[0] and "quadratic" in lines[0]
    assert "llama_tiny" not in lines[0].split("use a task that has one:")[1]
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_the_tasks_offered_are_those_that_know_their_optimum():
    offered = tasks_with_optimum()
    assert {"logreg", "quadratic", "rosenbrock"} <= set(offered)
    assert not {"llama_tiny", "cifar10", "fashion_mnist"} & set(offered)


def polyak_step(loss_value: float, optimum: float, lr: float, c: float = 0.5):
    """One SPS step on f(w) = 0.5 ||w||^2 + offset, where ||g||^2 = 2 (f - offset); returns w after."""
    w = torch.nn.Parameter(torch.tensor([3.0, 4.0], dtype=torch.float64))  # 0.5 ||w||^2 = 12.5
    offset = loss_value - 12.5
    opt = SPS([w], optimum=optimum, lr=lr, c=c)

    def closure():
        opt.zero_grad()
        loss = 0.5 * (w * w).sum() + offset
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), opt.last_step_size


def test_step_is_the_capped_polyak_step():
    # gap 12.5, ||g||^2 = 25, c = 0.5: gamma = 12.5 / 12.5 = 1, which lands exactly on the minimiser
    w, size = polyak_step(12.5, 0.0, lr=10.0)
    assert size == 1.0 and torch.equal(w, torch.zeros(2, dtype=torch.float64))
    w, size = polyak_step(12.5, 0.0, lr=0.2)  # the cap gamma_b binds
    assert size == 0.2 and torch.allclose(w, torch.tensor([2.4, 3.2], dtype=torch.float64))


def test_a_loss_below_the_optimum_does_not_step_uphill():
    w, size = polyak_step(1.0, 2.0, lr=10.0)  # a minibatch below f*: the gap is clamped at 0
    assert size == 0.0 and torch.equal(w, torch.tensor([3.0, 4.0], dtype=torch.float64))
