"""Reality-check leaderboards (Nado et al. 2021; AlgoPerf): every optimizer is shown at its tuned
best with the tuning budget it used, n, and a confidence interval on every number.

Vocabulary. A *trial* is one distinct optimizer setting (hyperparameters + schedule) on one
benchmark; its *seeds* are the runs of that setting. An optimizer's *tuned best* is the trial with
the best median final metric over its seeds (ties: more seeds, then the lower setting key). Runs
that diverged or failed count as misses (worst possible), never as absent.

Fresh seeds. Where `bench tune` re-ran its chosen setting over fresh seeds (runs with phase
"seeds"), that setting is the tuned best and only those runs are its estimate: seeds that did not
take part in the choice give an unbiased number. Elsewhere the tuned best's seeds also chose it,
so with many trials and few seeds its number is optimistic; the board then says so (CAVEAT).
"""

from __future__ import annotations

import json
import math
from typing import Sequence

import numpy as np
import pandas as pd

from bench.results import stats

#: how an optimizer compares with another, and with the baseline: see `stats.verdict`
RULE = ("A beats B when the 95% bootstrap interval of P(a seed of A beats a seed of B) lies above 1/2 "
        "(worse: below 1/2); otherwise they tie. Rank = 1 + the number of optimizers that beat it.")
CAVEAT = ("The tuned best's seeds also selected it, so with many trials and few seeds its value is "
          "optimistic; re-run the winning setting with fresh seeds for an unbiased number (bench tune does).")
FRESH = "Final numbers of a tuned best come from its fresh-seed re-runs (bench tune's seeds phase) alone."


def caveats(board: pd.DataFrame) -> str:
    """What the board's final numbers rest on: fresh seeds, seeds that also chose them, or both."""
    fresh = board["fresh_seeds"] if "fresh_seeds" in board else pd.Series(False, index=board.index)
    return " ".join(([FRESH] if fresh.any() else []) + ([CAVEAT] if (~fresh).any() else []))


def trials(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (benchmark, optimizer, setting): seeds, median loss (lower is better)."""
    grouped = runs.groupby(["benchmark", "optimizer", "setting"], sort=True)
    out = grouped.agg(seeds=("loss", "size"), median_loss=("loss", lambda x: stats.median(x.to_numpy(), 0)))
    return out.reset_index()


def tuned(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs of each (benchmark, optimizer)'s tuned-best setting: its fresh-seed re-runs where
    there are any (column fresh_seeds true), otherwise every run of the best trial."""
    if runs.empty:
        return runs.assign(fresh_seeds=pd.Series(dtype=bool))
    fresh = (runs["phase"] == "seeds") if "phase" in runs else pd.Series(False, index=runs.index)
    confirmed = set(zip(runs.loc[fresh, "benchmark"], runs.loc[fresh, "optimizer"], strict=True))
    judged_on_fresh = pd.Series([k in confirmed for k in zip(runs["benchmark"], runs["optimizer"], strict=True)],
                                index=runs.index, dtype=bool)
    runs = runs[fresh | ~judged_on_fresh].assign(fresh_seeds=judged_on_fresh)
    t = trials(runs).sort_values(["benchmark", "optimizer", "median_loss", "seeds", "setting"],
                                 ascending=[True, True, True, False, True])
    best = t.drop_duplicates(["benchmark", "optimizer"])[["benchmark", "optimizer", "setting"]]
    return runs.merge(best, on=["benchmark", "optimizer", "setting"])


def describe_setting(runs: pd.DataFrame, setting: str, optimizer: str) -> str:
    """`lr=0.01 weight_decay=0.1`: the hyperparameters that vary across this optimizer's trials
    (lr always), so the column says what tuning chose rather than repeating defaults."""
    chosen = runs.loc[runs["setting"] == setting]
    if chosen.empty:
        return ""
    mine = runs.loc[runs["optimizer"] == optimizer, "hyperparameters"].dropna().unique()
    settings = [_loads(h) for h in mine]
    hp = _loads(chosen["hyperparameters"].iloc[0])
    keys = [k for k in hp if k == "lr" or len({json.dumps(s.get(k)) for s in settings}) > 1]
    parts = [f"{k}={_short(hp[k])}" for k in keys]
    if runs.loc[runs["optimizer"] == optimizer, "schedule"].astype(str).nunique() > 1:
        parts.append(f"schedule={chosen['schedule'].iloc[0]}")
    return " ".join(parts)


def _loads(text) -> dict:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _short(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, list):
        return "(" + ",".join(_short(v) for v in value) + ")"
    return str(value)


def _est(prefix: str, e: stats.Estimate) -> dict:
    return {prefix: e.value, f"{prefix}_lo": e.lo, f"{prefix}_hi": e.hi}


def _flip(e: stats.Estimate, mode: str) -> stats.Estimate:
    """Back from loss orientation to the metric's own (max-mode metrics were negated)."""
    return e if mode != "max" else stats.Estimate(-e.value, -e.hi, -e.lo, e.n)


def leaderboard(runs: pd.DataFrame, task: str | Sequence[str] | None = None, baseline: str = "adamw",
                n_boot: int = stats.N_BOOT, level: float = stats.LEVEL, seed: int = 0) -> pd.DataFrame:
    """One row per (benchmark, optimizer), numbers raw (see `bench.results.tables` to render).

    Columns: benchmark, task, metric, mode, target, optimizer, rank, trials, runs, n,
    hyperparameters, final (+_lo, _hi: median over the tuned best's seeds and its interval),
    reached (seeds that hit the target), steps_to_target / time_to_target_s (+_lo, _hi; medians
    with misses as inf), diverged / failed (over all runs of every trial), optimizer_state_bytes,
    step_time_ms (+_lo, _hi), p_vs_baseline (+_lo, _hi), vs_baseline (better|worse|tie|baseline|"")."""
    if task is not None:
        wanted = {task} if isinstance(task, str) else set(task)
        runs = runs[runs["task"].isin(wanted) | runs["benchmark"].isin(wanted)]
    best = tuned(runs)
    rows = []
    for bench_name, group in best.groupby("benchmark", sort=True):
        all_runs = runs[runs["benchmark"] == bench_name]
        mode = str(group["mode"].iloc[0])
        losses = {o: g["loss"].to_numpy(float) for o, g in group.groupby("optimizer")}
        beaten_by = _beaten_by(losses, n_boot, level, seed)
        for opt, g in group.groupby("optimizer", sort=True):
            mine = all_runs[all_runs["optimizer"] == opt]
            row = {
                "benchmark": bench_name, "task": g["task"].iloc[0], "metric": g["metric"].iloc[0], "mode": mode,
                "target": _float(g["target"].iloc[0]), "optimizer": opt, "rank": 1 + beaten_by[opt],
                "trials": mine["setting"].nunique(), "runs": len(mine), "n": len(g),
                "fresh_seeds": bool(g["fresh_seeds"].iloc[0]),
                "hyperparameters": describe_setting(all_runs, g["setting"].iloc[0], opt),
                **_est("final", _flip(stats.bootstrap(losses[opt], n_boot=n_boot, level=level, seed=seed), mode)),
                "reached": int(np.isfinite(g["steps_to_target_inf"]).sum()),
                **_est("steps_to_target", stats.bootstrap(g["steps_to_target_inf"], n_boot=n_boot, level=level, seed=seed)),
                **_est("time_to_target_s", stats.bootstrap(g["time_to_target_inf"], n_boot=n_boot, level=level, seed=seed)),
                "diverged": int((mine["status"] == "diverged").sum()),
                "failed": int((mine["status"] == "failed").sum()),
                "optimizer_state_bytes": _median_of(g, "optimizer_state_bytes"),
                **_est("step_time_ms", stats.bootstrap(_finite(g, "step_time_ms"), n_boot=n_boot, level=level, seed=seed)),
            }
            row.update(_versus(opt, baseline, losses, n_boot, level, seed))
            rows.append(row)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    board["_sort"] = np.where(board["mode"] == "max", -board["final"], board["final"])
    return board.sort_values(["benchmark", "rank", "_sort", "optimizer"]).drop(columns="_sort").reset_index(drop=True)


def _float(value) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(frame: pd.DataFrame, col: str) -> np.ndarray:
    if col not in frame:
        return np.array([])
    x = pd.to_numeric(frame[col], errors="coerce").to_numpy(float)
    return x[np.isfinite(x)]


def _median_of(frame: pd.DataFrame, col: str) -> float:
    x = _finite(frame, col)
    return float(np.median(x)) if len(x) else math.nan


def _beaten_by(losses: dict[str, np.ndarray], n_boot: int, level: float, seed: int) -> dict[str, int]:
    """How many optimizers beat each one under RULE (every pair tested once)."""
    names = sorted(losses)
    count = dict.fromkeys(names, 0)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            outcome = stats.verdict(stats.probability_of_improvement(losses[a], losses[b], n_boot, level, seed))
            if outcome == "better":
                count[b] += 1
            elif outcome == "worse":
                count[a] += 1
    return count


def _versus(opt: str, baseline: str, losses: dict, n_boot: int, level: float, seed: int) -> dict:
    if opt == baseline:
        return {"p_vs_baseline": math.nan, "p_vs_baseline_lo": math.nan, "p_vs_baseline_hi": math.nan,
                "vs_baseline": "baseline"}
    if baseline not in losses:
        return {"p_vs_baseline": math.nan, "p_vs_baseline_lo": math.nan, "p_vs_baseline_hi": math.nan,
                "vs_baseline": ""}
    p = stats.probability_of_improvement(losses[opt], losses[baseline], n_boot, level, seed)
    return {**_est("p_vs_baseline", p), "vs_baseline": stats.verdict(p)}


def _cells(best: pd.DataFrame, col: str) -> dict[str, dict[str, np.ndarray]]:
    return {b: {o: g[col].to_numpy(float) for o, g in group.groupby("optimizer")}
            for b, group in best.groupby("benchmark", sort=True)}


def target_times(runs: pd.DataFrame, measure: str = "time") -> tuple[list[str], list[str], np.ndarray]:
    """(benchmarks, optimizers, median time-to-target of each tuned best: benchmarks × optimizers,
    inf where it missed or never ran). measure: "time" (train seconds) or "steps"."""
    col = {"time": "time_to_target_inf", "steps": "steps_to_target_inf"}[measure]
    best = tuned(runs)
    cells = _cells(best, col)
    benchmarks, optimizers = sorted(cells), sorted(best["optimizer"].unique()) if not best.empty else []
    times = np.full((len(benchmarks), len(optimizers)), np.inf)
    for i, b in enumerate(benchmarks):
        for j, o in enumerate(optimizers):
            if o in cells[b]:
                times[i, j] = stats.median(cells[b][o], 0)
    return benchmarks, optimizers, times


def across_tasks(runs: pd.DataFrame, measure: str = "time", tau_max: float = 4.0, n_boot: int = stats.N_BOOT,
                 level: float = stats.LEVEL, seed: int = 0) -> pd.DataFrame:
    """One row per optimizer: tasks run, tasks solved (median seed reached the target), mean rank
    by final metric (interval over seeds, n = benchmarks) and the AlgoPerf area score of the
    time-to-target performance profile (tau up to tau_max; a missed or absent task scores 0)."""
    benchmarks, optimizers, times = target_times(runs, measure)
    if not optimizers:
        return pd.DataFrame()
    ranks = stats.mean_rank(_cells(tuned(runs), "loss"), optimizers, n_boot, level, seed)
    score = stats.area_score(stats.time_ratios(times), tau_max)
    present = runs.groupby("optimizer")["benchmark"].nunique()
    rows = [{"optimizer": o, "benchmarks": int(present.get(o, 0)), "solved": int(np.isfinite(times[:, j]).sum()),
             "mean_rank": ranks[o].value, "mean_rank_lo": ranks[o].lo, "mean_rank_hi": ranks[o].hi,
             "n": ranks[o].n, "area_score": float(score[j])} for j, o in enumerate(optimizers)]
    return pd.DataFrame(rows).sort_values(["mean_rank", "optimizer"]).reset_index(drop=True)


def budget_trials(runs: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """Per (benchmark, optimizer): each trial's median loss, for tuning-budget curves. A missed
    trial gets the worst finite trial of its benchmark (any optimizer): an expectation with an
    infinite term is infinite and draws nothing, while 'no better than the worst trial that ran'
    keeps the curve finite and still penalises misses."""
    out = {}
    t = trials(runs)
    for bench_name, group in t.groupby("benchmark"):
        finite = group["median_loss"][np.isfinite(group["median_loss"])]
        if finite.empty:
            continue
        floor = float(finite.max())
        for opt, g in group.groupby("optimizer"):
            out[(bench_name, opt)] = np.where(np.isfinite(g["median_loss"]), g["median_loss"], floor)
    return out
