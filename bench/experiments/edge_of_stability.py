"""Edge of stability (Cohen et al., 2021): full-batch GD at step size η on a small tanh MLP, with
the sharpness probe on. For each run: when the sharpness first reaches `reach`·2/η, where it sits
afterwards (median of sharpness/(2/η) over the probe points after that), and what the training
loss does meanwhile (net change, fraction of steps on which it rose)."""

from __future__ import annotations

from dataclasses import dataclass

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


def cells(exp: Experiment) -> list[Cell]:
    spec = exp.spec
    task = OmegaConf.to_container(spec.task, resolve=True)
    steps = task["budget"]
    return [Cell([f"optimizer.lr={lr}", f"seed={seed}", f"steps={steps}", f"eval_every={steps}",
                  f"probe.sharpness.every={spec.probe_every}", f"probe.sharpness.iters={spec.probe_iters}"],
                 task=task, label=f"η={lr} seed={seed}")
            for lr in spec.lrs for seed in spec.seeds]


def sweep(exp: Experiment) -> None:
    exp.run(cells(exp))


@dataclass
class RunResult:
    lr: float
    seed: int
    status: str
    reached_at: float = np.nan  # first step with sharpness >= reach * 2/η (nan: never)
    ratio: float = np.nan  # median sharpness / (2/η) after reaching the edge
    loss_at_reach: float = np.nan
    loss_final: float = np.nan
    rises: float = np.nan  # fraction of steps after reaching the edge on which the loss rose

    @property
    def reached(self) -> bool:
        return bool(np.isfinite(self.reached_at))


def measure(exp: Experiment):
    runs = exp.load()
    sharp, loss = curves_by_run(runs, "probe/sharpness"), curves_by_run(runs, "train/loss")
    results, traces = [], {}
    for row in selected(runs, exp.spec.task.name, exp.spec.lrs, exp.spec.seeds):
        r = RunResult(float(hyperparameter(row, "lr")), int(row.seed), row.status)
        results.append(r)
        if row.run_id not in sharp or row.run_id not in loss:
            continue
        (t_sharp, sharpness), (t_loss, losses) = sharp[row.run_id], loss[row.run_id]
        traces[(r.lr, r.seed)] = (t_sharp, sharpness, t_loss, losses)
        edge = 2 / r.lr
        hit = np.flatnonzero(sharpness >= exp.spec.reach * edge)
        if r.status != "ok" or not len(hit):
            continue
        r.reached_at = t_sharp[hit[0]]
        r.ratio = float(np.median(sharpness[hit[0]:] / edge))
        after = losses[t_loss >= r.reached_at]
        r.loss_at_reach, r.loss_final = float(after[0]), float(after[-1])
        r.rises = float(np.mean(np.diff(after) > 0)) if len(after) > 1 else np.nan
    return results, traces


def analyse(exp: Experiment) -> Finding:
    results, traces = measure(exp)
    lo, hi = exp.spec.band
    rows, per_lr_ok = [], []
    for lr in sorted({r.lr for r in results}):
        mine = [r for r in results if r.lr == lr]
        reached = [r for r in mine if r.reached]
        ratios = [r.ratio for r in reached]
        falls = [r.loss_final < r.loss_at_reach for r in reached]
        rises = [r.rises for r in reached]
        in_band = bool(reached) and all(lo <= x <= hi for x in ratios)
        per_lr_ok.append((len(reached) == len(mine), in_band, all(falls) and bool(falls),
                          bool(rises) and min(rises) > 0))
        rows.append([f"{lr:g}", f"{2 / lr:.3g}", f"{len(reached)}/{len(mine)}",
                     ci([r.reached_at for r in reached], 3), ci(ratios, 3),
                     ci([r.loss_final / r.loss_at_reach for r in reached], 3), ci(rises, 2)])
    body = markdown_table(
        ["η", "2/η", "reached edge", "step reached", "sharpness ÷ (2/η) after", "loss final ÷ at edge",
         "fraction of steps loss rose"], rows)
    body += (f"\n\nFull-batch GD (SGD without momentum on the whole training set), constant η, "
             f"{exp.spec.task.width}-wide depth-{exp.spec.task.depth} tanh MLP, squared loss, "
             f"{exp.spec.task.n_train} {exp.spec.task.dataset} images, {exp.spec.task.budget} steps. "
             f"Sharpness = top Hessian eigenvalue of the full-batch loss, by {exp.spec.probe_iters} warm-started "
             f"power iterations every {exp.spec.probe_every} steps (`probe.sharpness.every`). \"Reached\" = "
             f"sharpness ≥ {exp.spec.reach}·2/η; the ratio is the median over the probe points after that; "
             f"intervals are over seeds (initialisations).")
    figures = [exp.save(plot(exp, results, traces), "sharpness")]

    checks = np.array(per_lr_ok, dtype=bool) if per_lr_ok else np.zeros((0, 4), dtype=bool)
    n = len(results)
    edge_ok = checks[:, 0] & checks[:, 1]
    if len(checks) and checks.all():
        verdict = "reproduced"
    elif len(checks) and edge_ok.any():
        verdict = "partly reproduced"
    else:
        verdict = "not reproduced at this scale"
    reached = [r for r in results if r.reached]
    summary = (f"{len(reached)} of {n} runs reached {exp.spec.reach}·2/η; after that the sharpness sat at "
               f"{ci([r.ratio for r in reached])} × 2/η (band for \"about 2/η\": {lo}–{hi}), while the loss fell to "
               f"{ci([r.loss_final / r.loss_at_reach for r in reached])} of its value at the edge, rising on "
               f"{ci([r.rises for r in reached], 2)} of the steps.")
    return Finding(verdict, summary, body, figures)


def plot(exp: Experiment, results, traces):
    fig, (ax_s, ax_l) = figure(2)
    lrs = sorted({r.lr for r in results})
    cmap = colormaps["viridis"]
    colour = {lr: cmap(0.85 * i / max(1, len(lrs) - 1)) for i, lr in enumerate(lrs)}
    for (lr, seed), (t_sharp, sharpness, t_loss, losses) in sorted(traces.items()):
        label = f"η={lr:g}" if seed == min(exp.spec.seeds) else None
        ax_s.plot(t_sharp, sharpness, color=colour[lr], lw=1, alpha=0.8, label=label)
        ax_l.plot(t_loss, losses, color=colour[lr], lw=0.8, alpha=0.7, label=label)
    for lr in lrs:
        ax_s.axhline(2 / lr, color=colour[lr], ls="--", lw=1)
    ax_s.set(xlabel="GD step", ylabel="sharpness (top Hessian eigenvalue)",
             title="sharpness; dashed: 2/η")
    ax_l.set(xlabel="GD step", ylabel="training loss (full batch, squared)", yscale="log",
             title="training loss")
    ax_s.legend(fontsize=8)
    ax_l.legend(fontsize=8)
    fig.suptitle(f"Edge of stability: full-batch GD, {exp.spec.task.dataset} MLP, {len(exp.spec.seeds)} seeds per η")
    return fig
