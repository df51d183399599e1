"""`bench check`: the regression rule on hand-worked cases, and the command end to end on a
tiny sweep (10 logreg runs of 60 steps, shared by the tests of this module). The rule's
family-wise false-alarm rate and its power are measured in tests/test_check_calibration.py."""

import json
import math

import pytest
from scipy.stats import mannwhitneyu

from bench.results.check import read_baseline
from bench.results.check_rule import Cell, compare, sweep_warning
from bench.sweep.check_sweep import check

TOL = {"rel": 0.02, "abs": 1e-6, "steps_rel": 0.1}
SWEEP = """\
seeds: {seeds}
overrides: [device=cpu, steps=60]
cells:
  - task: logreg
    optimizers:
      sgd: {sgd}
      adamw: [optimizer.lr=0.01]
"""
FIVE = "[0, 1, 2, 3, 4]"  # 2 cells × 2 quantities = 4 one-sided tests: 5 seeds are the fewest at 5%


def cell(final, status=None, steps=None, mode="min", lr=0.1, metric="val/loss"):
    n = len(final)
    return Cell.from_json("t/o", {"metric": metric, "mode": mode, "seeds": list(range(n)), "final": list(final),
                                  "status": list(status or ["ok"] * n), "steps_to_target": list(steps or [10] * n),
                                  "hyperparameters": {"lr": lr}})


def gate(base, now, others=8, alpha=0.05):
    """`base` → `now` judged beside `others` cells that reproduce their baseline bit for bit, as in
    a 9-cell sweep like ci.yaml (a family of 18 tests)."""
    quiet = {f"z/{i}": cell([0.5 + 0.01 * s for s in range(len(base.losses))]) for i in range(others)}
    return compare({"t/o": base, **quiet}, {"t/o": now, **quiet}, TOL, alpha)


def row(g, label="t/o"):
    return next(r for r in g.rows if r.label == label)


BASE6 = [1.00, 1.01, 1.02, 1.03, 1.04, 1.05]
WORSE6 = [1.20, 1.21, 1.22, 1.23, 1.24, 1.25]


# --- the rule ----------------------------------------------------------------------------------
def test_clear_regression_at_six_seeds_regresses():
    g = gate(cell(BASE6), cell(WORSE6))
    r = row(g)
    # every new seed above every baseline seed: exact p = 1/C(12, 6) = 1/924 (as scipy's exact test),
    # the smallest of 18 p-values, so Holm multiplies it by 18: 0.0195 ≤ 0.05
    p = mannwhitneyu(WORSE6, BASE6, alternative="greater", method="exact").pvalue
    assert p == pytest.approx(1 / 924, abs=1e-12)
    assert g.family == 18 and r.final.p_worse == pytest.approx(18 / 924, abs=1e-12)
    assert r.verdict == "regressed" and r.failing and "val/loss worse (p 0.019 after Holm)" in r.notes[0]
    assert g.warning() is None and g.needs == 6
    assert all(x.verdict == "holds (identical)" for x in g.rows if x.label != "t/o")
    # the same separation one seed short: 18/C(10, 5) = 0.071 > 0.05, no outcome can fail
    assert row(gate(cell(BASE6[:5]), cell(WORSE6[:5]))).verdict == "n too small (needs ≥ 6 seeds)"


def test_the_same_at_three_seeds_cannot_fail_and_says_how_many_seeds_it_needs():
    g = gate(cell(BASE6[:3]), cell(WORSE6[:3]))
    r = row(g)
    assert r.final.p_worse == pytest.approx(min(1, 18 / 20)) and not r.failing  # smallest p at 3 v 3: 1/20
    assert r.verdict == "n too small (needs ≥ 6 seeds)" and not r.can_reject and r.detectable == math.inf
    warning = g.warning("ci.yaml")
    assert warning.startswith("warning: 9 of 9 cells cannot fail at 3 baseline / 3 new seeds")
    assert "needs ≥ 6 seeds per side: set `seeds:` in ci.yaml to 6 seeds" in warning and "\n" not in warning
    assert "cannot find a regression of any size" in g.power()
    # a sweep without a baseline yet (its first --update) is warned the same way
    assert "the gate needs ≥ 6 seeds per side" in sweep_warning(9, 3, 0.05, "ci.yaml")
    assert sweep_warning(9, 6, 0.05, "ci.yaml") is None
    # a family of 2 at alpha 0.2 can reject at 3 seeds: 2 × 1/20 = 0.1
    alone = compare({"t/o": cell(BASE6[:3])}, {"t/o": cell(WORSE6[:3])}, TOL, alpha=0.2)
    assert alone.rows[0].verdict == "regressed" and alone.warning() is None


def test_bit_identical_rows_say_so():
    same = row(gate(cell(BASE6), cell(BASE6)))
    assert same.verdict == "holds (identical)" and same.identical and "bit-identical to the baseline" in same.notes
    # one seed a last bit off: not identical, and far from significant
    nudged = row(gate(cell(BASE6), cell([BASE6[0] + 2e-16, *BASE6[1:]])))
    assert nudged.verdict == "holds" and not nudged.identical and not nudged.notes


def test_floors_stop_tiny_but_consistent_shifts():
    base = [0.5] * 6  # every new seed above every baseline seed (p = 18/924 after Holm) by a hair
    tiny = row(gate(cell(base), cell([0.5 + 1e-9] * 6)))
    assert tiny.final.p_worse <= 0.05 and tiny.verdict == "holds"
    assert "worse (p 0.019 after Holm) but its median moved less than the floor 0.01" in tiny.notes[0]
    # the relative floor is 2% of |0.5| = 0.01
    assert row(gate(cell(base), cell([0.509] * 6))).verdict == "holds"
    assert row(gate(cell(base), cell([0.511] * 6))).verdict == "regressed"
    assert row(gate(cell([0.0] * 6), cell([5e-7] * 6))).verdict == "holds"  # the absolute floor, 1e-6
    # steps-to-target: 10% of the baseline median, at least one step
    assert row(gate(cell(BASE6, steps=[10] * 6), cell(BASE6, steps=[11] * 6))).verdict == "holds"
    slower = row(gate(cell(BASE6, steps=[10] * 6), cell(BASE6, steps=[12] * 6)))
    assert slower.verdict == "regressed" and slower.steps.verdict == "regressed" and slower.final.verdict == "holds"


def test_improvements_are_reported_and_never_fail():
    r = row(gate(cell(WORSE6), cell(BASE6)))
    assert r.verdict == "improved" and not r.failing and r.final.p_better == pytest.approx(18 / 924)


def test_misses_rank_last_and_more_divergence_is_a_note():
    acc = [0.80, 0.81, 0.82, 0.83, 0.84, 0.85]
    base = cell(acc, mode="max", metric="val/acc")
    # every seed diverges now: all 6 misses rank above the baseline's losses, p = 1/924
    gone = row(gate(base, cell([None] * 6, status=["diverged"] * 6, mode="max", metric="val/acc")))
    assert gone.verdict == "regressed" and "6/6 seeds diverged (baseline 0/6)" in gone.notes
    # one seed diverges, the rest reproduce: reported, but the rank test does not call it a regression
    one = row(gate(base, cell([*acc[:5], None], status=["ok"] * 5 + ["diverged"], mode="max", metric="val/acc")))
    assert one.verdict == "holds" and one.notes == ["1/6 seeds diverged (baseline 0/6)"]
    # higher is better: lower accuracy is the regression
    assert row(gate(base, cell([a - 0.1 for a in acc], mode="max", metric="val/acc"))).verdict == "regressed"
    changed = row(gate(base, cell(acc, mode="max", metric="val/acc", lr=0.2)))
    assert changed.verdict == "holds (identical)" and "hyperparameters changed: lr 0.1 → 0.2" in changed.notes


def test_missing_new_and_changed_cells_stay_outside_the_family():
    b, other = cell(BASE6), cell(BASE6, metric="val/acc", mode="max")
    g = compare({"a/x": b, "b/x": b, "c/x": b}, {"b/x": other, "c/x": b, "d/x": b}, TOL, 0.05)
    assert [r.verdict for r in g.rows] == ["missing", "changed", "holds (identical)", "new"]
    assert g.family == 2 and [r.failing for r in g.rows] == [True, True, False, False]


def test_old_metric_names_in_a_baseline_read_as_current(tmp_path):
    data = {"cells": {"logreg/sgd": {"metric": "val/subopt", "mode": "min", "seeds": [0], "final": [0.1],
                                     "status": ["ok"], "steps_to_target": [None]}}}
    (tmp_path / "b.json").write_text(json.dumps(data))
    assert read_baseline(tmp_path / "b.json")["cells"]["logreg/sgd"].metric == "train/subopt"


# --- the command -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny check sweep with its baseline written, and its runs root."""
    root = tmp_path_factory.mktemp("check")
    sweep = root / "tiny.yaml"
    sweep.write_text(SWEEP.format(seeds=FIVE, sgd="[]"))
    report = check(str(sweep), runs_root=str(root / "runs"), update=True, log=lambda line: None)
    assert report.exit_code == 0 and report.baseline_path == root / "tiny_baseline.json"
    return root


def test_unchanged_tree_passes(bench_cli, tiny):
    res = bench_cli("check", str(tiny / "tiny.yaml"), "--runs-root", str(tiny / "runs"))
    assert res.code == 0, res.output
    assert "(10 reused)" in res.stderr  # finished runs are not repeated
    assert "result: 2 holds (identical) -> ok" in res.stdout
    assert "one-sided exact Wilcoxon–Mann–Whitney rank test, the 4 p-values Holm-adjusted" in res.stdout
    assert "at alpha 0.05" in res.stdout and "max(2% of |baseline|, 1e-06)" in res.stdout
    assert "power: at 5 baseline / 5 new seeds" in res.stdout and "warning" not in res.stdout
    baseline = json.loads((tiny / "tiny_baseline.json").read_text())
    assert sorted(baseline["cells"]) == ["logreg/adamw", "logreg/sgd"]
    assert baseline["env"]["threads"] == "1" and baseline["cells"]["logreg/sgd"]["seeds"] == [0, 1, 2, 3, 4]


def test_worse_optimizer_fails_with_table(bench_cli, tiny):
    # sgd at 1/100 of its learning rate (0.1 -> 0.001) makes far less progress in the same 60 steps
    worse = tiny / "worse.yaml"
    worse.write_text(SWEEP.format(seeds=FIVE, sgd="[optimizer.lr=0.001]"))
    res = bench_cli("check", str(worse), "--baseline", str(tiny / "tiny_baseline.json"),
                    "--runs-root", str(tiny / "runs"), "--format", "md")
    assert res.code == 1, res.output
    rows = {line.split("|")[1].strip(): line for line in res.stdout.splitlines() if line.startswith("| logreg/")}
    assert "| regressed |" in rows["logreg/sgd"] and "lr 0.1 → 0.001" in rows["logreg/sgd"]
    assert "| holds (identical) |" in rows["logreg/adamw"]
    assert "result: 1 holds (identical), 1 regressed -> FAIL" in res.stdout


def test_too_few_seeds_warn_instead_of_passing_silently(bench_cli, tiny):
    # the same worse sgd, 3 seeds against the 5-seed baseline: 4 × 1/C(8, 3) = 0.071 > 0.05
    few = tiny / "few.yaml"
    few.write_text(SWEEP.format(seeds="[0, 1, 2]", sgd="[optimizer.lr=0.001]"))
    res = bench_cli("check", str(few), "--baseline", str(tiny / "tiny_baseline.json"),
                    "--runs-root", str(tiny / "runs"), "--format", "json")
    assert res.code == 0, res.output
    report = json.loads(res.stdout)
    assert report["warning"].startswith("warning: 2 of 2 cells cannot fail at 5 baseline / 3 new seeds")
    assert "needs ≥ 5 seeds per side" in report["warning"]
    assert {r["cell"]: r["verdict"] for r in report["rows"]} == {"logreg/adamw": "n too small (needs ≥ 5 seeds)",
                                                                 "logreg/sgd": "n too small (needs ≥ 5 seeds)"}


def test_existing_runs_and_environment_change(bench_cli, tiny, tmp_path):
    baseline = json.loads((tiny / "tiny_baseline.json").read_text())
    baseline["env"]["torch"] = "1.0.0"
    moved = tmp_path / "old_baseline.json"
    moved.write_text(json.dumps(baseline))
    res = bench_cli("check", str(tiny / "tiny.yaml"), "--baseline", str(moved), "--runs", str(tiny / "runs"),
                    "--format", "json")
    assert res.code == 0, res.output
    report = json.loads(res.stdout)
    assert report["environment_changes"][0].startswith("torch 1.0.0 → ")
    assert report["alpha"] == 0.05 and report["family"] == 4 and report["warning"] is None
    assert {r["cell"]: r["verdict"] for r in report["rows"]} == {"logreg/adamw": "holds (identical)",
                                                                 "logreg/sgd": "holds (identical)"}


@pytest.mark.parametrize("args, message", [
    (["no_such_sweep"], "no check sweep 'no_such_sweep'"),
    (["{tiny}/tiny.yaml", "--baseline", "{tiny}/missing.json"], "no baseline at"),
    (["{tiny}/tiny.yaml", "--runs", "{tiny}/nowhere"], "--runs {tiny}/nowhere: no such directory"),
    (["{tiny}/bad.yaml", "--baseline", "{tiny}/tiny_baseline.json"], "cell logreg/sgd: unknown optimizer hyperparameter 'no_such_key'"),
    (["{tiny}/tiny.yaml", "--baseline", "{tiny}/tiny.yaml"], "is not a bench check baseline"),
    (["{tiny}/old_k.yaml"], "tolerance k in {tiny}/old_k.yaml is no longer used"),
    (["{tiny}/alpha.yaml"], "alpha in {tiny}/alpha.yaml must be a number between 0 and 1"),
    (["{tiny}/alpha_tol.yaml"], "alpha is a top-level key of a check sweep: move it out of `tolerance:`"),
])
def test_bad_input_is_one_line_and_exit_2(bench_cli, tiny, args, message):
    (tiny / "bad.yaml").write_text(SWEEP.format(seeds=FIVE, sgd="[optimizer.no_such_key=1]"))
    (tiny / "old_k.yaml").write_text(SWEEP.format(seeds=FIVE, sgd="[]") + "tolerance: {k: 3, rel: 0.02}\n")
    (tiny / "alpha.yaml").write_text(SWEEP.format(seeds=FIVE, sgd="[]") + "alpha: 5\n")
    (tiny / "alpha_tol.yaml").write_text(SWEEP.format(seeds=FIVE, sgd="[]") + "tolerance: {alpha: 0.1}\n")
    res = bench_cli("check", *[a.format(tiny=tiny) for a in args], "--runs-root", str(tiny / "bad-runs"))
    assert res.code == 2, res.output
    assert message.format(tiny=tiny) in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tiny / "bad-runs").exists()  # bad input runs nothing
