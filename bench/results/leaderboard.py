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

import math
from typing import Sequence

import numpy as np
import pandas as pd

from bench.results import power, profiles, stats
from bench.results.provenance import (  # noqa: F401  (part of what the leaderboard module offers)
    CAVEAT,
    FRESH,
    _looks,
    budgets,
    caveats,
    describe_setting,
    more_seeds,
)

#: how an optimizer compares with another, and with the baseline (see `stats.compare_family`)
RULE = ("A beats B when the exact two-sided Wilcoxon-Mann-Whitney permutation test over their seeds rejects "
        "'no difference' at family-wise level {alpha:g}: one Holm family per table, made of every pair of "
        "ranked optimizers ({family} comparisons here; p-values shown are Holm-adjusted). A miss (diverged, failed, target never reached) ranks "
        "below every finite value. Rank = 1 + the number of optimizers that beat it; rows with fewer seeds than "
        "the family needs are listed unranked. Intervals: medians by order statistics (exact coverage), "
        "differences by Hodges-Lehmann with the Moses interval, P(beats) by Newcombe's score interval.")


def rule(alpha: float, family: int) -> str:
    return RULE.format(alpha=alpha, family=family)


def trials(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (benchmark, optimizer, setting): seeds, median loss (lower is better)."""
    grouped = runs.groupby(["benchmark", "optimizer", "setting"], sort=True)
    out = grouped.agg(seeds=("loss", "size"), median_loss=("loss", lambda x: stats.median(x.to_numpy())))
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


ALPHA = stats.ALPHA


def _est(prefix: str, e: stats.Estimate) -> dict:
    return {prefix: e.value, f"{prefix}_lo": e.lo, f"{prefix}_hi": e.hi, f"{prefix}_coverage": e.coverage,
            f"{prefix}_needs": e.needs}


def _flip(e: stats.Estimate, mode: str) -> stats.Estimate:
    """Back from loss orientation to the metric's own (max-mode metrics were negated)."""
    return e if mode != "max" else stats.Estimate(-e.value, -e.hi, -e.lo, e.n, e.coverage, e.needs)


def ranked_set(seeds: dict[str, int], alpha: float = ALPHA) -> tuple[set[str], int]:
    """(the optimizers a table can rank, the seeds per side that would rank them all). The family
    is every pair among the ranked rows, so its size depends on who is in it: take the largest
    group of best-seeded optimizers (ties in n enter together) whose smallest n reaches min_seeds
    of its pair count. A single optimizer forms no family and is ranked alone."""
    counts = sorted(seeds.values(), reverse=True)
    everyone = stats.min_seeds(max(1, len(counts) * (len(counts) - 1) // 2), alpha)
    for size in range(len(counts), 0, -1):
        if size < len(counts) and counts[size] == counts[size - 1]:
            continue  # would split optimizers with equal n: all or none of them
        if size == 1 or counts[size - 1] >= stats.min_seeds(size * (size - 1) // 2, alpha):
            return {o for o, n in seeds.items() if n >= counts[size - 1]}, everyone
    return set(), everyone


def judge(losses: dict[str, np.ndarray], alpha: float = ALPHA) -> tuple[set[str], int, dict]:
    """A table's verdicts: (ranked optimizers, seeds per side the family needs, {(a, b): Comparison}
    for every pair of ranked optimizers, one Holm family). The calibration suite simulates this
    function, so what it proves is what the leaderboard prints."""
    ranked, need = ranked_set({o: len(v) for o, v in losses.items()}, alpha)
    names = sorted(ranked)
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    return ranked, need, {(c.a, c.b): c for c in stats.compare_family(losses, pairs, alpha)}


def leaderboard(runs: pd.DataFrame, task: str | Sequence[str] | None = None, baseline: str = "adamw",
                alpha: float = ALPHA, level: float = stats.LEVEL) -> pd.DataFrame:
    """One row per (benchmark, optimizer), numbers raw (see `bench.results.tables` to render).

    Per benchmark, the optimizers with enough seeds (`ranked_set`) form one Holm family of all
    their pairwise exact rank tests on the final metric; rank = 1 + how many of them beat it.
    Rows without enough seeds are unranked (`ranked` false, `needs` seeds per side).

    Columns: benchmark, task, metric, mode, target, optimizer, ranked, rank, needs, family,
    alpha, trials, budget_flag, runs, n, hyperparameters, final (+_lo/_hi/_coverage/_needs: median
    and its order-statistic interval), reached, steps_to_target, time_to_target_s, step_time_ms
    (likewise), diverged, failed, optimizer_state_bytes; against the baseline: vs_baseline
    (baseline | better | worse | not significant | n too small | ""), p_value, p_adjusted,
    p_beats (+_lo/_hi), shift (+_lo/_hi: Hodges–Lehmann difference of the final metric),
    steps_ratio / time_ratio (+_lo/_hi: ratio of medians to target), detectable (the difference
    of the final metric the table's test detects with 80% power at this n and spread)."""
    if task is not None:
        wanted = {task} if isinstance(task, str) else set(task)
        runs = runs[runs["task"].isin(wanted) | runs["benchmark"].isin(wanted)]
    best = tuned(runs)
    rows = []
    for bench_name, group in best.groupby("benchmark", sort=True):
        all_runs = runs[runs["benchmark"] == bench_name]
        rows += _benchmark_rows(bench_name, group, all_runs, baseline, alpha / _looks(group), level)
    board = pd.DataFrame(rows)
    if board.empty:
        return board
    board["budget"] = board["benchmark"].map(budgets(runs))
    board["add_seeds"] = ""
    for bench_name, part in board.groupby("benchmark"):
        short = part[part["needs"] > 0]
        if len(short):
            need = int(short["needs"].max())
            board.loc[part.index, "add_seeds"] = more_seeds(runs[runs["benchmark"] == bench_name],
                                                            sorted(part["optimizer"]), need)
    board["_sort"] = np.where(board["mode"] == "max", -board["final"], board["final"])
    board["_rank"] = board["rank"].fillna(np.inf)
    return (board.sort_values(["benchmark", "_rank", "_sort", "optimizer"]).drop(columns=["_sort", "_rank"])
            .reset_index(drop=True))


def _benchmark_rows(bench_name: str, group: pd.DataFrame, all_runs: pd.DataFrame, baseline: str,
                    alpha: float, level: float) -> list[dict]:
    mode = str(group["mode"].iloc[0])
    losses = {o: g["loss"].to_numpy(float) for o, g in group.groupby("optimizer")}
    ranked, need, family = judge(losses, alpha)
    pairs = list(family)
    beaten = dict.fromkeys(ranked, 0)
    for c in family.values():
        if c.verdict in ("better", "worse"):
            beaten[c.b if c.verdict == "better" else c.a] += 1
    trials_per = all_runs.groupby("optimizer")["setting"].nunique()
    usual = int(trials_per.mode().max()) if len(trials_per) else 0
    rows = []
    for opt, g in group.groupby("optimizer", sort=True):
        mine = all_runs[all_runs["optimizer"] == opt]
        row = {
            "benchmark": bench_name, "task": g["task"].iloc[0], "metric": g["metric"].iloc[0], "mode": mode,
            "target": _float(g["target"].iloc[0]), "optimizer": opt, "ranked": opt in ranked,
            "rank": 1 + beaten[opt] if opt in ranked else math.nan, "needs": 0 if opt in ranked else need,
            "family": len(pairs), "alpha": alpha,
            "trials": int(trials_per.get(opt, 0)),
            "budget_flag": "" if int(trials_per.get(opt, 0)) == usual else f"{int(trials_per.get(opt, 0))} trials, others {usual}",
            "runs": len(mine), "n": len(g),
            "fresh_seeds": bool(g["fresh_seeds"].iloc[0]),
            "hyperparameters": describe_setting(all_runs, g["setting"].iloc[0], opt),
            **_est("final", _flip(stats.median_ci(losses[opt], level), mode)),
            "reached": int(np.isfinite(g["steps_to_target_inf"]).sum()),
            **_est("steps_to_target", stats.median_ci(g["steps_to_target_inf"], level)),
            **_est("time_to_target_s", stats.median_ci(g["time_to_target_inf"], level)),
            "diverged": int((mine["status"] == "diverged").sum()),
            "failed": int((mine["status"] == "failed").sum()),
            "optimizer_state_bytes": _median_of(g, "optimizer_state_bytes"),
            **_est("step_time_ms", stats.median_ci(_finite(g, "step_time_ms"), level)),
        }
        row.update(_versus(opt, baseline, group, losses, family, ranked, need, mode, alpha, level))
        rows.append(row)
    return rows


_EFFECTS = ("p_beats", "shift", "steps_ratio", "time_ratio")


def _versus(opt: str, baseline: str, group: pd.DataFrame, losses: dict, family: dict, ranked: set, need: int,
            mode: str, alpha: float, level: float) -> dict:
    """The row against the baseline: the family's verdict and adjusted p, and effect sizes."""
    empty = {"vs_baseline": "", "p_value": math.nan, "p_adjusted": math.nan, "detectable": math.nan,
             **{k: v for e in _EFFECTS for k, v in _est(e, stats.Estimate(math.nan, math.nan, math.nan, 0)).items()}}
    if opt == baseline:
        return {**empty, "vs_baseline": "baseline"}
    if baseline not in losses:
        return empty
    mine, base = group[group["optimizer"] == opt], group[group["optimizer"] == baseline]
    out = {**empty,
           **_est("p_beats", stats.p_beats_ci(losses[opt], losses[baseline], level)),
           # in the metric's own direction: a higher accuracy is a positive difference
           **_est("shift", _flip(stats.shift_ci(losses[opt], losses[baseline], level), mode)),
           **_est("steps_ratio", stats.ratio_ci(mine["steps_to_target_inf"], base["steps_to_target_inf"], level)),
           **_est("time_ratio", stats.ratio_ci(mine["time_to_target_inf"], base["time_to_target_inf"], level))}
    c = family.get((opt, baseline)) or family.get((baseline, opt))
    if c is None:  # one side is unranked: not enough seeds to be in the family at all
        return {**out, "vs_baseline": "n too small", "needs": need}
    verdict = c.verdict
    if c.a != opt:
        verdict = {"better": "worse", "worse": "better"}.get(verdict, verdict)
    detectable = power.detectable_difference(losses[opt], losses[baseline], alpha / max(1, len(family)))
    return {**out, "vs_baseline": verdict, "p_value": c.p, "p_adjusted": c.p_adjusted,
            "needs": c.needs or (0 if opt in ranked else need), "detectable": detectable}


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
    return stats.median(_finite(frame, col))


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
                times[i, j] = stats.median(cells[b][o])
    return benchmarks, optimizers, times


def across_tasks(runs: pd.DataFrame, measure: str = "time", tau_max: float = 4.0) -> pd.DataFrame:
    """One row per optimizer: tasks run, tasks solved (median seed reached the target), mean rank
    by median final metric (descriptive, n = benchmarks) and the AlgoPerf area score of the
    time-to-target performance profile (tau up to tau_max; a missed or absent task scores 0)."""
    benchmarks, optimizers, times = target_times(runs, measure)
    if not optimizers:
        return pd.DataFrame()
    ranks = profiles.mean_rank(_cells(tuned(runs), "loss"), optimizers)
    score = profiles.area_score(profiles.time_ratios(times), tau_max)
    present = runs.groupby("optimizer")["benchmark"].nunique()
    rows = [{"optimizer": o, "benchmarks": int(present.get(o, 0)), "solved": int(np.isfinite(times[:, j]).sum()),
             "mean_rank": ranks[o], "n": len(benchmarks), "area_score": float(score[j])}
            for j, o in enumerate(optimizers)]
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
