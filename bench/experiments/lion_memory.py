"""Lion's memory and learning rate (Chen et al., 2023).

Memory: every optimizer runs a few steps on each task and its summary's optimizer_state_bytes
(bytes held in state tensors, the same count for every optimizer) is divided by the model's
parameter count. Exact numbers: no seeds needed.

Learning rate: AdamW and Lion train the same task on the same quarter-decade lr grid with several
seeds; an optimizer's best lr minimises the median final metric over seeds. The interval of the
ratio best-lr(AdamW) / best-lr(Lion) comes from resampling the seeds (bootstrap) and redoing
that choice, so it reflects how sure the grid is of each optimum.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from bench.config import CONF_DIR
from bench.experiments.common import Cell, Experiment, Finding, figure, markdown_table
from bench.results import stats
from bench.results.plots import colours, lr_sensitivity


def _optimizers(names) -> tuple[list[str], list[str]]:
    """(present, missing): an optimizer this version of bench lacks is reported, not an error."""
    present = [n for n in names if (CONF_DIR / "optimizer" / f"{n}.yaml").exists()]
    return present, [n for n in names if n not in present]


def memory_cells(exp: Experiment) -> list[Cell]:
    m = exp.spec.memory
    present, _ = _optimizers(m.optimizers)
    return [Cell([f"task={t}", f"optimizer={o}", f"steps={m.steps}", "eval_every=1000000"], label=f"{t} {o}")
            for t in m.tasks for o in present]


def lr_cells(exp: Experiment) -> list[Cell]:
    s = exp.spec.lr_sweep
    task = OmegaConf.to_container(s.task, resolve=True) if s.get("task") else None
    steps = [f"steps={task['budget']}"] if task else []
    return [Cell([*s.overrides, *steps, f"optimizer={o}", f"optimizer.lr={lr}", f"seed={seed}"], task,
                 f"{o} lr={lr:g} seed={seed}")
            for o in s.optimizers for lr in s.lrs for seed in s.seeds]


def sweep(exp: Experiment) -> tuple[list[dict], list[dict]]:
    return exp.run(memory_cells(exp), label="memory"), exp.run(lr_cells(exp), label="lr sweep")


def best_lr_ratio(frame: pd.DataFrame, numerator: str, denominator: str, n_boot: int = 2000, seed: int = 0):
    """(point ratio, bootstrap draws) of best-lr(numerator) / best-lr(denominator). `frame` has
    columns optimizer, lr, seed, loss (lower is better; a diverged run is +inf)."""
    rng = np.random.default_rng(seed)
    tables = {o: frame[frame["optimizer"] == o].pivot_table(index="seed", columns="lr", values="loss", aggfunc="first")
              for o in (numerator, denominator)}

    def best(table: pd.DataFrame, rows: np.ndarray) -> float:
        medians = stats.median(table.to_numpy(float)[rows], axis=0)
        return float(table.columns[int(np.argmin(medians))])

    def ratio(rows_n, rows_d) -> float:
        return best(tables[numerator], rows_n) / best(tables[denominator], rows_d)

    n_num, n_den = len(tables[numerator]), len(tables[denominator])
    point = ratio(np.arange(n_num), np.arange(n_den))
    draws = np.array([ratio(rng.integers(0, n_num, n_num), rng.integers(0, n_den, n_den)) for _ in range(n_boot)])
    return point, draws


def analyse(exp: Experiment) -> Finding:
    spec = exp.spec
    memory, lr_runs = sweep(exp)  # read-only by now
    present, missing = _optimizers(spec.memory.optimizers)

    mem_rows, per_param = [], {}
    for cell, s in zip(memory_cells(exp), memory, strict=True):
        task, opt = cell.label.split()
        ok = s.get("status") == "ok" and s.get("n_params")
        value = s["optimizer_state_bytes"] / s["n_params"] if ok else np.nan
        per_param[(task, opt)] = value
        mem_rows.append([task, opt, f"{s.get('n_params', 0):,}", f"{s.get('optimizer_state_bytes', 0):,}",
                         f"{value:.3f}" if ok else s.get("status"), _declared(opt)])
    lion_ok = all(abs(per_param.get((t, "lion"), np.nan) - 4.0) < 0.01 for t in spec.memory.tasks)
    half_ok = all(abs(per_param.get((t, "lion"), np.nan) * 2 - per_param.get((t, "adamw"), np.nan)) < 0.02
                  for t in spec.memory.tasks)

    frame = pd.DataFrame([{"optimizer": s.get("optimizer"), "lr": float(s["hyperparameters"]["lr"]),
                           "seed": s.get("seed"), "loss": _loss(s)} for s in lr_runs if "hyperparameters" in s])
    low, high = spec.lr_sweep.band
    point, draws = best_lr_ratio(frame, "adamw", "lion") if len(frame) else (np.nan, np.array([np.nan]))
    lo, hi = float(np.percentile(draws, 2.5, method="lower")), float(np.percentile(draws, 97.5, method="higher"))
    in_band = bool(low <= point <= high)
    sure = bool(low <= lo and hi <= high)

    figures = [exp.save(plot_memory(exp, per_param), "state-bytes"), exp.save(plot_lr(exp, lr_runs), "lr")]
    n_seeds = len(spec.lr_sweep.seeds)
    best = {o: float(frame[frame.optimizer == o].groupby("lr")["loss"].median().idxmin()) for o in ("adamw", "lion")} \
        if len(frame) else {"adamw": np.nan, "lion": np.nan}
    memory_claim = lion_ok and half_ok
    # reproduced only when the whole interval of the ratio lies in the claimed band
    verdict = ("reproduced" if memory_claim and sure else
               "partly reproduced" if memory_claim or in_band else "not reproduced at this scale")
    lion_text = ", ".join(f"{per_param.get((t, 'lion'), np.nan):.3f} B/param on {t}" for t in spec.memory.tasks)
    summary = (f"Lion's state is {lion_text} (AdamW: "
               + ", ".join(f"{per_param.get((t, 'adamw'), np.nan):.3f}" for t in spec.memory.tasks)
               + f"); best lr AdamW {best['adamw']:.3g} vs Lion {best['lion']:.3g}, a ratio of {point:.3g} "
               f"[{lo:.3g}, {hi:.3g}] (n={n_seeds} seeds, 95% bootstrap interval), "
               + ("inside" if in_band else "outside") + f" the claimed {low}-{high}×"
               + (" with its whole interval." if sure else "."))
    body = "**Optimizer state** (bytes in state tensors after a few steps, divided by the model's parameters):\n\n"
    body += markdown_table(["task", "optimizer", "parameters", "state bytes", "bytes / parameter", "declared"],
                           mem_rows)
    others = [o for o in present if o not in ("adamw", "lion")]
    if others:  # measured and shown, but the verdict is about Lion's claims only
        body += "\n\nThe verdict judges Lion only; for the others, per task: " + "; ".join(
            f"{o} " + ", ".join(f"{per_param.get((t, o), np.nan):.3g}" for t in spec.memory.tasks) + " B/param"
            for o in others) + f" ({', '.join(spec.memory.tasks)}). A factored or stateless rule saves memory only " \
            "on the parameters it treats as matrices; the rest keep their full state (see each optimizer's yaml)."
    if missing:
        body += f"\n\nNot in this version of bench, so not measured: {', '.join(missing)}."
    t = spec.lr_sweep.task
    where = f"{t.n_train} {t.dataset} images, {t.width}-wide MLP, batch {t.batch_size}, {t.budget} steps" if t else \
        " ".join(spec.lr_sweep.overrides)
    body += (f"\n\n**Best learning rate**: AdamW and Lion on the same {len(spec.lr_sweep.lrs)}-point lr grid "
             f"({spec.lr_sweep.lrs[0]:g} to {spec.lr_sweep.lrs[-1]:g}), {n_seeds} seeds each, "
             f"cosine schedule, no weight decay ({where}); best = lowest median final "
             f"{lr_runs[0].get('metric', 'metric') if lr_runs else 'metric'} over seeds. Grid resolution: a factor "
             f"of {_step(spec.lr_sweep.lrs):.3g}, so a ratio is a power of it.")
    return Finding(verdict, summary, body, figures)


def _step(lrs) -> float:
    return float(np.exp(np.median(np.diff(np.log(np.asarray(lrs, dtype=float)))))) if len(lrs) > 1 else 1.0


def _loss(summary: dict) -> float:
    value = (summary.get("final") or {}).get(summary.get("metric"))
    if summary.get("status") != "ok" or not isinstance(value, (int, float)) or not np.isfinite(value):
        return np.inf
    return -value if summary.get("mode") == "max" else value


def _declared(optimizer: str) -> str:
    node = OmegaConf.load(CONF_DIR / "optimizer" / f"{optimizer}.yaml")
    return str(node.get("state_per_param", "?"))


def plot_memory(exp: Experiment, per_param: dict):
    tasks = list(exp.spec.memory.tasks)
    opts = sorted({o for _, o in per_param})
    colour = colours(opts)
    fig, (ax,) = figure(1, width=6.5)
    width = 0.8 / max(1, len(opts))
    for i, opt in enumerate(opts):
        values = [per_param.get((t, opt), np.nan) for t in tasks]
        bars = ax.bar(np.arange(len(tasks)) + (i - (len(opts) - 1) / 2) * width, values, width, color=colour[opt],
                      label=opt)
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set(ylabel="optimizer state (bytes per parameter)", title="Optimizer state per parameter (fp32)")
    ax.legend(fontsize=8)
    return fig


def plot_lr(exp: Experiment, lr_runs: list[dict]):
    from bench.results.store import load

    runs = load(exp.runs_root)
    ids = {s.get("run_id") for s in lr_runs}
    table = runs.table[runs.table["run_id"].isin(ids)].copy()
    table["benchmark"] = "lr sweep"
    fig = lr_sensitivity(table, "lr sweep", colours(table["optimizer"]))
    fig.axes[0].set_title(f"Final {table['metric'].iloc[0]} vs lr, median over {len(exp.spec.lr_sweep.seeds)} seeds "
                          "(✕ = diverged)")
    return fig
