"""Figures, readable at a glance: labelled axes with units, one colour per optimizer everywhere
(pass the same `colours` to every figure), medians with distribution-free 95% bands (from 6 seeds), misses marked.

Each function returns a matplotlib Figure (no pyplot global state); `save` writes PNG and SVG."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from bench.config import option_file
from bench.results import leaderboard as lb
from bench.results import profiles, stats
from bench.results.store import Runs

KINDS = ("curves", "lr", "profile", "budget", "resources")
X_AXES = {"step": "optimizer step", "time": "train time (s, eval excluded)", "items": "examples or tokens seen"}
#: profiles often coincide (everyone at 0 or 1); dashes keep overlapping lines distinguishable
DASHES = ["-", "--", "-.", ":"]
SPARE = ["#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354", "#756bb1",
         "#636363", "#9c9ede", "#cedb9c", "#e7ba52", "#e7969c", "#de9ed6"]


@functools.lru_cache(maxsize=None)
def _yaml_colour(name: str) -> str | None:
    """The optimizer yaml's optional `color:` fact (None for names that are not bench optimizers)."""
    path = option_file("optimizer", name)
    return OmegaConf.load(path).get("color") if path else None


def colours(optimizers: Iterable[str]) -> dict[str, str]:
    """One colour per name: an optimizer's yaml `color:` where it states one, so well-known optimizers
    look the same in every report; the others take the unused SPARE colours in name order."""
    names = sorted(set(optimizers))
    out = {n: c for n in names if (c := _yaml_colour(str(n)))}
    spare = [c for c in SPARE if c not in out.values()]
    for i, n in enumerate(n for n in names if n not in out):
        out[n] = spare[i % len(spare)]
    return out


def _ylabel(metric: str, mode: str) -> str:
    return f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)"


def _figure(ncols: int = 1, width: float = 6.0) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, 4.0), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig, axes


def _band(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Median and its distribution-free 95% interval across seeds (columns) at each row, ignoring
    absent seeds; no band (lo = hi = median) where the seeds are too few for one (< 6)."""
    med, lo, hi = (np.full(len(matrix), np.nan) for _ in range(3))
    for i, row in enumerate(matrix):
        e = stats.median_ci(row[~np.isnan(row)])
        med[i] = e.value
        lo[i], hi[i] = (e.lo, e.hi) if e.has_interval else (e.value, e.value)
    return med, lo, hi


def learning_curves(runs: Runs, benchmark: str, x: str = "step", colour: dict | None = None) -> Figure:
    """Train loss and the task metric against step, train time or items, for each optimizer's
    tuned best: median over seeds with a 95% band. Time and items are the seeds' median at each
    step (seeds log at the same steps; their clocks differ)."""
    table = runs.table[runs.table["benchmark"] == benchmark]
    best = lb.tuned(table)
    colour = colour or colours(table["optimizer"])
    metric, mode = best["metric"].iloc[0], best["mode"].iloc[0]
    shown = ["train/loss"] + ([metric] if metric != "train/loss" else [])
    fig, axes = _figure(len(shown))
    curves = runs.curves(best["run_id"])
    for opt, group in best.groupby("optimizer", sort=True):
        mine = curves[curves["run_id"].isin(group["run_id"])]
        for ax, name in zip(axes, shown, strict=True):
            rows = mine[mine["metric"] == name]
            if rows.empty:
                continue
            values = rows.pivot_table(index="step", columns="run_id", values="value", aggfunc="last")
            values = values.replace([np.inf, -np.inf], np.nan)
            xs = values.index.to_numpy(float) if x == "step" else \
                rows.pivot_table(index="step", columns="run_id", values=x, aggfunc="last").median(axis=1).to_numpy()
            med, lo, hi = _band(values.to_numpy(float))
            ax.plot(xs, med, color=colour[opt], label=f"{opt} (n={values.shape[1]})")
            ax.fill_between(xs, lo, hi, color=colour[opt], alpha=0.2, linewidth=0)
    for ax, name in zip(axes, shown, strict=True):
        ax.set_xlabel(X_AXES[x])
        ax.set_ylabel(_ylabel(name, mode if name == metric else "min"))
        if not name.endswith("acc") and _spans_decades(ax):  # losses, suboptimality gaps
            ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle(f"{benchmark}: learning curves of each optimizer's tuned best (median; 95% band from 6 seeds)")
    return fig


def _spans_decades(ax) -> bool:
    ys = np.concatenate([line.get_ydata() for line in ax.get_lines()] or [np.array([1.0])])
    ys = ys[np.isfinite(ys) & (ys > 0)]
    return len(ys) > 1 and ys.max() / ys.min() > 20


def lr_sensitivity(table: pd.DataFrame, benchmark: str, colour: dict | None = None) -> Figure:
    """Final metric (median over seeds) against learning rate, best over the other hyperparameters
    at each lr; an lr whose median seed diverged or failed is an ✕ on the top edge."""
    table = table[table["benchmark"] == benchmark].copy()
    colour = colour or colours(table["optimizer"])
    metric, mode = table["metric"].iloc[0], table["mode"].iloc[0]
    table["lr"] = [json.loads(h).get("lr") if isinstance(h, str) else None for h in table["hyperparameters"]]
    table = table[pd.to_numeric(table["lr"], errors="coerce") > 0]
    fig, (ax,) = _figure()
    sign = -1.0 if mode == "max" else 1.0
    missed_label = "median seed diverged or failed"
    for opt, group in table.groupby("optimizer", sort=True):
        per_setting = group.groupby(["lr", "setting"])["loss"].apply(lambda s: stats.median(s.to_numpy(float)))
        best = per_setting.groupby(level="lr").min().sort_index()
        lrs, losses = best.index.to_numpy(float), best.to_numpy(float)
        ok = np.isfinite(losses)
        ax.plot(lrs[ok], sign * losses[ok], "o-", color=colour[opt], label=opt)
        if (~ok).any():
            ax.plot(lrs[~ok], np.ones((~ok).sum()), "x", color=colour[opt], markersize=10, mew=2,
                    transform=ax.get_xaxis_transform(), clip_on=False, label=missed_label)
            missed_label = None
    ax.set_xscale("log")
    if mode == "min" and _spans_decades(ax):  # losses, suboptimality gaps
        ax.set_yscale("log")
    ax.set_xlabel("learning rate (log scale)")
    ax.set_ylabel(_ylabel(metric, mode) + ", median over seeds")
    ax.set_title(f"{benchmark}: learning-rate sensitivity (✕ = diverged)")
    ax.legend(fontsize=8)
    return fig


def performance_profile(table: pd.DataFrame, measure: str = "time", tau_max: float = 4.0,
                        colour: dict | None = None) -> Figure:
    """AlgoPerf performance profiles: fraction of benchmarks each optimizer's tuned best solved
    within tau times the fastest; the legend gives the normalised area score."""
    benchmarks, optimizers, times = lb.target_times(table, measure)
    colour = colour or colours(optimizers)
    ratios = profiles.time_ratios(times)
    taus = np.linspace(1.0, tau_max, 301)
    rho = profiles.performance_profile(ratios, taus)
    area = profiles.area_score(ratios, tau_max)
    fig, (ax,) = _figure()
    for j in np.argsort(-area, kind="stable"):  # legend in score order
        opt = optimizers[j]
        ax.step(taus, rho[:, j], where="post", color=colour[opt], linestyle=DASHES[j % len(DASHES)], linewidth=2,
                label=f"{opt} (area {area[j]:.2f})")
    ax.set_xlim(1.0, tau_max)
    ax.set_ylim(-0.05, 1.05)
    what = "train time" if measure == "time" else "steps"
    ax.set_xlabel(f"τ: {what} to target relative to the fastest optimizer (×)")
    ax.set_ylabel(f"fraction of benchmarks solved within τ (of {len(benchmarks)})")
    ax.set_title("Performance profile (AlgoPerf); a missed target never counts")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def budget_curves(table: pd.DataFrame, benchmark: str, colour: dict | None = None) -> Figure:
    """Expected best final metric after k tuning trials (random subsets of the trials run, exact
    expectation): how much tuning each optimizer needs (Nado et al.'s point). No band: the trials
    are one draw of the search, and a resampling band over them would not have real coverage."""
    table = table[table["benchmark"] == benchmark]
    colour = colour or colours(table["optimizer"])
    metric, mode = table["metric"].iloc[0], table["mode"].iloc[0]
    sign = -1.0 if mode == "max" else 1.0
    fig, (ax,) = _figure()
    for (_, opt), values in sorted(lb.budget_trials(table).items()):
        mean = profiles.expected_best_after_k(values)
        ax.plot(np.arange(1, len(mean) + 1), sign * mean, "o-", color=colour[opt], markersize=3,
                label=f"{opt} ({len(values)} trials)")
    ax.set_xlabel("tuning budget k (trials, drawn at random from those run)")
    ax.set_ylabel(f"expected best {_ylabel(metric, mode)}")
    ax.set_title(f"{benchmark}: expected best after k trials (diverged = worst trial)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    return fig


def resources(table: pd.DataFrame, benchmark: str, colour: dict | None = None) -> Figure:
    """Optimizer state memory and median step time (95% CI over seeds) of each tuned best."""
    best = lb.tuned(table[table["benchmark"] == benchmark])
    colour = colour or colours(best["optimizer"])
    names = sorted(best["optimizer"].unique())
    memory = [np.nanmedian(pd.to_numeric(best.loc[best["optimizer"] == n, "optimizer_state_bytes"], errors="coerce"))
              for n in names]
    scale, unit = next(((s, u) for s, u in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")) if max(memory, default=0) >= s),
                       (1, "bytes"))
    times = [stats.median_ci(pd.to_numeric(best.loc[best["optimizer"] == n, "step_time_ms"], errors="coerce").dropna())
             for n in names]
    fig, (ax_mem, ax_time) = _figure(2, width=5.0)
    bar_colours = [colour[n] for n in names]
    bars = ax_mem.bar(names, np.asarray(memory) / scale, color=bar_colours)
    ax_mem.bar_label(bars, labels=[f"{m / scale:.3g}" for m in memory])  # a 0-byte bar is otherwise invisible
    ax_mem.set_ylabel(f"optimizer state ({unit})")
    ax_mem.set_title("optimizer state memory")
    medians = np.array([t.value for t in times])
    err = np.array([[t.value - t.lo, t.hi - t.value] if t.has_interval else [0, 0] for t in times]).T
    ax_time.bar(names, medians, color=bar_colours, yerr=err, capsize=4)
    ax_time.set_ylabel("step time (ms, median over seeds, 95% CI)")
    ax_time.set_title("time per optimizer step")
    for ax in (ax_mem, ax_time):
        ax.set_xlabel("optimizer")
        ax.tick_params(axis="x", labelrotation=30)
    fig.suptitle(f"{benchmark}: resources of each tuned best")
    return fig


def figures(runs: Runs, kinds: Iterable[str] = KINDS, x: str = "step", measure: str = "time"):
    """Yield (name, title, figure) for every requested kind and benchmark, colours shared."""
    table = runs.table
    colour = colours(table["optimizer"])
    benchmarks = sorted(table["benchmark"].unique())
    kinds = list(kinds)
    if "profile" in kinds:
        yield "profile", "Performance profile", performance_profile(table, measure, colour=colour)
    makers = {"curves": lambda b: learning_curves(runs, b, x, colour), "lr": lambda b: lr_sensitivity(table, b, colour),
              "budget": lambda b: budget_curves(table, b, colour), "resources": lambda b: resources(table, b, colour)}
    titles = {"curves": "Learning curves", "lr": "Learning-rate sensitivity", "budget": "Tuning-budget curve",
              "resources": "Memory and step time"}
    for b in benchmarks:
        for kind in (k for k in KINDS if k in kinds and k != "profile"):
            yield f"{kind}-{file_stem(b)}", f"{titles[kind]}: {b}", makers[kind](b)


def file_stem(benchmark: str) -> str:
    """The benchmark label as it appears in file names (plots, the report's figure anchors): the
    label the tables and CSV show, kept readable and safe in shells and on every filesystem:
    `logreg[dataset=wine,budget=300]` → `logreg_dataset=wine,budget=300`."""
    text = benchmark.replace("[", "_").replace("]", "")
    return "".join(c if c.isalnum() or c in "-_.=,+" else "_" for c in text).strip("_.") or "benchmark"


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png", out_dir / f"{name}.svg"]
    fig.savefig(paths[0], dpi=120)
    fig.savefig(paths[1])
    return paths
