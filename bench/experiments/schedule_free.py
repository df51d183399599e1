"""Schedule-Free vs tuned schedules (Defazio et al., 2024).

For each task and budget T, the base optimizer (AdamW) with a cosine and a linear-decay schedule
is tuned on an lr grid for that T; the schedule whose search was better is "the tuned schedule"
at T. Schedule-Free is tuned on the same grid once, for the longest T, with a constant lr, and
its tuned run is read at every T on the way (its evaluation weights, via the optimizer's eval
mode). Each side's tuned lr is re-run with fresh seeds; the comparison at each (task, T) is an exact
rank test of those seeds, all (task, T) of the table one Holm family.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.ticker import NullFormatter
from omegaconf import OmegaConf

from bench.experiments.common import Cell, Experiment, Finding, Tuned, figure, tune_grid
from bench.experiments.verdicts import ci, family_note, interval, judged, supported
from bench.results import stats
from bench.results.markup import markdown
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


def judge(cells: list[tuple[str, int, list[float], list[float]]]) -> tuple[list[stats.Comparison], str]:
    """Schedule-Free against the tuned schedule at every (task, T): `cells` hold (task, T,
    Schedule-Free losses, tuned-schedule losses), lower is better, a miss +inf; an empty side
    (no tuned schedule) is left out of the family. All cells of the table are one Holm family;
    the claim ("matches") is supported where Schedule-Free is significantly better (`supported`)."""
    keys, losses = [], {}
    for task, t, free, base in cells:
        if free and base:
            a, b = f"free {task} {t}", f"tuned {task} {t}"
            losses[a], losses[b] = free, base
            keys.append((a, b))
    found = dict(zip(keys, stats.compare_family(losses, keys), strict=True)) if keys else {}
    out = [found.get((f"free {task} {t}", f"tuned {task} {t}")) for task, t, _, _ in cells]
    return out, supported([c.verdict if c else "missing" for c in out])


def analyse(exp: Experiment) -> Finding:
    spec = exp.spec
    results = sweep(exp)  # read-only by now: re-plans the sweep and reads its runs back
    cells, rows, panels, edges = [], [], [], []
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
            sf = _losses([_value_at(s, t) for s in free_runs.seeds], sign)
            by_schedule = {s: tuned[f"{s}@{t}"] for s in spec.schedules}
            ok = {s: v for s, v in by_schedule.items() if v.score is not None}
            best = min(ok, key=lambda s: sign * ok[s].score) if ok else None
            base = _losses(_final(ok[best].seeds), sign) if best else []
            cells.append((name, t, sf, base))
            if best and _at_edge(ok[best].lr, grid):
                edges.append(f"{name} T={t} {pair.base} + {best}")
            for s in spec.schedules:
                curve[s].append(_losses(_final(by_schedule[s].seeds), sign))
            curve["free"].append(sf)
            rows.append([name, t, f"{pair.base} + {best}" if best else "—", _lr(ok[best]) if best else "—",
                         ci(base, 3, sign), _lr(free_runs), ci(sf, 3, sign)])
        panels.append((name, free, pair.base, mode, free_runs.seeds[0]["metric"] if free_runs.seeds else "?", curve))
    comparisons, verdict = judge(cells)
    for row, (_, _, sf, base), c in zip(rows, cells, comparisons, strict=True):
        row += [interval(stats.p_beats_ci(sf, base), 2) if sf and base else "–",
                judged(c) if base else "no tuned schedule"]
    body = markdown(["task", "T", "tuned schedule (by search)", "its lr", "its metric at T",
                           "Schedule-Free lr (tuned once)", "Schedule-Free at T", "P(Schedule-Free better)",
                           "Schedule-Free is"], rows)
    seeds = len(spec.seeds)
    body += (f"\n\nEvery (optimizer, schedule, T) was tuned on the same lr grid per task ({_grids(spec)}) with seed "
             f"{spec.search_seed}; the best lr was re-run with seeds {list(spec.seeds)} (n={seeds} per side). "
             f"Schedule-Free ran once per seed for T={max(spec.horizons)} with a constant lr (warm-up "
             f"{max(1, round(spec.warmup * min(spec.horizons)))} steps) and is read at each T; cosine warms up over 5% "
             f"of T, linear decays from the start, both to 0; weight decay 0 throughout (logreg's l2 is in its "
             f"objective). A run that diverged or failed is a miss (+∞). P(Schedule-Free better) is the chance that "
             f"one of its seeds beats one tuned-schedule seed (ties count half), with Newcombe's 95% interval.")
    present = [c for c in comparisons if c is not None]
    body += "\n\n" + family_note(exp, present, "Schedule-Free vs the tuned schedule per task and T", seeds)
    body += ("\n\nThe claim is that Schedule-Free *matches* the tuned schedules; the test can show a difference, "
             "never an equality, so a budget supports the claim only where Schedule-Free is significantly better, "
             "and contradicts it where it is significantly worse: reproduced when every budget supports it, partly "
             "when some do.")
    figures = [exp.save(plot(exp, panels), "horizons")]
    if edges:
        body += ("\n\nTuned lr at the edge of its grid (the optimum may lie beyond it): " + "; ".join(edges) + ".")
    tasks = list(dict.fromkeys(task for task, *_ in cells))
    kinds = ("better", "worse", "not significant", "n too small")
    count = {t: {k: sum(c is not None and c.verdict == k for (n, *_), c in zip(cells, comparisons, strict=True)
                        if n == t) for k in kinds} for t in tasks}
    holds = [t for t in tasks if count[t]["better"] and not count[t]["worse"]]
    summary = ("Against the schedule tuned for each T, Schedule-Free was " + "; ".join(
        f"on {t}: significantly better at {c['better']}, worse at {c['worse']}, not significantly different at "
        f"{c['not significant']}" + (f", n too small at {c['n too small']}" if c["n too small"] else "")
        + f" of {len(spec.horizons)} budgets" for t, c in count.items())
        + f" (n={seeds} seeds per side; one Holm family of {len(present)} exact rank tests). Supported "
        f"(better somewhere, worse nowhere) on: {', '.join(holds) or 'none'}.")
    return Finding(verdict, summary, body, figures)


def _at_edge(lr: float | None, grid: list[float]) -> bool:
    return lr is not None and len(grid) > 1 and (lr <= min(grid) or lr >= max(grid))


def _losses(values: list[float], sign: float) -> list[float]:
    """Lower-is-better values for the statistics; a missing or diverged run is +inf (a miss)."""
    return [sign * v if np.isfinite(v) else np.inf for v in values]


def _lr(tuned: Tuned) -> str:
    return f"{tuned.lr:g}" if tuned.lr is not None else "—"


def _grids(spec) -> str:
    return "; ".join(f"{n}: {list(spec.tasks[n].lrs)}" for n in spec.run)


def plot(exp: Experiment, panels: list):
    fig, axes = figure(len(panels), width=5.5)
    for ax, (name, free, base, mode, metric, curve) in zip(axes, panels, strict=True):
        sign = -1.0 if mode == "max" else 1.0
        colour = colours([free, base])
        t = np.array(exp.spec.horizons, dtype=float)
        styles = {"free": (free, colour[free], "-", "o")}
        styles.update({s: (f"{base} + {s}", colour[base], ls, m)
                       for s, ls, m in zip(exp.spec.schedules, ("--", ":"), ("s", "^"), strict=False)})
        for key, (label, c, ls, marker) in styles.items():
            # losses → the metric's own units; below 6 seeds no interval, so the band is the median itself
            estimates = [stats.median_ci(cell) for cell in curve[key]]
            med, lo, hi = (sign * np.array([getattr(e, part) for e in estimates]) for part in ("value", "lo", "hi"))
            lo, hi = np.fmin(lo, hi), np.fmax(lo, hi)
            ax.plot(t, med, ls=ls, marker=marker, color=c, label=label + (" (one run)" if key == "free" else
                                                                          " (tuned per T)"))
            ax.fill_between(t, np.where(np.isfinite(lo), lo, med), np.where(np.isfinite(hi), hi, med), color=c,
                            alpha=0.15)
        ax.set(xscale="log", xlabel="budget T (steps)", ylabel=f"{metric} at T ({'higher' if mode == 'max' else 'lower'}"
               " is better)", title=name)
        ax.set_xticks(t, [f"{x:g}" for x in t])
        ax.xaxis.set_minor_formatter(NullFormatter())  # the budgets are the only ticks worth a label
        finite = [v for c in curve.values() for cell in c for v in cell if np.isfinite(v)]
        if mode == "min" and min(finite or [1]) > 0:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.suptitle(f"Schedule-Free (one run) vs schedules tuned per T; median and 95% order-statistic CI "
                 f"(where n allows), {len(exp.spec.seeds)} seeds",
                 fontsize=10)
    return fig
