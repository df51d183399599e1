"""Large-batch reality check (Nado et al., 2021): steps to a target vs batch size for generic
optimizers (Nesterov, Adam) and the layer-wise adaptive ones made for large batches (LARS, LAMB).

Every (optimizer, batch size) gets the same `bench tune` budget: `trials` scrambled-Sobol points
of its own search space. As in the paper, the trial that reached the target in the fewest steps
wins (ties: the better final metric), and is re-run with seeds the search never used; those runs
are what the table and the verdict compare: at each batch size an exact rank test of generic against
special, the whole table one Holm family.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.ticker import ScalarFormatter
from omegaconf import OmegaConf

from bench.experiments.common import Cell, Experiment, Finding, figure
from bench.experiments.verdicts import ci, family_note, interval, judged, supported
from bench.results import stats
from bench.results.markup import markdown
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


@dataclass
class Judgement:
    """Every (batch size, pair) cell with its comparison, and the verdict of the claim."""

    cells: list[tuple[int, str, str, list[float], list[float], stats.Comparison | None]]
    verdict: str

    def count(self, verdict: str) -> int:
        return sum(c is not None and c.verdict == verdict for *_, c in self.cells)


def judge(steps: dict[tuple[str, int], list[float]], pairs: list[tuple[str, str]],
          batch_sizes: list[int]) -> Judgement:
    """Generic against special optimizer in steps to target (misses +inf), at every batch size:
    all cells of the table one Holm family of exact rank tests. The claim ("as few steps") is
    supported where the generic optimizer is significantly faster; see `verdicts.supported`."""
    losses, keys, cells = {}, [], []
    for bs in batch_sizes:
        for generic, special in pairs:
            g, s = list(steps.get((generic, bs), [])), list(steps.get((special, bs), []))
            cells.append((bs, generic, special, g, s))
            if g and s:
                losses[f"{generic}@{bs}"], losses[f"{special}@{bs}"] = g, s
                keys.append((f"{generic}@{bs}", f"{special}@{bs}"))
    found = dict(zip(keys, stats.compare_family(losses, keys), strict=True)) if keys else {}
    out = [(bs, g_name, s_name, g, s, found.get((f"{g_name}@{bs}", f"{s_name}@{bs}")))
           for bs, g_name, s_name, g, s in cells]
    return Judgement(out, supported([c.verdict if c else "missing" for *_, c in out]))


WORDS = {"better": "**faster**", "worse": "**slower**", "not significant": "not significant"}


def analyse(exp: Experiment) -> Finding:
    spec = exp.spec
    seeds = sweep(exp)  # read-only by now: the winners' seed runs, read back
    steps = {key: _steps(v) for key, v in seeds.items()}
    pairs = [(p.generic, p.special) for p in spec.pairs]
    judgement = judge(steps, pairs, list(spec.batch_sizes))
    rows = []
    for bs, generic, special, g, s, c in judgement.cells:
        verdict = judged(c, WORDS)
        if g and s and not np.isfinite(g + s).any():
            verdict += "; no run of either reached the target"
        rows.append([bs, f"{generic} vs {special}", _reached(g), ci(g, 3), _reached(s), ci(s, 3),
                     interval(stats.ratio_ci(g, s)) if g and s else "–",
                     interval(stats.p_beats_ci(g, s), 2) if g and s else "–", verdict])
    body = markdown(["batch size", "pair", "generic reached", "generic steps to target", "special reached",
                           "special steps to target", "steps ratio generic ÷ special", "P(generic faster)",
                           "generic is"], rows)
    comparisons = [c for *_, c in judgement.cells if c is not None]
    n = len(spec.seeds)
    task = " ".join(spec.task)
    body += (f"\n\n`{task}`: every (optimizer, batch size) had {spec.trials} quasi-random trials of `bench tune` over "
             f"its own search space (the optimizer yaml's `search:` block), {spec.steps} steps, cosine schedule, "
             f"evaluated every {spec.eval_every} steps; the trial with the fewest steps to the target won and was "
             f"re-run with seeds {list(spec.seeds)} (n={n} per side), which are what the table compares. A run that "
             f"missed the target counts as ∞ steps (AlgoPerf's convention). The steps ratio is median ÷ median with "
             f"the Moses interval on log steps (exact under a scale model); P(generic faster) is the chance that a "
             f"seed of the generic optimizer beats one of the other (ties count half), with Newcombe's interval.")
    body += "\n\n" + family_note(exp, comparisons, "generic vs special per batch size", n)
    body += ("\n\nThe claim is that the generic optimizer needs *as few* steps; the test can show a difference, "
             "never an equality, so a cell supports the claim only where the generic optimizer is significantly "
             "faster: reproduced when every cell does, partly when some do.")
    figures = [exp.save(plot(exp, steps), "steps-vs-batch")]
    counts = {v: judgement.count(v) for v in ("better", "worse", "not significant", "n too small")}
    summary = (f"Over {len(judgement.cells)} (batch size, pair) cells the generic optimizer was significantly faster "
               f"to the target in {counts['better']}, slower in {counts['worse']}, not significantly different in "
               f"{counts['not significant']}" + (f", and n was too small to decide in {counts['n too small']}"
                                                 if counts["n too small"] else "")
               + f" (n={n} seeds per side, {spec.trials} tuning trials each; one Holm family of "
               f"{len(comparisons)} exact rank tests).")
    return Finding(judgement.verdict, summary, body, figures)


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
            e = stats.median_ci(steps.get((opt, bs), []))
            if e.n == 0:
                continue
            if not np.isfinite(e.value):
                missed.append(bs)
                continue
            x.append(bs)
            med.append(e.value)
            # below the n a 95% interval needs, the median alone (no band)
            lo.append(e.lo if e.has_interval else e.value)
            hi.append(min(e.hi, cap) if e.has_interval else e.value)
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
    ax.set(xscale="log", yscale="log", xlabel="batch size", ylabel="steps to target (median over seeds)",
           title="Steps to target vs batch size (band: 95% order-statistic CI)")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.set_xticks(list(exp.spec.batch_sizes), [str(b) for b in exp.spec.batch_sizes])
    ax.legend(fontsize=8)
    return fig
