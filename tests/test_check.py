"""`bench check`: the regression rule on hand-computed cases, and the command end to end on a
tiny sweep (6 logreg runs of 60 steps, shared by the tests of this module)."""

import json
import math

import pytest

from bench.results.check import check
from bench.results.check_rule import Cell, compare_cell, judge

TOL = {"k": 3.0, "rel": 0.02, "abs": 1e-6, "steps_rel": 0.1}
SWEEP = """\
seeds: [0, 1, 2]
overrides: [device=cpu, steps=60]
cells:
  - task: logreg
    optimizers:
      sgd: {sgd}
      adamw: [optimizer.lr=0.01]
"""


# --- the rule ----------------------------------------------------------------------------------
def test_tolerance_is_k_scaled_mad_of_baseline_seeds():
    # median 1.1, MAD = median(0.1, 0, 0.2) = 0.1 -> tolerance 3 * 1.4826 * 0.1 = 0.44478
    base = [1.0, 1.1, 1.3]
    held = judge(base, [1.5, 1.5, 1.5], **dict(k=3, rel=0.02, floor=1e-6))
    assert held.tolerance == pytest.approx(0.44478) and held.verdict == "holds"
    assert judge(base, [1.6, 1.6, 1.6], k=3, rel=0.02, floor=1e-6).verdict == "regressed"
    assert judge(base, [0.6, 0.6, 0.6], k=3, rel=0.02, floor=1e-6).verdict == "improved"


def test_floors_apply_when_seeds_agree_exactly():
    base = [0.5, 0.5, 0.5]  # MAD 0: the relative floor (2% of 0.5 = 0.01) decides
    assert judge(base, [0.509] * 3, k=3, rel=0.02, floor=1e-6).verdict == "holds"
    assert judge(base, [0.511] * 3, k=3, rel=0.02, floor=1e-6).verdict == "regressed"
    assert judge([0.0] * 3, [5e-7] * 3, k=3, rel=0.02, floor=1e-6).verdict == "holds"  # absolute floor


def test_misses_count_as_never():
    inf = math.inf
    assert judge([inf, inf, 10], [inf, inf, inf], k=3, rel=0.1, floor=1).verdict == "holds"
    assert judge([inf, inf, 10], [10, 10, inf], k=3, rel=0.1, floor=1).verdict == "improved"
    assert judge([10, 10, inf], [inf, inf, 10], k=3, rel=0.1, floor=1).verdict == "regressed"


def cell(final, status=("ok", "ok", "ok"), steps=(10, 10, 10), mode="max", lr=0.1):
    return Cell.from_json("t/o", {"metric": "val/acc", "mode": mode, "seeds": [0, 1, 2], "final": list(final),
                                  "status": list(status), "steps_to_target": list(steps),
                                  "hyperparameters": {"lr": lr}})


def test_higher_is_better_metrics_and_new_divergence():
    base = cell([0.80, 0.81, 0.82])  # spread 1.4826 * 0.01; tolerance 3 * 0.0148 = 0.0445
    assert compare_cell(base, cell([0.70, 0.71, 0.72]), TOL).verdict == "regressed"
    assert compare_cell(base, cell([0.90, 0.91, 0.92]), TOL).verdict == "improved"
    # the median holds, but one seed now diverges that did not before
    row = compare_cell(base, cell([0.80, 0.81, None], status=("ok", "ok", "diverged")), TOL)
    assert row.verdict == "regressed" and "1/3 seeds diverged (baseline 0/3)" in row.notes
    changed = compare_cell(base, cell([0.80, 0.81, 0.82], lr=0.2), TOL)
    assert changed.verdict == "holds" and "hyperparameters changed: lr 0.1 → 0.2" in changed.notes


# --- the command -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny check sweep with its baseline written, and its runs root."""
    root = tmp_path_factory.mktemp("check")
    sweep = root / "tiny.yaml"
    sweep.write_text(SWEEP.format(sgd="[]"))
    report = check(str(sweep), runs_root=str(root / "runs"), update=True, log=lambda line: None)
    assert report.exit_code == 0 and report.baseline_path == root / "tiny_baseline.json"
    return root


def test_unchanged_tree_passes(bench_cli, tiny):
    res = bench_cli("check", str(tiny / "tiny.yaml"), "--runs-root", str(tiny / "runs"))
    assert res.code == 0, res.output
    assert "(6 reused)" in res.stderr  # finished runs are not repeated
    assert "result: 2 holds -> ok" in res.stdout
    assert "rule: a cell regresses when its median over seeds is worse" in res.stdout
    baseline = json.loads((tiny / "tiny_baseline.json").read_text())
    assert sorted(baseline["cells"]) == ["logreg/adamw", "logreg/sgd"]
    assert baseline["env"]["threads"] == "1" and baseline["cells"]["logreg/sgd"]["seeds"] == [0, 1, 2]


def test_worse_optimizer_fails_with_table(bench_cli, tiny):
    # sgd at 1/100 of its learning rate (0.1 -> 0.001) makes far less progress in the same 60 steps
    worse = tiny / "worse.yaml"
    worse.write_text(SWEEP.format(sgd="[optimizer.lr=0.001]"))
    res = bench_cli("check", str(worse), "--baseline", str(tiny / "tiny_baseline.json"),
                    "--runs-root", str(tiny / "runs"), "--format", "md")
    assert res.code == 1, res.output
    rows = {line.split("|")[1].strip(): line for line in res.stdout.splitlines() if line.startswith("| logreg/")}
    assert "| regressed |" in rows["logreg/sgd"] and "lr 0.1 → 0.001" in rows["logreg/sgd"]
    assert "| holds |" in rows["logreg/adamw"]
    assert "result: 1 holds, 1 regressed -> FAIL" in res.stdout


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
    assert {r["cell"]: r["verdict"] for r in report["rows"]} == {"logreg/adamw": "holds", "logreg/sgd": "holds"}


@pytest.mark.parametrize("args, message", [
    (["no_such_sweep"], "no check sweep 'no_such_sweep'"),
    (["{tiny}/tiny.yaml", "--baseline", "{tiny}/missing.json"], "no baseline at"),
    (["{tiny}/tiny.yaml", "--runs", "{tiny}/nowhere"], "--runs {tiny}/nowhere: no such directory"),
    (["{tiny}/bad.yaml", "--baseline", "{tiny}/tiny_baseline.json"], "cell logreg/sgd: Could not override"),
    (["{tiny}/tiny.yaml", "--baseline", "{tiny}/tiny.yaml"], "is not a bench check baseline"),
])
def test_bad_input_is_one_line_and_exit_2(bench_cli, tiny, args, message):
    (tiny / "bad.yaml").write_text(SWEEP.format(sgd="[optimizer.no_such_key=1]"))
    res = bench_cli("check", *[a.format(tiny=tiny) for a in args], "--runs-root", str(tiny / "bad-runs"))
    assert res.code == 2, res.output
    assert message.format(tiny=tiny) in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert not (tiny / "bad-runs").exists()  # bad input runs nothing
