"""The AdamW-equivalent speed-up: the power-law fit (against scipy's curve_fit), its inverse, the
coverage of the printed interval by simulation, and the leaderboard and report that show it."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import curve_fit

from bench.results import report, speedup
from bench.results.calibration import monte_carlo_error, speedup_coverage
from bench.results.speedup import PowerLaw, fit_power_law, speedup_ci
from bench.results.store import load
from bench.results.synthetic import write_run

TRUE = PowerLaw(2.0, 0.5, 1.0)
BUDGETS = np.array([320.0, 640.0, 1280.0, 2560.0])


def test_fit_recovers_an_exact_law():
    law = fit_power_law(BUDGETS, TRUE.loss(BUDGETS))
    assert law.alpha == pytest.approx(2.0, rel=1e-6) and law.beta == pytest.approx(0.5, rel=1e-6)
    assert law.gamma == pytest.approx(1.0, abs=1e-8) and law.rss < 1e-20


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_agrees_with_scipy_curve_fit(seed):
    rng = np.random.default_rng(seed)
    d = np.array([100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0])
    y = TRUE.loss(d) * (1 + 0.003 * rng.standard_normal(len(d)))
    law = fit_power_law(d, y)
    # scipy from a generic start, on the same inputs: the same least-squares optimum
    (a, b, g), _ = curve_fit(lambda x, a, b, g: a * x ** -b + g, d, y, p0=(1.0, 0.3, 0.5), maxfev=20000)
    assert law.beta == pytest.approx(b, rel=1e-4) and law.alpha == pytest.approx(a, rel=1e-3)
    assert law.gamma == pytest.approx(g, rel=1e-4)
    assert np.allclose(law.loss(d), a * d ** -b + g, rtol=1e-7)
    assert law.rss <= float(np.sum((a * d ** -b + g - y) ** 2)) * (1 + 1e-9)


def test_fit_needs_three_budgets_and_a_falling_loss():
    assert fit_power_law(BUDGETS[:2], TRUE.loss(BUDGETS[:2])) is None
    assert fit_power_law(BUDGETS, -TRUE.loss(BUDGETS)) is None  # loss rises with data: no α > 0
    assert fit_power_law([1, 1, 1, 2], [3, 2, 1, 0.5]) is None  # two distinct budgets only


def test_effective_budget_inverts_the_law():
    d = np.array([10.0, 1000.0, 1e6])
    assert np.allclose(TRUE.budget(TRUE.loss(d)), d, rtol=1e-10)
    assert TRUE.budget(1.0) == math.inf and TRUE.budget(0.5) == math.inf  # at or below the floor
    assert TRUE.budget(math.inf) == 0.0  # a miss reaches nothing


def test_speedup_interval_is_the_mapped_order_statistics():
    losses = TRUE.loss(2 * 640.0) + np.array([-0.02, -0.01, 0.0, 0.005, 0.01, 0.03])
    e = speedup_ci(TRUE, losses, 640.0)
    mapped = np.sort(TRUE.budget(losses) / 640.0)
    assert (e.lo, e.hi, e.n) == (mapped[0], mapped[-1], 6) and e.coverage == pytest.approx(1 - 2 / 64)
    assert speedup_ci(TRUE, losses[:5], 640.0).needs == 6  # no interval below 6 seeds
    assert speedup_ci(TRUE, [math.inf] * 6, 640.0).value == 0.0


@pytest.mark.parametrize("label,family", [("llama_tiny[budget=20]", "llama_tiny"),
                                          ("logreg[dataset=wine,budget=300]", "logreg[dataset=wine]"),
                                          ("logreg[dataset=wine]", "logreg[dataset=wine]"), ("quad", "quad")])
def test_family_drops_only_the_budget(label, family):
    assert speedup.family_of(label) == family


@pytest.mark.parametrize("kind", ["normal", "lognormal", "t3"])
@pytest.mark.parametrize("n", [6, 10])
def test_interval_covers_when_the_curve_is_known(kind, n):
    trials = 600
    got = speedup_coverage(kind, n, 0.0, trials)
    assert got >= 0.95 - 3 * monte_carlo_error(0.95, trials), got


@pytest.mark.parametrize("n", [6, 10])
def test_interval_covers_with_the_curve_refitted_to_quieter_baseline_seeds(n):
    """The curve's own error is not in the interval: with the baseline's seed spread half the
    optimizer's it still covers (docs/STATISTICS.md gives the shortfall at equal spreads)."""
    trials = 600
    got = speedup_coverage("normal", n, 0.5, trials)
    assert got >= 0.95 - 3 * monte_carlo_error(0.95, trials), got


@pytest.fixture
def budgets_root(tmp_path):
    """AdamW at 3 budgets (steps 10, 20, 40 × 32 items), lion reaching at each budget what the
    AdamW curve reaches with 1.5 times the data, 6 seeds each."""
    return _budget_runs(tmp_path / "runs", baseline_noise=0.4)


def _budget_runs(root, baseline_noise: float):
    jitter = [-0.002, -0.001, 0.0, 0.0005, 0.001, 0.003]
    for steps in (10, 20, 40):
        for seed, j in enumerate(jitter):
            for opt, factor, scale in (("adamw", 1, baseline_noise), ("lion", 1.5, 1.0)):
                write_run(root, task="llama_tiny", optimizer=opt, seed=seed, steps=steps, metric="val/loss",
                          value=float(TRUE.loss(factor * steps * 32)) + scale * j)
    return root


def test_speedups_table_from_runs(budgets_root):
    table = speedup.speedups(load(budgets_root).table)
    lion = table[table["optimizer"] == "lion"].sort_values("steps")
    assert list(lion["steps"]) == [10, 20, 40] and (lion["family"] == "llama_tiny").all()
    assert np.allclose(lion["speedup"], 1.5, rtol=0.02)
    assert (lion["speedup_lo"] < lion["speedup"]).all() and (lion["speedup"] < lion["speedup_hi"]).all()
    assert list(lion["extrapolated"]) == [False, False, True]  # 1.5 × the largest budget lies beyond the fit
    adamw = table[table["optimizer"] == "adamw"]
    assert np.allclose(adamw["speedup"], 1.0, rtol=1e-4)  # three points, three parameters: an exact fit
    assert table["beta"].iloc[0] == pytest.approx(0.5, rel=1e-4)
    assert not table["noisy_curve"].any()


def test_a_baseline_as_noisy_as_the_optimizer_is_flagged(tmp_path):
    table = speedup.speedups(load(_budget_runs(tmp_path / "runs", baseline_noise=1.0)).table)
    assert table.loc[table["optimizer"] == "lion", "noisy_curve"].all()
    assert not table.loc[table["optimizer"] == "adamw", "noisy_curve"].any()  # the baseline is never flagged


def test_no_speedup_below_three_budgets(budgets_root):
    table = load(budgets_root).table
    assert speedup.speedups(table[table["budget"].astype(int) < 40]).empty


def test_leaderboard_shows_the_speedup(bench_cli, budgets_root):
    result = bench_cli("leaderboard", "--runs", str(budgets_root), "--format", "md")
    assert result.code == 0, result.output
    text = result.stdout
    assert "### llama_tiny: adamw-equivalent speed-up D_eff / D" in text
    assert "| optimizer | 10 steps | 20 steps | 40 steps |" in text
    lion = next(line for line in text.splitlines() if line.startswith("| lion |") and "×" in line)
    assert lion.startswith("| lion | 1.5") and "n=6" in lion and lion.endswith("n=6† |")
    assert "L(D) = 2·D^−0.5 + 1" in text
    table = bench_cli("leaderboard", "--runs", str(budgets_root))
    assert "adamw-equivalent speed-up" in table.stdout and table.code == 0
    data = json.loads(bench_cli("leaderboard", "--runs", str(budgets_root), "--format", "json").stdout)
    assert {r["optimizer"] for r in data["speedups"]} == {"adamw", "lion"}


def test_report_shows_the_speedup(budgets_root):
    runs = load(budgets_root)
    board = report.lb.leaderboard(runs.table)
    page = report.render_html(runs, board, pd.DataFrame(), [], "adamw", ["bench report"],
                              speedups=speedup.speedups(runs.table))
    assert "<h2>adamw-equivalent speed-up</h2>" in page and "<th>40 steps</th>" in page


@pytest.mark.parametrize("preset,task", [("speedup_tiny", "llama_tiny"), ("speedup_llama", "llama")])
def test_tune_presets_sweep_three_budgets(preset, task):
    from bench.sweep.tune import parse_args

    budget, fixed, axes = parse_args([f"preset={preset}", "trials=2"])
    steps = next(axis for axis in axes if axis[0].startswith("steps="))
    assert f"task={task}" in fixed and len(steps) >= speedup.MIN_BUDGETS and budget.trials == 2
    assert any("optimizer=adamw" in axis for axis in axes)


def test_unknown_tune_preset_is_one_line():
    from bench import BenchError
    from bench.sweep.tune import parse_args

    with pytest.raises(BenchError, match="unknown tune preset 'nope'; presets: speedup_llama, speedup_tiny"):
        parse_args(["preset=nope"])


def test_fit_refuses_a_curve_pinned_to_the_end_of_its_range():
    """Losses falling linearly in log D are no power law: β would run to 0, so no fit."""
    assert fit_power_law(BUDGETS, 3.0 - 0.2 * np.log(BUDGETS)) is None


def test_leaderboard_says_why_a_task_has_no_speedup(bench_cli, tmp_path):
    root = tmp_path / "runs"
    for steps in (10, 20, 40):
        for seed in range(6):
            for opt in ("adamw", "lion"):
                write_run(root, task="llama_tiny", optimizer=opt, seed=seed, steps=steps, metric="val/loss",
                          value=3.0 - 0.2 * math.log(steps * 32) + seed / 1000)
    result = bench_cli("leaderboard", "--runs", str(root), "--format", "md")
    assert result.code == 0, result.output
    assert "No adamw-equivalent speed-up for llama_tiny: adamw's median losses at 3 budgets do not follow" in result.stdout
    assert "D_eff / D" not in result.stdout
    data = json.loads(bench_cli("leaderboard", "--runs", str(root), "--format", "json").stdout)
    assert "speedups" not in data and data["speedups_skipped"][0].startswith("No adamw-equivalent speed-up for llama_tiny")
