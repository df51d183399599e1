"""Schedule-Free vs tuned schedules (Defazio et al., 2024).

For each task and budget T, the base optimizer (AdamW) with a cosine and a linear-decay schedule
is tuned on an lr grid for that T; the schedule whose search was better is "the tuned schedule"
at T. Schedule-Free is tuned on the same grid once, for the longest T, with a constant lr, and
its tuned run is read at every T on the way (its evaluation weights, via the optimizer's eval
mode). Each side's tuned lr is re-run with fresh seeds; the comparison at each (task, T) is the
bootstrap probability that a Schedule-Free seed beats a tuned-schedule seed, with the results
package's rule: better or worse only when the whole 95% interval is on one side of 1/2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter
from omegaconf import OmegaConf

from bench.experiments.common import Cell, Experiment, Finding, Tuned, ci, figure, markdown_table, tune_grid
from bench.results import stats
from bench.results.plots import colours
from bench.results.store import read_curve


def _task(spec, name: str) -> tuple[list[str], dict | None]:
    node = spec.tasks[name]
    task = OmegaConf.to_container(node.task, resolve=True) if node.get("task") else None
    return list(node.get("overrides", [])), task


def _lrs(spec, name: str, pair) -> list[float]:
    return [float(f"{lr * pair.get('lr_scale', 1):.6g}") for lr in spec.tasks[name].lrs]


def sweep(exp: Experiment) -> dict:
    spec, out = exp.spec, {}
    longest = max(spec.horizons)
    warmup = max(1, round(spec.warmup * min(spec.horizons)))
    for name in spec.run:
        overrides, task = _task(spec, name)
        for pair in spec.pairs:
            base = {f"{s}@{t}": Cell([*overrides, f"optimizer={pair.base}", f"schedule={s}", f"steps={t}"], task,
                                     f"{name} {pair.base} {s} T={t}")
                    for t in spec.horizons for s in spec.schedules}
            base["free"] = Cell([*overrides, f"optimizer={pair.free}", "schedule=constant", f"steps={longest}",
                                 f"eval_every={min(spec.horizons)}", f"optimizer.warmup_steps={warmup}"], task,
                                f"{name} {pair.free} T={longest}")
            out[(name, pair.free)] = tune_grid(exp, base, _lrs(spec, name, pair), spec.search_seed, spec.seeds,
                                               label=f"{name}/{pair.free}")
    return out


def _value_at(summary: dict, step: int) -> float:
    """The task metric at `step` of a run's curve (nan if it was not evaluated there)."""
    frame, _ = read_curve(Path(summary["run_dir"]), summary.get("run_id", ""))
    if frame is None:
        return np.nan
    hit = frame[(frame["metric"] == summary["metric"]) & (frame["step"] == step)]
    return float(hit["value"].iloc[-1]) if len(hit) and summary.get("status") == "ok" else np.nan


def _final(summaries: list[dict]) -> list[float]:
    return [float((s.get("final") or {}).get(s["metric"], np.nan)) if s.get("status") == "ok" else np.nan
            for s in summaries]


def analyse(exp: Experiment) -> Finding:
    spec = exp.spec
    results = sweep(exp)  # read-only by now: re-plans the sweep and reads its runs back
    rows, verdicts, panels, edges = [], [], [], []
    for (name, free), tuned in results.items():
        pair = next(p for p in spec.pairs if p.free == free)
        free_runs = tuned["free"]
        mode = (free_runs.seeds or free_runs.search)[0]["mode"]
        sign = -1.0 if mode == "max" else 1.0
        curve = {"free": [], "cosine": [], "linear": []}
        grid = _lrs(spec, name, pair)
        if free_runs.lr is not None and _at_edge(free_runs.lr, grid):
            edges.append(f"{name} {free}")
        for t in spec.horizons:
            sf = [_value_at(s, t) for s in free_runs.seeds]
            by_schedule = {s: tuned[f"{s}@{t}"] for s in spec.schedules}
            ok = {s: v for s, v in by_schedule.items() if v.score is not None}
            best = min(ok, key=lambda s: sign * ok[s].score) if ok else None
            base = _final(ok[best].seeds) if best else []
            p = stats.probability_of_improvement(_losses(sf, sign), _losses(base, sign))
            verdict = stats.verdict(p) if best else "no tuned schedule"
            verdicts.append((name, verdict))
            if best and _at_edge(ok[best].lr, grid):
                edges.append(f"{name} T={t} {pair.base} + {best}")
            for s in spec.schedules:
                curve[s].append(_final(by_schedule[s].seeds))
            curve["free"].append(sf)
            rows.append([name, t, f"{pair.base} + {best}" if best else "—",
                         _lr(ok[best]) if best else "—", ci(base, 3), _lr(free_runs), ci(sf, 3),
                         f"{p.value:.2f} [{p.lo:.2f}, {p.hi:.2f}]" if np.isfinite(p.lo) else f"{p.value:.2f}",
                         _word(verdict)])
        panels.append((name, free, pair.base, mode, free_runs.seeds[0]["metric"] if free_runs.seeds else "?", curve))
    body = markdown_table(["task", "T", "tuned schedule (by search)", "its lr", "its metric at T",
                           "Schedule-Free lr (tuned once)", "Schedule-Free at T", "P(Schedule-Free better)",
                           "Schedule-Free is"], rows)
    seeds = len(spec.seeds)
    body += (f"\n\nEvery (optimizer, schedule, T) was tuned on the same lr grid per task ({_grids(spec)}) with seed "
             f"{spec.search_seed}; the best lr was re-run with seeds {list(spec.seeds)} (n={seeds} per side). "
             f"Schedule-Free ran once per seed for T={max(spec.horizons)} with a constant lr (warm-up "
             f"{max(1, round(spec.warmup * min(spec.horizons)))} steps) and is read at each T; cosine warms up over 5% "
             f"of T, linear decays from the start, both to 0; weight decay 0 throughout (logreg's l2 is in its "
             f"objective). P(Schedule-Free better) is the chance that one of its seeds beats one tuned-schedule "
             f"seed, with a 95% bootstrap interval; \"tie\" means the interval contains 1/2.")
    figures = [exp.save(plot(exp, panels), "horizons")]
    if edges:
        body += ("\n\nTuned lr at the edge of its grid (the optimum may lie beyond it): " + "; ".join(edges) + ".")
    # The claim is per setting: a task reproduces it when Schedule-Free is worse at none of its T.
    tasks = list(dict.fromkeys(name for name, _ in verdicts))
    count = {t: {k: sum(v == k for n, v in verdicts if n == t) for k in ("better", "tie", "worse")} for t in tasks}
    holds = [t for t in tasks if count[t]["worse"] == 0]
    verdict = ("reproduced" if tasks and len(holds) == len(tasks) else
               "partly reproduced" if holds else "not reproduced at this scale")
    summary = ("Against the schedule tuned for each T, Schedule-Free was " + "; ".join(
        f"on {t}: better at {c['better']}, tied at {c['tie']}, worse at {c['worse']} of {len(spec.horizons)} budgets"
        for t, c in count.items()) + f" (n={seeds} seeds per side; better/worse only when the 95% interval of "
        f"P(better) excludes 1/2). The claim holds on: {', '.join(holds) or 'none'}.")
    return Finding(verdict, summary, body, figures)


def _at_edge(lr: float | None, grid: list[float]) -> bool:
    return lr is not None and len(grid) > 1 and (lr <= min(grid) or lr >= max(grid))


def _losses(values: list[float], sign: float) -> list[float]:
    """Lower-is-better values for the statistics; a missing or diverged run is +inf (a miss)."""
    return [sign * v if np.isfinite(v) else np.inf for v in values]


def _lr(tuned: Tuned) -> str:
    return f"{tuned.lr:g}" if tuned.lr is not None else "—"


def _word(verdict: str) -> str:
    return {"better": "**better**", "worse": "**worse**", "tie": "tied"}.get(verdict, verdict)


def _grids(spec) -> str:
    return "; ".join(f"{n}: {list(spec.tasks[n].lrs)}" for n in spec.run)


def plot(exp: Experiment, panels: list):
    fig, axes = figure(len(panels), width=5.5)
    for ax, (name, free, base, mode, metric, curve) in zip(axes, panels, strict=True):
        colour = colours([free, base])
        t = np.array(exp.spec.horizons, dtype=float)
        styles = {"free": (free, colour[free], "-", "o")}
        styles.update({s: (f"{base} + {s}", colour[base], ls, m)
                       for s, ls, m in zip(exp.spec.schedules, ("--", ":"), ("s", "^"), strict=False)})
        for key, (label, c, ls, marker) in styles.items():
            estimates = [stats.bootstrap([v for v in cell if np.isfinite(v)]) for cell in curve[key]]
            med, lo, hi = (np.array([getattr(e, part) for e in estimates]) for part in ("value", "lo", "hi"))
            ax.plot(t, med, ls=ls, marker=marker, color=c, label=label + (" (one run)" if key == "free" else
                                                                          " (tuned per T)"))
            ax.fill_between(t, np.where(np.isfinite(lo), lo, med), np.where(np.isfinite(hi), hi, med), color=c,
                            alpha=0.15)
        ax.set(xscale="log", xlabel="budget T (steps)", ylabel=f"{metric} at T ({'higher' if mode == 'max' else 'lower'}"
               " is better)", title=name)
        ax.set_xticks(t, [f"{x:g}" for x in t])
        ax.xaxis.set_minor_formatter(NullFormatter())  # the budgets are the only ticks worth a label
        if mode == "min" and np.nanmin([v for c in curve.values() for cell in c for v in cell] or [1]) > 0:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(f"Schedule-Free (one run) vs schedules tuned per T; median, 95% CI, {len(exp.spec.seeds)} seeds",
                 fontsize=10)
    return fig
