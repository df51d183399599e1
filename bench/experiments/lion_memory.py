"""Lion's memory and learning rate (Chen et al., 2023).

Memory: the claim is about the algorithm, so it is measured on the reference implementations
(lion-pytorch's `Lion`, torch's `AdamW`), with bench's own optimizers beside them, on each task's
real model after real steps. Two independent counts: the bytes of the storages behind the state
tensors after the steps (each storage once), and the bytes of every tensor an op creates during
`step()` (a dispatch mode that reads each op's schema: outputs that alias no input are new
memory), from which the bytes a first step keeps (its state) and the transient peak of a later
step follow. Neither reads what a class declares about itself. Exact numbers: no seeds needed.

Learning rate: AdamW and Lion train the same task on the same quarter-decade lr grid with several
seeds. Each seed's optimum lies between grid points: the vertex of the parabola through its grid
minimum and the two neighbours, in (log lr, final metric). The ratio of the optimizers' median
optima gets the Moses interval over seeds (exact under a scale model), and an exact rank test says
whether Lion's optimum is smaller at all.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from omegaconf import OmegaConf, open_dict

from bench import BenchError
from bench.config import CONF_DIR
from bench.experiments.common import VERDICTS, Cell, Experiment, Finding, figure
from bench.experiments.state_bytes import StepMemory, measure_steps
from bench.experiments.verdicts import ci, family_note, interval, judged
from bench.results import stats
from bench.results.markup import markdown
from bench.results.plots import colours, lr_sensitivity


def _optimizers(names) -> tuple[list[str], list[str]]:
    """(present, missing): an optimizer this version of bench lacks is reported, not an error."""
    present = [n for n in names if (CONF_DIR / "optimizer" / f"{n}.yaml").exists()]
    return present, [n for n in names if n not in present]


# --- memory: each implementation on each task's model (the counting itself: state_bytes.py) --------

def _import(path: str):
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as exc:
        raise BenchError(f"lion_memory measures the reference implementation {path}, which cannot be imported "
                         f"({exc}); install the dev extra (pip install -e '.[dev]') or edit memory.reference in "
                         "bench/conf/experiment/lion_memory.yaml") from exc


def measure_memory(exp: Experiment) -> list[StepMemory]:
    """Every reference implementation and every bench optimizer of `memory:` on each task's model
    (seed 0, the run's own batches), eager steps (no torch.compile, whose kernels the dispatch
    mode cannot see into)."""
    from bench.optimizers import build_optimizer
    from bench.runner.build import build_task, resolve_device
    from bench.runner.checkpoint import seed_everything

    m = exp.spec.memory
    present, _ = _optimizers(m.optimizers)
    out = []
    for task_name in m.tasks:
        for label, target in [*((k, v) for k, v in (m.get("reference") or {}).items()), *((o, None) for o in present)]:
            cfg = exp.compose([f"task={task_name}", f"optimizer={label if target is None else 'adamw'}", "seed=0"])
            device = resolve_device(cfg.device)
            seed_everything(0)
            task = build_task(cfg, device)
            model = task.model()
            params = [p for p in model.parameters() if p.requires_grad]
            if target is None:
                with open_dict(cfg):
                    if "compile" in cfg.optimizer:
                        cfg.optimizer.compile = False
                optimizer, _ = build_optimizer(cfg.optimizer, model)
                source, declared = f"bench ({cfg.optimizer._target_})", str(cfg.optimizer.get("state_per_param", "?"))
            else:
                optimizer, source, declared = _import(target)(params, lr=1e-4), target, ""
            numbers = measure_steps(model, optimizer, task, int(m.steps))
            out.append(StepMemory(task_name, label, source, sum(p.numel() for p in params), len(params),
                                  declared=declared, **numbers))
    return out


#: bytes per parameter tensor the claim leaves out: a 0-dim step counter (float32 or float64)
COUNTER_BYTES = 8


def memory_claim(rows: list[StepMemory], tasks) -> tuple[bool, dict]:
    """On every task, the reference Lion's state is 4 bytes per fp32 parameter and AdamW's 8 (so
    Lion's is half), each up to `COUNTER_BYTES` per parameter tensor for step counters."""
    ref = {(r.task, r.optimizer): r for r in rows if not r.implementation.startswith("bench")}

    def close(r: StepMemory | None, per_param: int) -> bool:
        return r is not None and abs(r.state_bytes - per_param * r.n_params) <= COUNTER_BYTES * r.n_tensors

    holds = all(close(ref.get((t, "lion")), 4) and close(ref.get((t, "adamw")), 8) for t in tasks)
    return bool(tasks) and holds, {k: r.per_param("state_bytes") for k, r in ref.items()}


# --- learning rate: each seed's optimum between grid points ---------------------------------------

def seed_optimum(lrs: np.ndarray, losses: np.ndarray) -> tuple[float, str]:
    """(lr, how) minimising one seed's final loss over the grid: the vertex of the parabola
    through the grid minimum and its two neighbours in (log lr, loss), which lies within half a
    grid step of the minimum; the grid point itself where a neighbour is missing (the grid's
    edge) or diverged. nan when every run diverged."""
    order = np.argsort(lrs)
    x, y = np.log(np.asarray(lrs, dtype=float)[order]), np.asarray(losses, dtype=float)[order]
    if not np.isfinite(y).any():
        return math.nan, "diverged"
    i = int(np.nanargmin(np.where(np.isfinite(y), y, np.inf)))
    if i == 0 or i == len(x) - 1:
        return float(np.exp(x[i])), "edge"
    if not np.isfinite(y[i - 1:i + 2]).all():
        return float(np.exp(x[i])), "grid"
    (x0, x1, x2), (y0, y1, y2) = x[i - 1:i + 2], y[i - 1:i + 2]
    # the vertex of the parabola through three points, any spacing (Numerical Recipes §10.3)
    denom = (x1 - x0) * (y1 - y2) - (x1 - x2) * (y1 - y0)
    if denom == 0:  # three equal losses: no curvature to place a vertex
        return float(np.exp(x1)), "grid"
    vertex = x1 - 0.5 * ((x1 - x0) ** 2 * (y1 - y2) - (x1 - x2) ** 2 * (y1 - y0)) / denom
    return float(np.exp(np.clip(vertex, x0, x2))), "parabola"


def optima(frame: pd.DataFrame, optimizer: str) -> tuple[list[float], list[str]]:
    """Each seed's interpolated optimum (`seed_optimum`) of one optimizer; `frame` has columns
    optimizer, lr, seed, loss (lower is better, a diverged run +inf)."""
    table = frame[frame["optimizer"] == optimizer].pivot_table(index="seed", columns="lr", values="loss",
                                                               aggfunc="first")
    found = [seed_optimum(table.columns.to_numpy(float), row.to_numpy(float)) for _, row in table.iterrows()]
    return [lr for lr, _ in found], [how for _, how in found]


@dataclass
class LrJudgement:
    comparison: stats.Comparison  # Lion's optima against AdamW's: "better" = significantly smaller
    ratio: stats.Estimate  # median AdamW optimum ÷ median Lion optimum, Moses interval
    band: tuple[float, float]

    @property
    def inside(self) -> bool:
        """The whole interval of the ratio inside the claimed band (two one-sided tests)."""
        return self.ratio.has_interval and self.band[0] <= self.ratio.lo and self.ratio.hi <= self.band[1]


def judge_lr(adamw: list[float], lion: list[float], band: tuple[float, float]) -> LrJudgement:
    """Seeds whose every run diverged have no optimum and are left out (the text says how many)."""
    adamw = [x for x in adamw if np.isfinite(x)]
    lion = [x for x in lion if np.isfinite(x)]
    comparison = stats.compare_family({"lion": lion, "adamw": adamw}, [("lion", "adamw")])[0]
    return LrJudgement(comparison, stats.ratio_ci(adamw, lion), tuple(band))


def verdict(memory_ok: bool, lr: LrJudgement) -> str:
    if memory_ok and lr.inside:
        return VERDICTS[0]
    return VERDICTS[1] if memory_ok or lr.comparison.verdict == "better" else VERDICTS[2]


# --- the preset ---------------------------------------------------------------------------------------

def lr_cells(exp: Experiment) -> list[Cell]:
    s = exp.spec.lr_sweep
    task = OmegaConf.to_container(s.task, resolve=True) if s.get("task") else None
    steps = [f"steps={task['budget']}"] if task else []
    return [Cell([*s.overrides, *steps, f"optimizer={o}", f"optimizer.lr={lr}", f"seed={seed}"], task,
                 f"{o} lr={lr:g} seed={seed}")
            for o in s.optimizers for lr in s.lrs for seed in s.seeds]


def sweep(exp: Experiment) -> list[dict]:
    return exp.run(lr_cells(exp), label="lr sweep")


def analyse(exp: Experiment) -> Finding:
    spec = exp.spec
    lr_runs = sweep(exp)  # read-only by now
    present, missing = _optimizers(spec.memory.optimizers)
    tasks = list(spec.memory.tasks)
    memory = measure_memory(exp)
    memory_ok, per_param = memory_claim(memory, tasks)

    frame = pd.DataFrame([{"optimizer": s.get("optimizer"), "lr": float(s["hyperparameters"]["lr"]),
                           "seed": s.get("seed"), "loss": _loss(s)} for s in lr_runs if "hyperparameters" in s])
    found = {o: optima(frame, o) if len(frame) else ([], []) for o in ("adamw", "lion")}
    band = tuple(spec.lr_sweep.band)
    lr = judge_lr(found["adamw"][0], found["lion"][0], band)
    grid_best = {o: float(frame[frame.optimizer == o].groupby("lr")["loss"].median().idxmin())
                 for o in ("adamw", "lion")} if len(frame) else {"adamw": math.nan, "lion": math.nan}
    figures = [exp.save(plot_memory(exp, memory), "state-bytes"),
               exp.save(plot_lr(exp, lr_runs, {o: stats.median(np.array(found[o][0])) for o in found}), "lr")]
    n_seeds = len(spec.lr_sweep.seeds)
    low, high = band
    ratio_text = interval(lr.ratio, 3, "interval")
    summary = ("Lion's state (lion-pytorch) is " + ", ".join(f"{per_param.get((t, 'lion'), math.nan):.3f}" for t in tasks)
               + " B/param, AdamW's (torch.optim) " + ", ".join(f"{per_param.get((t, 'adamw'), math.nan):.3f}"
                                                                 for t in tasks)
               + f" on {', '.join(tasks)} (counted from the state's storages after real steps); "
               f"the best lr of AdamW over Lion's, each seed's optimum interpolated between grid points, is "
               f"{ratio_text} (n={n_seeds} seeds per optimizer), "
               + ("with its whole interval inside" if lr.inside else "not shown to lie inside")
               + f" the claimed {low:g}–{high:g}×; Lion's optimum is smaller: {judged(lr.comparison)}.")
    body = ("**Optimizer state and step memory**, measured on each task's model after "
            f"{spec.memory.steps} real steps (seed 0): *state* = bytes of the storages behind the state tensors "
            "(each storage once); *kept by step 1* = bytes the first step created and still holds (its state, by "
            "allocation tracking); *allocated per step* and *peak during a step* = what a later step creates, "
            "transient buffers included, and the most of it alive at once. All per parameter (fp32: 4 bytes).\n\n")
    body += markdown(
        ["task", "optimizer", "implementation", "parameters", "state bytes", "state / param", "kept by step 1 / param",
         "allocated per step / param", "peak during a step / param", "declared (yaml)"],
        [[r.task, r.optimizer, f"`{r.implementation}`", f"{r.n_params:,}", f"{r.state_bytes:,}",
          f"{r.per_param('state_bytes'):.3f}", f"{r.per_param('first_step_kept'):.3f}",
          f"{r.per_param('step_allocated'):.3f}", f"{r.per_param('step_peak'):.3f}", r.declared or "—"]
         for r in memory])
    body += ("\n\nThe memory verdict reads the reference implementations only: on every task Lion's state is 4 "
             "bytes per parameter and AdamW's 8, each up to a step counter (≤ 8 bytes) per parameter tensor. "
             f"Memory claim: **{'holds' if memory_ok else 'fails'}**. Bench's own "
             "optimizers are measured the same way for comparison; a factored or stateless rule saves memory only "
             "on the parameters it treats as matrices, the rest keep their full state.")
    if missing:
        body += f"\n\nNot in this version of bench, so not measured: {', '.join(missing)}."
    t = spec.lr_sweep.task
    where = f"{t.n_train} {t.dataset} images, {t.width}-wide MLP, batch {t.batch_size}, {t.budget} steps" if t else \
        " ".join(spec.lr_sweep.overrides)
    metric = lr_runs[0].get("metric", "metric") if lr_runs else "metric"
    body += (f"\n\n**Best learning rate**: AdamW and Lion on the same {len(spec.lr_sweep.lrs)}-point lr grid "
             f"({spec.lr_sweep.lrs[0]:g} to {spec.lr_sweep.lrs[-1]:g}, a factor of {_step(spec.lr_sweep.lrs):.3g} "
             f"apart), {n_seeds} seeds each, cosine schedule, no weight decay ({where}), final {metric}.\n\n")
    rows = []
    for o in ("adamw", "lion"):
        values, how = found[o]
        rows.append([o, ci(values, 3), f"{grid_best[o]:.3g}", ", ".join(f"{how.count(k)} {k}" for k in
                                                                         ("parabola", "grid", "edge", "diverged")
                                                                         if how.count(k))])
    body += markdown(["optimizer", "best lr per seed (interpolated)", "grid point of the lowest median loss",
                            "how each seed's optimum was found"], rows)
    body += (f"\n\nAdamW ÷ Lion = ratio of the median per-seed optima, {ratio_text}: the Moses interval on log lr, "
             f"exact under a scale model, over the seeds' scatter (the interpolation's own error is not in it; "
             f"the grid point of the lowest median loss is known only to the grid factor of "
             f"{_step(spec.lr_sweep.lrs):.3g}). A seed at the grid's edge may have its optimum beyond it. ")
    body += family_note(exp, [lr.comparison], "Lion's per-seed optima against AdamW's", n_seeds, "lr_sweep.seeds")
    return Finding(verdict(memory_ok, lr), summary, body, figures)


def _step(lrs) -> float:
    return float(np.exp(np.median(np.diff(np.log(np.asarray(lrs, dtype=float)))))) if len(lrs) > 1 else 1.0


def _loss(summary: dict) -> float:
    value = (summary.get("final") or {}).get(summary.get("metric"))
    if summary.get("status") != "ok" or not isinstance(value, (int, float)) or not np.isfinite(value):
        return np.inf
    return -value if summary.get("mode") == "max" else value


def plot_memory(exp: Experiment, rows: list[StepMemory]):
    tasks = list(exp.spec.memory.tasks)
    labels = list(dict.fromkeys(_short(r) for r in rows))
    colour = colours(labels)
    per = {(r.task, _short(r)): r.per_param("state_bytes") for r in rows}
    fig, (ax,) = figure(1, width=7.5)
    width = 0.8 / max(1, len(labels))
    for i, label in enumerate(labels):
        values = [per.get((t, label), np.nan) for t in tasks]
        bars = ax.bar(np.arange(len(tasks)) + (i - (len(labels) - 1) / 2) * width, values, width,
                      color=colour[label], label=label, hatch="" if label.startswith("bench") else "//")
        ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], fontsize=7)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set(ylabel="optimizer state (bytes per parameter)",
           title="Optimizer state per parameter, from the state's storages (fp32)")
    ax.legend(fontsize=7)
    return fig


def _short(r: StepMemory) -> str:
    return f"bench {r.optimizer}" if r.implementation.startswith("bench") else f"{r.optimizer} (reference)"


def plot_lr(exp: Experiment, lr_runs: list[dict], optimum: dict[str, float]):
    from bench.results.store import load

    runs = load(exp.runs_root)
    ids = {s.get("run_id") for s in lr_runs}
    table = runs.table[runs.table["run_id"].isin(ids)].copy()
    table["benchmark"] = "lr sweep"
    colour = colours(table["optimizer"])
    fig = lr_sensitivity(table, "lr sweep", colour)
    ax = fig.axes[0]
    for o, lr in optimum.items():
        if np.isfinite(lr):
            ax.axvline(lr, color=colour.get(o, "gray"), ls=":", lw=1)
    ax.set_title(f"Final {table['metric'].iloc[0]} vs lr, median over {len(exp.spec.lr_sweep.seeds)} seeds\n"
                 "(✕ = diverged; dotted: median of the per-seed optima)", fontsize=9)
    return fig
