"""The AdamW-equivalent speed-up (Wen et al. 2025, "Fantastic Pretraining Optimizers and Where to
Find Them"): how much more data the baseline would need to reach another optimizer's loss.

For a task whose runs cover several data budgets D (`bench tune ... steps=a,b,c`; D is steps ×
items per step), the baseline's tuned-best median final loss at each budget is fitted with
L(D) = α·D^(−β) + γ. An optimizer's loss L at budget D maps to the baseline budget that reaches
it, D_eff = (α / (L − γ))^(1/β) (∞ when L ≤ γ: no baseline budget gets there; 0 for a miss), and
its speed-up is D_eff / D.

The interval. D_eff is decreasing in L, so each seed's speed-up is a monotone function of its
loss, and the order statistics of the seeds' speed-ups are those of their losses mapped through
the curve: [s_(j), s_(n+1−j)] is the distribution-free interval of the median speed-up
(`stats.median_ci`, exact binomial coverage, from 6 seeds). It treats the fitted curve as known:
the baseline's own seed noise moves the curve and is not in the interval, so rows where that
noise is large against the optimizer's are flagged (NOISE_LIMIT). The coverage is simulated by
`python -m bench.results.calibration --speedup` and checked in tests/test_results_speedup.py.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize_scalar

from bench.results import power, stats

#: the fewest baseline budgets the three-parameter law is fitted to
MIN_BUDGETS = 3
#: the interval leaves the curve's own error out; the simulation (docs/STATISTICS.md) shows it still
#: covers while the standard error of the baseline's medians, spread / √seeds, is at most this
#: fraction of the optimizer's; beyond it a row is flagged `noisy_curve`
NOISE_LIMIT = 0.65
#: β is searched over this range (log-spaced grid, then refined): wide enough for any data
#: scaling law reported for language models (β ≈ 0.1–0.6) and for small toy tasks
BETA_RANGE = (1e-3, 5.0)


@dataclass(frozen=True)
class PowerLaw:
    """L(D) = alpha · D^(−beta) + gamma, with the residual sum of squares of its fit."""

    alpha: float
    beta: float
    gamma: float
    rss: float = 0.0

    def loss(self, budget) -> np.ndarray:
        return self.alpha * np.power(np.asarray(budget, dtype=float), -self.beta) + self.gamma

    def budget(self, loss) -> np.ndarray:
        """The budget at which the curve reaches `loss`: ∞ at or below γ, 0 for an infinite loss."""
        loss = np.asarray(loss, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            out = np.power(self.alpha / (loss - self.gamma), 1.0 / self.beta)
        return np.where(loss <= self.gamma, np.inf, np.where(np.isinf(loss), 0.0, out))


def _linear_fits(rel: np.ndarray, y: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(alpha, gamma, rss) of y ≈ alpha·rel^(−β) + gamma for every β at once: for a fixed β the law
    is a straight line in x = rel^(−β), fitted by least squares in closed form."""
    x = rel[None, :] ** -betas[:, None]
    xm, ym = x.mean(axis=1, keepdims=True), y.mean()
    sxx = ((x - xm) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = ((x - xm) * (y - ym)).sum(axis=1) / sxx
    gamma = ym - alpha * xm[:, 0]
    rss = ((alpha[:, None] * x + gamma[:, None] - y) ** 2).sum(axis=1)
    return alpha, gamma, rss


def fit_power_law(budgets, losses) -> PowerLaw | None:
    """The least-squares fit of L(D) = α·D^(−β) + γ (α > 0, β in BETA_RANGE) to finite points.
    β is profiled: for each β, α and γ are a linear least-squares problem, so the only search is
    one-dimensional (a log grid, then bounded Brent around its best point). None with fewer than
    MIN_BUDGETS distinct budgets, where no decreasing curve fits (α ≤ 0: loss does not fall), and
    where the best β is at an end of BETA_RANGE: the losses do not follow the law, and a curve
    pinned to the bound (β → 0 is a logarithm) would map losses to budgets it cannot vouch for."""
    d, y = np.asarray(budgets, dtype=float), np.asarray(losses, dtype=float)
    keep = np.isfinite(d) & np.isfinite(y) & (d > 0)
    d, y = d[keep], y[keep]
    if len(np.unique(d)) < MIN_BUDGETS:
        return None
    # budgets relative to the largest, so D^(−β) stays near 1 whatever the units (steps or tokens)
    scale = float(d.max())
    rel = d / scale

    def rss(log_betas: np.ndarray) -> np.ndarray:
        alpha, _, r = _linear_fits(rel, y, np.exp(log_betas))
        return np.where(alpha > 0, r, np.inf)

    grid = np.linspace(math.log(BETA_RANGE[0]), math.log(BETA_RANGE[1]), 241)
    values = rss(grid)
    if not np.isfinite(values).any():
        return None
    i = int(np.argmin(values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    best = minimize_scalar(lambda b: float(rss(np.array([b]))[0]), bounds=(lo, hi), method="bounded",
                           options={"xatol": 1e-10})
    log_beta = float(best.x) if best.fun <= values[i] else float(grid[i])
    if not grid[0] + 1e-6 < log_beta < grid[-1] - 1e-6:
        return None
    alpha, gamma, r = (float(v[0]) for v in _linear_fits(rel, y, np.array([math.exp(log_beta)])))
    beta = math.exp(log_beta)
    return PowerLaw(alpha * scale ** beta, beta, gamma, r)  # back to the budgets' own units


def speedup_ci(law: PowerLaw, losses, budget: float, level: float = stats.LEVEL) -> stats.Estimate:
    """The median over seeds of D_eff / D with its order-statistic interval (see the module)."""
    ratios = law.budget(stats._clean(losses)) / budget
    return stats.median_ci(ratios, level)


_BUDGET = re.compile(r"(\[budget=[^\]]*\]|,budget=[^\]]*)")


def family_of(benchmark: str) -> str:
    """A benchmark's label without its step budget: `llama_tiny[budget=20]` → `llama_tiny`,
    `logreg[dataset=wine,budget=300]` → `logreg[dataset=wine]` (budget is the label's last key)."""
    return _BUDGET.sub("", benchmark)


def _data_budget(frame: pd.DataFrame) -> pd.Series:
    """D per run: steps × items per step where the runs record it, else steps."""
    steps = pd.to_numeric(frame["budget"], errors="coerce") if "budget" in frame else pd.Series(np.nan, frame.index)
    if "steps" in frame:
        steps = steps.fillna(pd.to_numeric(frame["steps"], errors="coerce"))
    items = pd.to_numeric(frame["items_per_step"], errors="coerce") if "items_per_step" in frame else None
    return steps * items.where(items > 0, 1.0).fillna(1.0) if items is not None else steps


def speedups(runs: pd.DataFrame, baseline: str = "adamw", level: float = stats.LEVEL) -> pd.DataFrame:
    """One row per (task family, budget, optimizer) for every family where the baseline ran at ≥
    MIN_BUDGETS budgets of a lower-is-better metric. Columns: family, benchmark, optimizer, steps,
    data_budget (D), n, speedup (+_lo/_hi/_coverage/_needs), extrapolated (D_eff beyond the largest
    baseline budget), alpha, beta, gamma (the fit, in units of D), fit_budgets, metric, noisy_curve
    (the baseline's seed noise too large against this row's for the interval to cover, NOISE_LIMIT)."""
    from bench.results.leaderboard import tuned  # leaderboard imports the table code that imports this

    if runs.empty or "benchmark" not in runs:
        return pd.DataFrame()
    base = runs[(runs["optimizer"] == baseline) & (runs["mode"] != "max")]
    budgets_per_family = base.groupby(base["benchmark"].map(family_of))["benchmark"].nunique()
    if budgets_per_family.empty or budgets_per_family.max() < MIN_BUDGETS:
        return pd.DataFrame()  # no task with enough budgets: spare the tuned-best selection
    best = tuned(runs[runs["mode"] != "max"])
    if best.empty:
        return pd.DataFrame()
    best = best.assign(family=best["benchmark"].map(family_of), data_budget=_data_budget(best))
    rows, skipped = [], {}
    for family, group in best.groupby("family", sort=True):
        base = group[group["optimizer"] == baseline]
        points = base.groupby("data_budget")["loss"].apply(lambda x: stats.median(x.to_numpy()))
        points = points[np.isfinite(points)]
        law = fit_power_law(points.index.to_numpy(float), points.to_numpy(float))
        if law is None:
            if group["data_budget"].nunique() >= MIN_BUDGETS:  # budgets were meant to be compared
                skipped[family] = (f"{baseline} has a finite median at {len(points)} budget(s), needs {MIN_BUDGETS}"
                                   if len(points) < MIN_BUDGETS else
                                   f"{baseline}'s median losses at {len(points)} budgets do not follow "
                                   f"L(D) = α·D^(−β) + γ with α > 0 and β in [{BETA_RANGE[0]:g}, {BETA_RANGE[1]:g}]")
            continue
        smallest, largest = float(points.index.min()), float(points.index.max())
        base_error = stats.median([power.spread(x) / math.sqrt(len(x)) for _, x in base.groupby("data_budget")["loss"]])
        for (bench_name, opt), g in group.groupby(["benchmark", "optimizer"], sort=True):
            d = float(g["data_budget"].iloc[0])
            if not (d > 0):
                continue
            e = speedup_ci(law, g["loss"].to_numpy(float), d, level)
            own_error = power.spread(g["loss"]) / math.sqrt(len(g))
            # nan (fewer than two finite values on a side) flags nothing: there is nothing to compare
            noisy = bool(opt != baseline and base_error > NOISE_LIMIT * own_error)
            rows.append({"family": family, "benchmark": bench_name, "optimizer": opt,
                         "steps": float(pd.to_numeric(g["budget"], errors="coerce").iloc[0]) if "budget" in g else math.nan,
                         "data_budget": d, "n": e.n, "speedup": e.value, "speedup_lo": e.lo, "speedup_hi": e.hi,
                         "speedup_coverage": e.coverage, "speedup_needs": e.needs,
                         "extrapolated": not smallest <= e.value * d <= largest, "alpha": law.alpha, "beta": law.beta,
                         "gamma": law.gamma, "fit_budgets": len(points), "metric": str(g["metric"].iloc[0]),
                         "noisy_curve": noisy})
    out = pd.DataFrame(rows)
    out.attrs["skipped"] = skipped  # family → why it has no speed-up table
    return out
