"""Large-batch reality check (Nado et al., 2021): steps to a target vs batch size for generic
optimizers (Nesterov, Adam) and the layer-wise adaptive ones made for large batches (LARS, LAMB).

Every (optimizer, batch size) gets the same `bench tune` budget: `trials` scrambled-Sobol points
of its own search space. As in the paper, the trial that reached the target in the fewest steps
wins (ties: the better final metric), and is re-run with seeds the search never used; those runs
are what the table and the verdict compare.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.ticker import ScalarFormatter
from omegaconf import OmegaConf

from bench.experiments.common import Cell, Experiment, Finding, ci, figure, markdown_table
from bench.results import stats
from bench.results.plots import colours


def _optimizers(spec) -> list[str]:
    return [name for pair in spec.pairs for name in (pair.generic, pair.special)]


def sweep(exp: Experiment) -> dict[tuple[str, int], list[dict]]:
    spec = exp.spec
    exp.tune([*spec.task, f"optimizer={','.join(_optimizers(spec))}",
              f"batch_size={','.join(str(b) for b in spec.batch_sizes)}", f"steps={spec.steps}",
              f"eval_every={spec.eval_every}", f"trials={spec.trials}", "seeds=0"])
    winners = fastest_trials(exp)
    cells = [Cell([f"seed={seed}", "tune.phase=seeds"], label=f"{opt} batch {bs} seed {seed}",
                  config=OmegaConf.load(f"{row.run_dir}/config.yaml"))
             for (opt, bs), row in winners.items() for seed in spec.seeds]
    summaries = exp.run(cells, label="fastest trial, new seeds")
    out: dict[tuple[str, int], list[dict]] = {key: [] for key in winners}
    for cell, summary in zip(cells, summaries, strict=True):
        opt, _, bs = cell.label.split()[:3]
        out[(opt, int(bs))].append(summary)
    return out


def search_rows(exp: Experiment) -> pd.DataFrame:
    table = exp.load().table
    if table.empty or "phase" not in table:
        return table.iloc[0:0]
    keep = ((table["phase"] == "search") & table["optimizer"].isin(_optimizers(exp.spec))
            & pd.to_numeric(table["batch_size"], errors="coerce").isin(list(exp.spec.batch_sizes))
            & (pd.to_numeric(table["budget"], errors="coerce") == exp.spec.steps))
    return table[keep]


def fastest_trials(exp: Experiment) -> dict[tuple[str, int], object]:
    """(optimizer, batch size) -> the search trial with the fewest steps to target."""
    out = {}
    rows = search_rows(exp)
    for (opt, bs), group in rows.groupby(["optimizer", rows["batch_size"].astype(int)]):
        best = group.sort_values(["steps_to_target_inf", "loss"]).iloc[0]
        out[(opt, int(bs))] = best
    return out


def _steps(summaries: list[dict]) -> list[float]:
    """Steps to target of each seed run; a miss (never reached, diverged, failed) is ∞."""
    out = []
    for s in summaries:
        reached = s.get("status") in ("ok", "skipped") and s.get("steps_to_target") is not None
        out.append(float(s["steps_to_target"]) if reached else np.inf)
    return out


def analyse(exp: Experiment) -> Finding:
    spec = exp.spec
    seeds = sweep(exp)  # read-only by now: the winners' seed runs, read back
    steps = {key: _steps(v) for key, v in seeds.items()}
    rows, verdicts = [], []
    for bs in spec.batch_sizes:
        for pair in spec.pairs:
            g, s = steps.get((pair.generic, bs), []), steps.get((pair.special, bs), [])
            p = stats.probability_of_improvement(g, s)
            if not g or not s:
                verdict = "missing"
            elif not np.isfinite(g + s).any():
                verdict = "no run reached the target"  # a tie of misses says nothing about the claim
            else:
                verdict = stats.verdict(p)
            verdicts.append(verdict)
            rows.append([bs, f"{pair.generic} vs {pair.special}", _reached(g), ci(g, 3), _reached(s), ci(s, 3),
                         f"{p.value:.2f} [{p.lo:.2f}, {p.hi:.2f}]" if np.isfinite(p.lo) else f"{p.value:.2f}",
                         {"better": "**faster**", "worse": "**slower**", "tie": "tied"}.get(verdict, verdict)])
    body = markdown_table(["batch size", "pair", "generic reached", "generic steps to target", "special reached",
                           "special steps to target", "P(generic faster)", "generic is"], rows)
    task = " ".join(spec.task)
    body += (f"\n\n`{task}`: every (optimizer, batch size) had {spec.trials} quasi-random trials of `bench tune` over "
             f"its own search space (the optimizer yaml's `search:` block), {spec.steps} steps, cosine schedule, "
             f"evaluated every {spec.eval_every} steps; the trial with the fewest steps to the target won and was "
             f"re-run with seeds {list(spec.seeds)} (n={len(spec.seeds)}). A run that missed the target counts as ∞ "
             f"steps (AlgoPerf's convention). P(generic faster) is the chance that a seed of the generic optimizer "
             f"beats a seed of the other, with its 95% bootstrap interval; faster/slower only when it excludes 1/2.")
    figures = [exp.save(plot(exp, steps), "steps-vs-batch")]
    informative = [v for v in verdicts if v in ("better", "tie", "worse")]
    worse, better, tie = informative.count("worse"), informative.count("better"), informative.count("tie")
    if not informative or len(informative) < len(verdicts) / 2:
        verdict = "not reproduced at this scale"  # too few cells where anyone reached the target
    else:
        verdict = "reproduced" if worse == 0 else "partly reproduced" if worse < len(informative) / 2 \
            else "not reproduced at this scale"
    summary = (f"Over {len(verdicts)} (batch size, pair) cells the generic optimizer was faster to the target in "
               f"{better}, tied in {tie} and slower in {worse}; in {len(verdicts) - len(informative)} no run of "
               f"either reached it (n={len(spec.seeds)} seeds per side, {spec.trials} tuning trials each).")
    return Finding(verdict, summary, body, figures)


def _reached(values: list[float]) -> str:
    return f"{sum(np.isfinite(values))}/{len(values)}"


def plot(exp: Experiment, steps: dict):
    fig, (ax,) = figure(1, width=6.5)
    opts = _optimizers(exp.spec)
    colour = colours(opts)
    cap = exp.spec.steps * 1.3
    generic = {p.generic for p in exp.spec.pairs}
    for i, opt in enumerate(opts):
        x, med, lo, hi, missed = [], [], [], [], []
        for bs in exp.spec.batch_sizes:
            e = stats.bootstrap(steps.get((opt, bs), []))
            if e.n == 0:
                continue
            if not np.isfinite(e.value):
                missed.append(bs)
                continue
            x.append(bs)
            med.append(e.value)
            lo.append(e.lo if e.n > 1 else e.value)
            hi.append(min(e.hi, cap) if e.n > 1 else e.value)
        ls = "-" if opt in generic else "--"
        ax.plot(x, med, ls=ls, marker="o", color=colour[opt],
                label=f"{opt} ({'generic' if opt in generic else 'large-batch'})")
        if x:
            ax.fill_between(x, lo, hi, color=colour[opt], alpha=0.15)
        if missed:
            # side by side, so that several optimizers missing at one batch size stay visible
            ax.plot(np.array(missed) * (1 + 0.08 * (i - (len(opts) - 1) / 2)), [cap] * len(missed), "x",
                    color=colour[opt], markersize=9, mew=2)
    ax.axhline(exp.spec.steps, color="gray", ls=":", lw=1)
    ax.text(exp.spec.batch_sizes[0], exp.spec.steps * 1.05, "budget (✕ above: median run missed)", fontsize=7,
            color="gray")
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="steps to target (median, 95% CI over seeds)",
           title="Steps to target vs batch size")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xticks(list(exp.spec.batch_sizes), [str(b) for b in exp.spec.batch_sizes])
    ax.legend(fontsize=8)
    return fig
