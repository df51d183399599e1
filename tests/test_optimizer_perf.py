"""`bench perf optimizers` on a tiny model (the real table needs >= 10M parameters and minutes):
the command runs, prints one row per optimizer with its implementation path and its peers' times,
rejects bad input, and no implementation can skip the work it is timed on."""

from __future__ import annotations

import re
import time

import pytest
import torch

from bench.optimizers import perf


def test_perf_optimizers_prints_a_row_per_optimizer(bench_cli):
    res = bench_cli("perf", "optimizers", "lion", "adamw", "muon", "--width", "32", "--layers", "2", "-n", "3",
                    "--clock", "cpu", "--threads", "1")
    assert res.code == 0, res.output
    rows = {line.split("|")[1].strip(): line for line in res.stdout.splitlines() if re.match(r"\| \w+ \| \w+ \|", line)}
    assert set(rows) == {"optimizer", "lion", "adamw", "muon"}
    assert "pytorch-optimizer ms | heavyball ms" in rows["optimizer"]
    assert "| loop |" in rows["lion"] and "| fused |" in rows["adamw"]  # tiny model: no compile under auto
    lion = [c.strip() for c in rows["lion"].split("|")[1:-1]]
    assert float(lion[2]) > 0 and float(lion[3]) > 0  # ms/step and copy fraction
    assert float(lion[5]) > 0 and lion[6] == "-" and lion[7].endswith("x")  # pytorch-optimizer's Lion only
    adamw = [c.strip() for c in rows["adamw"].split("|")[1:-1]]
    assert adamw[5] == "-" and float(adamw[6]) > 0 and adamw[7].endswith("x")  # heavyball's AdamW only
    assert [c.strip() for c in rows["muon"].split("|")[1:-1]][3] == "-"  # not element-wise: no fraction
    assert "heavyball 3." in res.stdout and "(eager)" in res.stdout  # tiny model: peers run eager, as ours


def test_perf_optimizers_rejects_unknown_names_and_closure_optimizers(bench_cli):
    res = bench_cli("perf", "optimizers", "nosuch")
    assert res.code == 2 and "unknown optimizer 'nosuch'" in res.output
    res = bench_cli("perf", "optimizers", "sam", "--width", "8", "--layers", "1", "-n", "1")
    assert res.code == 2 and "closure" in res.output


def _timed_twice(make) -> perf.Contender:
    contender = perf.Contender(make, 4, 1, torch.device("cpu"))
    copy = perf.Copy(20, torch.device("cpu"))
    contender.timed(copy, torch.device("cpu"), time.perf_counter, check=True)
    contender.timed(copy, torch.device("cpu"), time.perf_counter, check=True)
    return contender


def test_every_timed_step_gets_the_same_gradients_back():
    """heavyball takes p.grad away after reading it; without re-attaching, its later timed steps
    would skip every parameter. The gradient is also restored where a step writes into it."""
    import heavyball

    with perf._heavyball_mode(compile=False):  # eager: a tiny model never earns back the compile
        contender = _timed_twice(lambda model: heavyball.SGD(model.parameters(), lr=0.1, beta=0.9))
    assert contender.params[0].grad is None  # consumed by the last step: re-attaching was needed
    contender.attach()
    for p, g, pristine in zip(contender.params, contender.grads, contender.pristine, strict=True):
        assert p.grad is g and torch.equal(g, pristine)


class Idle(torch.optim.Optimizer):
    """Does nothing on step(): the timing must refuse it rather than report a fast step."""

    def __init__(self, params):
        super().__init__(params, {})

    def step(self, closure=None):
        return None


def test_a_step_that_leaves_the_parameters_unchanged_is_refused():
    with pytest.raises(ValueError, match="skipped the step"):
        _timed_twice(lambda model: Idle(model.parameters()))


def test_a_missing_peer_package_leaves_its_column_empty(monkeypatch):
    """Peers are dev extras: without heavyball the table still runs, saying why the column is empty."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "heavyball" else real(name, *a))
    lines = []
    rows = perf.run(["adamw"], width=8, layers=1, repeats=1, clock="cpu", echo=lines.append)
    assert "heavyball (not installed: its column stays empty)" in "\n".join(lines)
    assert rows[0].peer_ms == {} and rows[0].speedup is None
