"""Every experiment's verdict on hand-built run sets whose right answer is known: one where the
claim holds, one where it fails, and one too small for the exact tests to decide (`n too small`).
Where the analysis reads runs back through the results store (large_step_logreg,
edge_of_stability), the run sets are run directories and `analyse` itself is called; the presets
whose runs come out of `bench tune` are judged through the function their `analyse` calls."""

import json
import math

import lion_pytorch
import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from bench.experiments import edge_of_stability, large_step_logreg, lion_memory, reality_check, schedule_free
from bench.experiments.common import VERDICTS, Experiment, load_spec
from bench.experiments.state_bytes import StepMemory, measure_steps, state_storage_bytes
from bench.experiments.verdicts import supported
from bench.results import stats
from bench.results.synthetic import write_run

REPRODUCED, PARTLY, NOT = VERDICTS
INF = math.inf


def experiment(name, tmp_path, **spec):
    merged = OmegaConf.merge(load_spec(name, "test"), spec)
    return Experiment(name, "test", merged, tmp_path / "runs", tmp_path / "docs")


def test_supported_needs_every_comparison_significantly_better():
    assert supported(["better", "better"]) == REPRODUCED
    assert supported(["better", "not significant"]) == PARTLY
    assert supported(["better", "worse"]) == PARTLY
    assert supported(["not significant", "n too small"]) == NOT
    assert supported([]) == NOT


# --- reality_check: generic vs large-batch optimizer, steps to target --------------------------------

def rc(generic, special, batch_sizes=(64, 512)):
    steps = {}
    for bs in batch_sizes:
        steps[("adam", bs)], steps[("lamb", bs)] = list(generic), list(special)
    return reality_check.judge(steps, [("adam", "lamb")], list(batch_sizes))


def test_reality_check_generic_faster_at_every_batch_size_is_reproduced():
    # LAMB missed once (+inf): it ranks last, and the family of 2 still rejects at 6 seeds per side
    j = rc([100, 101, 102, 103, 104, 105], [200, 201, 202, 203, 204, INF])
    assert j.verdict == REPRODUCED
    assert [c.verdict for *_, c in j.cells] == ["better", "better"]
    assert all(c.p_adjusted == pytest.approx(2 * 2 / 924) for *_, c in j.cells)  # Holm over the 2 cells


def test_reality_check_generic_slower_is_not_reproduced():
    j = rc([300, 301, 302, 303, 304, 305], [100, 101, 102, 103, 104, 105])
    assert j.verdict == NOT
    assert [c.verdict for *_, c in j.cells] == ["worse", "worse"]


def test_reality_check_misses_decide_and_a_tie_of_misses_supports_nothing():
    j = reality_check.judge({("adam", 64): [10, 11, 12, 13, 14, 15], ("lamb", 64): [INF] * 6,
                             ("adam", 512): [INF] * 6, ("lamb", 512): [INF] * 6}, [("adam", "lamb")], [64, 512])
    assert [c.verdict for *_, c in j.cells] == ["better", "not significant"]
    assert j.verdict == PARTLY


def test_reality_check_three_seeds_cannot_decide():
    j = rc([100, 101, 102], [200, 201, 202])  # as far apart as seeds can be: still p = 0.1
    assert {c.verdict for *_, c in j.cells} == {"n too small"}
    assert {c.needs for *_, c in j.cells} == {stats.min_seeds(2)}
    assert j.verdict == NOT


# --- schedule_free: Schedule-Free vs the schedule tuned per T -------------------------------------------

LOW, HIGH = [0.10, 0.11, 0.12, 0.13, 0.14, 0.15], [0.20, 0.21, 0.22, 0.23, 0.24, 0.25]


def test_schedule_free_better_at_every_budget_is_reproduced():
    comparisons, verdict = schedule_free.judge([("logreg", t, LOW, HIGH) for t in (10, 20)])
    assert verdict == REPRODUCED and [c.verdict for c in comparisons] == ["better", "better"]


def test_schedule_free_worse_on_one_task_is_partly_and_worse_everywhere_is_not():
    comparisons, verdict = schedule_free.judge([("logreg", 10, HIGH, LOW), ("mlp", 10, LOW, HIGH)])
    assert [c.verdict for c in comparisons] == ["worse", "better"] and verdict == PARTLY
    _, verdict = schedule_free.judge([("logreg", t, HIGH, LOW) for t in (10, 20)])
    assert verdict == NOT


def test_schedule_free_diverged_seeds_are_misses_and_a_missing_schedule_leaves_the_family():
    comparisons, verdict = schedule_free.judge([("logreg", 10, LOW, [INF] * 6), ("logreg", 20, LOW, [])])
    assert comparisons[0].verdict == "better" and comparisons[0].p_adjusted == pytest.approx(2 / 924)
    assert comparisons[1] is None and verdict == PARTLY


def test_schedule_free_three_seeds_cannot_decide():
    comparisons, verdict = schedule_free.judge([("logreg", t, LOW[:3], HIGH[:3]) for t in (10, 20)])
    assert {c.verdict for c in comparisons} == {"n too small"} and verdict == NOT


# --- large_step_logreg: run directories through the store ------------------------------------------------

def logistic_run(root, lr, seed, steps_to_target, losses):
    run = write_run(root, task="separable_logistic", optimizer="sgd", lr=lr, seed=seed, metric="train/err",
                    value=0.0 if steps_to_target is not None else 0.1, target=0.0, steps=len(losses) - 1,
                    steps_to_target=steps_to_target)
    (run / "metrics.jsonl").write_text("".join(json.dumps({"step": i, "train/loss": v}) + "\n"
                                               for i, v in enumerate(losses)))


def slow_and_monotone(seed):
    return [math.log(2) * (1 - 0.001 * (i + seed)) for i in range(40)]


def fast_through_a_spike(seed):
    # up to 5-10× the starting loss on step 1, then down fast: separated from step 3 or 4
    return [math.log(2), math.log(2) * (5 + seed), 0.3, *(0.1 / (i + 1) for i in range(37))]


def large_step(tmp_path, seeds, large_is_fast=True):
    exp = experiment("large_step_logreg", tmp_path, lrs=[1, 1000], seeds=list(range(seeds)))
    for seed in range(seeds):
        if large_is_fast:
            logistic_run(exp.runs_root, 1, seed, None, slow_and_monotone(seed))
            logistic_run(exp.runs_root, 1000, seed, 3 + seed % 2, fast_through_a_spike(seed))
        else:  # the large step size never separates and its loss never rises; the small one does
            logistic_run(exp.runs_root, 1, seed, 20 + seed, slow_and_monotone(seed))
            logistic_run(exp.runs_root, 1000, seed, None, slow_and_monotone(seed))
    exp.read_only = True
    return large_step_logreg.analyse(exp)


def test_large_step_sooner_through_a_higher_loss_is_reproduced(tmp_path):
    finding = large_step(tmp_path, 6)
    assert finding.verdict == REPRODUCED
    assert "**sooner** (Holm p = 0.0022)" in finding.body
    assert "non-monotone by the interval: yes" in finding.summary


def test_large_step_that_is_slower_and_monotone_is_not_reproduced(tmp_path):
    finding = large_step(tmp_path, 6, large_is_fast=False)
    assert finding.verdict == NOT
    assert "**later** (Holm p = 0.0022)" in finding.body


def test_large_step_with_three_seeds_says_n_too_small(tmp_path):
    finding = large_step(tmp_path, 3)
    assert finding.verdict == NOT
    assert "n too small (needs ≥ 4 seeds per side" in finding.summary
    assert "raise `seeds:` under `scales: test:` in bench/conf/experiment/large_step_logreg.yaml" in finding.body


def test_large_step_judge_counts_a_miss_as_infinitely_many_steps():
    j = large_step_logreg.judge({1.0: [INF] * 6, 100.0: [INF] * 6, 1000.0: [4, 4, 5, 3, 4, 6]},
                                peak=[2.0] * 6, above=[1.5] * 6)
    assert j.comparisons[100.0].verdict == "not significant"  # misses tie with misses
    assert j.comparisons[1000.0].verdict == "better" and j.verdict == REPRODUCED


# --- edge_of_stability: run directories with sharpness and loss curves ---------------------------------

def eos_run(root, lr, seed, reaches=True, budget=200):
    edge = 2 / lr
    run = write_run(root, task="small_mlp", optimizer="sgd", lr=lr, seed=seed, metric="val/acc", mode="max", value=0.9,
              steps=budget)
    lines = []
    for step in range(budget + 1):
        record = {"step": step, "train/loss": (1 + 0.05 * (-1) ** step) / (1 + step / 20)}  # falls, not monotone
        if step % 10 == 0:
            top = edge * (1 + 0.01 * ((step + seed) % 3 - 1)) if reaches else 0.5 * edge
            record["probe/sharpness"] = min(3 + step * (top - 3) / 60, top) if top > 3 else top
        lines.append(json.dumps(record))
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def edge(tmp_path, seeds, reaches=True):
    exp = experiment("edge_of_stability", tmp_path, lrs=[0.2, 0.4], seeds=list(range(seeds)), task={"budget": 200})
    for lr in (0.2, 0.4):
        for seed in range(seeds):
            eos_run(exp.runs_root, lr, seed, reaches)
    exp.read_only = True
    return edge_of_stability.analyse(exp)


def test_edge_of_stability_hovering_at_two_over_eta_is_reproduced(tmp_path):
    finding = edge(tmp_path, 6)
    assert finding.verdict == REPRODUCED
    assert "The claim holds at 2 of 2 step sizes" in finding.summary
    assert "**lower** (Holm p = 0.0022)" in finding.body  # the plateau at η=0.4 sits below η=0.2's


def test_edge_of_stability_that_never_reaches_the_edge_is_not_reproduced(tmp_path):
    finding = edge(tmp_path, 6, reaches=False)
    assert finding.verdict == NOT and "0 of 12 runs reached" in finding.summary


def test_edge_of_stability_with_three_seeds_says_n_too_small(tmp_path):
    finding = edge(tmp_path, 3)
    assert finding.verdict == NOT
    assert "n too small (needs ≥ 4 seeds per side" in finding.body  # one adjacent pair: a family of 1
    assert "raise `seeds:` under `scales: test:` in bench/conf/experiment/edge_of_stability.yaml" in finding.body


# --- lion_memory: what a step really allocates, and each seed's optimum ---------------------------------

class Tiny:
    """Just enough of a task for `measure_steps`: a fixed batch and a squared loss."""

    def __init__(self):
        self.x = torch.randn(16, 32, generator=torch.Generator().manual_seed(0))

    def batches(self):
        while True:
            yield self.x

    def loss(self, model, x):
        return model(x).pow(2).mean()


class LionWithASecondBuffer(lion_pytorch.Lion):
    """lion-pytorch's Lion as it would be with a second moment it never needed: 8 B/param."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p].setdefault("exp_avg_sq", torch.zeros_like(p))
        return loss


def measured(lion_cls):
    rows = []
    for name, cls in (("lion", lion_cls), ("adamw", torch.optim.AdamW)):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))
        params = list(model.parameters())
        numbers = measure_steps(model, cls(params, lr=1e-3), Tiny(), steps=3)
        rows.append(StepMemory("tiny", name, "reference", sum(p.numel() for p in params), len(params), **numbers))
    return rows


def test_memory_of_the_reference_lion_is_half_of_adamw():
    rows = measured(lion_pytorch.Lion)
    holds, per_param = lion_memory.memory_claim(rows, ["tiny"])
    assert holds and per_param[("tiny", "lion")] == 4.0
    lion = rows[0]
    # allocation tracking agrees with the storages: the first step keeps exactly the momentum...
    assert lion.first_step_kept == lion.state_bytes
    # ...and each later step makes two temporaries per parameter (clone, then add), 8 B/param in all
    assert lion.per_param("step_allocated") == pytest.approx(8.0)
    largest = 64 * 32 * 4
    assert lion.step_peak == 2 * largest  # they live one parameter at a time


def test_memory_claim_fails_for_a_lion_that_keeps_two_buffers():
    holds, per_param = lion_memory.memory_claim(measured(LionWithASecondBuffer), ["tiny"])
    assert not holds and per_param[("tiny", "lion")] == 8.0


def test_state_storages_are_counted_once_however_many_views_point_at_them():
    p = torch.nn.Parameter(torch.zeros(10))
    opt = torch.optim.SGD([p], lr=0.1)
    buffer = torch.zeros(20)
    opt.state[p] = {"a": buffer[:10], "b": buffer[10:], "c": [buffer], "d": torch.zeros(5, dtype=torch.float64)}
    assert state_storage_bytes(opt) == 20 * 4 + 5 * 8


def test_seed_optimum_lies_between_grid_points():
    grid = np.array([1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2])
    lr, how = lion_memory.seed_optimum(grid, (np.log10(grid) + 2.8) ** 2)  # a parabola in log lr: exact
    assert how == "parabola" and lr == pytest.approx(10 ** -2.8)
    assert lion_memory.seed_optimum(grid, [5, 4, 3, 2, 1]) == (pytest.approx(1e-2), "edge")
    assert lion_memory.seed_optimum(grid, [5, 4, 1, INF, 3]) == (pytest.approx(1e-3), "grid")
    assert math.isnan(lion_memory.seed_optimum(grid, [INF] * 5)[0])


def lr_frame(adamw_centres, lion_centres):
    grid = 10 ** np.arange(-5, -0.99, 0.25)
    rows = [{"optimizer": o, "lr": lr, "seed": seed, "loss": (np.log10(lr) - c) ** 2}
            for o, centres in (("adamw", adamw_centres), ("lion", lion_centres))
            for seed, c in enumerate(centres) for lr in grid]
    return pd.DataFrame(rows)


def judge_lr_on(adamw_centres, lion_centres):
    frame = lr_frame(adamw_centres, lion_centres)
    return lion_memory.judge_lr(lion_memory.optima(frame, "adamw")[0], lion_memory.optima(frame, "lion")[0], (3, 10))


JITTER = [-0.05, 0.03, 0.0, 0.04, -0.02, 0.01]


def test_lion_lr_ratio_inside_the_band_is_reproduced():
    j = judge_lr_on([-2.3 + d for d in JITTER], [-3.0 + d for d in JITTER[::-1]])  # ~10^0.7 = 5×
    assert j.comparison.verdict == "better" and j.inside
    assert 3 < j.ratio.lo < j.ratio.value < j.ratio.hi < 10
    assert lion_memory.verdict(True, j) == REPRODUCED
    assert lion_memory.verdict(False, j) == PARTLY  # the memory half failing costs the whole claim


def test_lion_lr_equal_to_adamws_is_not_reproduced():
    j = judge_lr_on([-2.3 + d for d in JITTER], [-2.3 + d for d in JITTER[::-1]])
    assert j.comparison.verdict == "not significant" and not j.inside
    assert lion_memory.verdict(False, j) == NOT


def test_lion_lr_with_three_seeds_says_n_too_small():
    j = judge_lr_on([-2.3, -2.25, -2.35], [-3.0, -3.05, -2.95])
    assert j.comparison.verdict == "n too small" and j.comparison.needs == 4
    assert not j.ratio.has_interval and not j.inside
    assert lion_memory.verdict(True, j) == PARTLY


@pytest.mark.parametrize("scale", ["test", "cpu", "gpu"])
def test_memory_references_import(scale):
    for path in load_spec("lion_memory", scale).memory.reference.values():
        assert isinstance(lion_memory._import(path), type)
