"""Large-step GD on separable logistic regression (Wu et al., 2024): for each step size η, the
steps to zero training error (summary.json's steps_to_target; misses count as ∞) and the shape of
the training loss (its peak relative to the start, and on how many steps it rose)."""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from omegaconf import OmegaConf

from bench.experiments.common import (
    Cell,
    Experiment,
    Finding,
    ci,
    curves_by_run,
    figure,
    hyperparameter,
    markdown_table,
    selected,
)
from bench.results import stats

START_LOSS = math.log(2)  # every run starts at w = 0, where the logistic loss is ln 2


def cells(exp: Experiment) -> list[Cell]:
    task = OmegaConf.to_container(exp.spec.task, resolve=True)
    return [Cell([f"optimizer.lr={lr}", f"seed={seed}", f"steps={task['budget']}"], task=task,
                 label=f"η={lr:g} seed={seed}") for lr in exp.spec.lrs for seed in exp.spec.seeds]


def sweep(exp: Experiment) -> None:
    exp.run(cells(exp))


def measure(exp: Experiment) -> tuple[dict[float, dict[str, list]], dict]:
    """Per η, one entry per seed: steps to zero training error, peak loss ÷ ln 2, number of steps
    on which the loss rose; and every run's loss curve, keyed by (η, seed)."""
    runs = exp.load()
    rows = selected(runs, exp.spec.task.name, exp.spec.lrs, exp.spec.seeds)
    loss = curves_by_run(runs, "train/loss")
    per: dict[float, dict[str, list]] = {}
    curves = {}
    for row in rows:
        lr, seed = float(hyperparameter(row, "lr")), int(row.seed)
        m = per.setdefault(lr, {"steps": [], "peak": [], "rises": [], "status": []})
        m["status"].append(row.status)
        m["steps"].append(float(row.steps_to_target_inf))
        if row.run_id in loss:
            steps, values = loss[row.run_id]
            curves[(lr, seed)] = (steps, values)
            m["peak"].append(float(np.nanmax(values)) / START_LOSS)
            m["rises"].append(int(np.sum(np.diff(values) > 0)))
    return per, curves


def above_small_step(curves: dict, lr: float, small: float) -> list[float]:
    """Per seed: the largest ratio loss(η) / loss(smallest η) at the same step. Above 1: at some
    step the large-step run's loss was higher than the small-step run's."""
    out = []
    for (step_size, seed), (steps, values) in curves.items():
        if step_size != lr or (small, seed) not in curves:
            continue
        s_steps, s_values = curves[(small, seed)]
        common, i, j = np.intersect1d(steps, s_steps, return_indices=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            out.append(float(np.nanmax(values[i] / s_values[j])) if len(common) else np.nan)
    return out


def analyse(exp: Experiment) -> Finding:
    per, curves = measure(exp)
    lrs = sorted(per)
    small, large = lrs[0], lrs[-1]
    rows = []
    for lr in lrs:
        m = per[lr]
        reached = sum(np.isfinite(m["steps"]))
        rows.append([f"{lr:g}", f"{reached}/{len(m['steps'])}", ci(m["steps"], 3), ci(m["peak"], 3),
                     ci(m["rises"], 3), ci(above_small_step(curves, lr, small), 3) if lr != small else "—"])
    body = markdown_table(["η", "separated", "steps to zero training error", "peak loss ÷ ln 2",
                           "steps on which the loss rose", f"max loss(η) ÷ loss(η={small:g}) at the same step"],
                          rows)
    t = exp.spec.task
    body += (f"\n\nFull-batch GD (SGD without momentum on all {round(t.n * 0.8)} training points), constant η, "
             f"unregularised binary logistic loss from w = 0, {t.dim}-dimensional Gaussian data pushed "
             f"{t.margin} away from a random hyperplane (each seed draws a new data set), {t.budget} steps, "
             f"training error evaluated after every step. A run that never separated the data counts as ∞ steps "
             f"(AlgoPerf's convention), so a median of ∞ means at least half the seeds missed.")

    fast = stats.bootstrap(per[large]["steps"])
    slow = stats.bootstrap(per[small]["steps"])
    medians = [stats.bootstrap(per[lr]["steps"]).value for lr in lrs]
    faster = fast.hi < slow.lo if np.isfinite(fast.hi) and np.isfinite(slow.lo) else fast.value < slow.value
    faster = bool(faster) and all(b <= a for a, b in zip(medians, medians[1:], strict=False))
    higher = above_small_step(curves, large, small)
    non_monotone = bool(per[large]["peak"]) and min(per[large]["peak"]) > 1 and bool(higher) and min(higher) > 1
    verdict = ("reproduced" if faster and non_monotone else
               "partly reproduced" if faster or non_monotone else "not reproduced at this scale")
    summary = (f"Steps to zero training error fell from {ci(per[small]['steps'])} at η={small:g} to "
               f"{ci(per[large]['steps'])} at η={large:g} (medians non-increasing in η: {'yes' if faster else 'no'}), "
               f"while at η={large:g} the loss peaked at {ci(per[large]['peak'])} × its starting value and rose to "
               f"{ci(higher)} × the η={small:g} run's loss at the same step.")
    figures = [exp.save(plot(exp, per, curves), "steps-and-loss")]
    return Finding(verdict, summary, body, figures)


def plot(exp: Experiment, per: dict, curves: dict):
    fig, (ax_t, ax_l) = figure(2)
    lrs = sorted(per)
    cap = float(exp.spec.task.budget)
    for lr in lrs:
        e = stats.bootstrap(per[lr]["steps"])
        y = min(e.value, cap * 1.5)
        lo, hi = (e.lo, e.hi) if np.isfinite(e.lo) else (e.value, e.value)
        err = [[max(0.0, y - min(lo, cap * 1.5))], [max(0.0, min(hi, cap * 1.5) - y)]]
        ax_t.errorbar([lr], [y], yerr=err, fmt="o" if np.isfinite(e.value) else "x", color="tab:blue", capsize=3)
    ax_t.axhline(cap, color="gray", ls=":", lw=1)
    ax_t.text(lrs[0], cap * 1.05, "budget (above: not separated)", fontsize=8, color="gray")
    ax_t.set(xscale="log", yscale="log", xlabel="step size η", ylabel="GD steps to zero training error",
             title=f"median and 95% CI over {len(exp.spec.seeds)} data sets")
    cmap = colormaps["viridis"]
    seed = min(exp.spec.seeds)
    for i, lr in enumerate(lrs):
        if (lr, seed) not in curves:
            continue
        steps, values = curves[(lr, seed)]
        ax_l.plot(steps + 1, np.maximum(values, 1e-30), color=cmap(0.9 * i / max(1, len(lrs) - 1)), lw=1,
                  label=f"η={lr:g}")
    ax_l.axhline(START_LOSS, color="gray", ls=":", lw=1)
    ax_l.set(xscale="log", yscale="log", xlabel="GD step + 1", ylabel="training loss (logistic, full batch)",
             title=f"loss of one data set (seed {seed}); dotted: start")
    ax_l.legend(fontsize=8, ncol=2)
    fig.suptitle("Large-step GD on separable logistic regression")
    return fig
