"""Large-step GD on separable logistic regression (Wu et al., 2024): for each step size η, the
steps to zero training error (summary.json's steps_to_target; misses count as ∞) and the shape of
the training loss (its peak relative to the start, and on how many steps it rose). "Sooner" is an
exact rank test of each η against the smallest (one Holm family); "non-monotone" is the
order-statistic interval of the median peak above 1."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps
from omegaconf import OmegaConf

from bench.experiments.common import (
    VERDICTS,
    Cell,
    Experiment,
    Finding,
    curves_by_run,
    figure,
    hyperparameter,
    selected,
)
from bench.experiments.verdicts import ci, family_note, interval, judged, seeds_hint
from bench.results import stats
from bench.results.markup import markdown

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


@dataclass
class Judgement:
    """Each larger η against the smallest in steps to zero training error (one Holm family), and
    the two one-sample checks of the loss's shape at the largest η."""

    comparisons: dict[float, stats.Comparison]  # η → η against the smallest η
    faster: bool  # the largest η significantly faster than the smallest
    peak: stats.Estimate  # peak loss ÷ ln 2 at the largest η
    above: stats.Estimate  # max loss(large η) ÷ loss(small η) at the same step
    verdict: str

    @property
    def rose(self) -> bool:
        """The whole interval of the median above 1 (the sign test's dual at the interval's level)."""
        return self.peak.has_interval and self.peak.lo > 1 and self.above.has_interval and self.above.lo > 1


def judge(steps: dict[float, list[float]], peak: list[float], above: list[float]) -> Judgement:
    """`steps`: η → steps to zero training error per seed (a miss +inf); `peak` and `above`: the
    largest η's peak loss ÷ ln 2 and its max ratio to the smallest η's loss at the same step, per
    seed. Faster: the exact rank test (Holm over every η against the smallest) says the largest η
    is better. Non-monotone: the order-statistic interval of each median lies above 1."""
    lrs = sorted(steps)
    small, large = lrs[0], lrs[-1]
    pairs = [(f"{lr:g}", f"{small:g}") for lr in lrs[1:]]
    found = stats.compare_family({f"{lr:g}": steps[lr] for lr in lrs}, pairs) if pairs else []
    comparisons = {lr: c for lr, c in zip(lrs[1:], found, strict=True)}
    faster = large in comparisons and comparisons[large].verdict == "better"
    j = Judgement(comparisons, faster, stats.median_ci(peak), stats.median_ci(above), "")
    j.verdict = VERDICTS[0] if faster and j.rose else VERDICTS[1] if faster or j.rose else VERDICTS[2]
    return j


WORDS = {"better": "**sooner**", "worse": "**later**"}


def analyse(exp: Experiment) -> Finding:
    per, curves = measure(exp)
    lrs = sorted(per)
    small, large = lrs[0], lrs[-1]
    higher = above_small_step(curves, large, small)
    j = judge({lr: per[lr]["steps"] for lr in lrs}, per[large]["peak"], higher)
    rows = []
    for lr in lrs:
        m = per[lr]
        reached = sum(np.isfinite(m["steps"]))
        c = j.comparisons.get(lr)
        rows.append([f"{lr:g}", f"{reached}/{len(m['steps'])}", ci(m["steps"], 3),
                     interval(stats.p_beats_ci(m["steps"], per[small]["steps"]), 2) if c else "—",
                     judged(c, WORDS) if c else "—", ci(m["peak"], 3),
                     ci(m["rises"], 3), ci(above_small_step(curves, lr, small), 3) if lr != small else "—"])
    body = markdown(["η", "separated", "steps to zero training error", f"P(sooner than η={small:g})",
                           f"vs η={small:g}", "peak loss ÷ ln 2", "steps on which the loss rose",
                           f"max loss(η) ÷ loss(η={small:g}) at the same step"], rows)
    t = exp.spec.task
    n = len(exp.spec.seeds)
    body += (f"\n\nFull-batch GD (SGD without momentum on all {round(t.n * 0.8)} training points), constant η, "
             f"unregularised binary logistic loss from w = 0, {t.dim}-dimensional Gaussian data pushed "
             f"{t.margin} away from a random hyperplane (each seed draws a new data set), {t.budget} steps, "
             f"training error evaluated after every step. A run that never separated the data counts as ∞ steps "
             f"(AlgoPerf's convention), so a median of ∞ means at least half the seeds missed. P(sooner) is the "
             f"chance that a seed at η separates before one at η={small:g} (ties count half), with Newcombe's "
             f"interval.")
    body += "\n\n" + family_note(exp, list(j.comparisons.values()), f"every η against η={small:g}", n)
    body += (f"\n\n\"Sooner\" needs the test of η={large:g} against η={small:g}; \"non-monotone\" needs the whole "
             f"order-statistic interval of both medians at η={large:g} (peak loss ÷ ln 2, and the ratio to the "
             f"η={small:g} run's loss at the same step) above 1, a sign test at the interval's level; such an "
             f"interval exists from {stats.seeds_for_median()} seeds.")
    if not j.peak.has_interval:
        body += f" n too small for it here: {seeds_hint(exp)}."
    c = j.comparisons.get(large)
    summary = (f"Steps to zero training error: {ci(per[small]['steps'])} at η={small:g}, {ci(per[large]['steps'])} "
               f"at η={large:g} — " + (judged(c, WORDS) if c else "no comparison") + "; at η="
               f"{large:g} the loss peaked at {ci(per[large]['peak'])} × its starting value and rose to {ci(higher)} × "
               f"the η={small:g} run's loss at the same step (non-monotone by the interval: "
               f"{'yes' if j.rose else 'no'}).")
    figures = [exp.save(plot(exp, per, curves), "steps-and-loss")]
    return Finding(j.verdict, summary, body, figures)


def plot(exp: Experiment, per: dict, curves: dict):
    fig, (ax_t, ax_l) = figure(2)
    lrs = sorted(per)
    cap = float(exp.spec.task.budget)
    for lr in lrs:
        e = stats.median_ci(per[lr]["steps"])
        y = min(e.value, cap * 1.5)
        lo, hi = (e.lo, e.hi) if e.has_interval else (e.value, e.value)  # no interval below 6 seeds
        err = [[max(0.0, y - min(lo, cap * 1.5))], [max(0.0, min(hi, cap * 1.5) - y)]]
        ax_t.errorbar([lr], [y], yerr=err, fmt="o" if np.isfinite(e.value) else "x", color="tab:blue", capsize=3)
    ax_t.axhline(cap, color="gray", ls=":", lw=1)
    ax_t.text(lrs[0], cap * 1.05, "budget (above: not separated)", fontsize=8, color="gray")
    ax_t.set(xscale="log", yscale="log", xlabel="step size η", ylabel="GD steps to zero training error",
             title=f"median, 95% order-statistic CI, {len(exp.spec.seeds)} data sets")
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
