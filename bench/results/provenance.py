"""Where a leaderboard's numbers come from: the tuning budget each table rests on, whether its
final numbers come from fresh seeds, how many looks a `seeds=auto` sweep took, what tuning chose,
and the command that adds seeds where a table cannot decide yet."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

import pandas as pd

CAVEAT = ("The tuned best's seeds also selected it, so with many trials and few seeds its value is "
          "optimistic; re-run the winning setting with fresh seeds for an unbiased number (bench tune does).")
FRESH = "Final numbers of a tuned best come from its fresh-seed re-runs (bench tune's seeds phase) alone."


def more_seeds(runs: pd.DataFrame, optimizers: Sequence[str], need: int) -> str:
    """The command that adds seeds: the `bench tune` command that made these runs with
    `seeds=need` (its finished runs are reused), else a `bench run -m` over seeds 0..need-1."""
    mine = runs[runs["optimizer"].isin(optimizers)]
    sweeps = mine["sweep"].dropna().unique() if "sweep" in mine else []
    for sweep in sweeps:
        for run_dir in mine.loc[mine["sweep"] == sweep, "run_dir"].head(1):
            manifest = Path(run_dir).parent / ".sweeps" / str(sweep) / "manifest.json"
            try:
                command = json.loads(manifest.read_text())["command"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            command = re.sub(r"\s+(seeds|max_seeds|seed_step)=\S+", "", command)
            return f"{command} seeds={need}"
    task = str(mine["task"].iloc[0]) if len(mine) else "TASK"
    seeds = ",".join(str(s) for s in range(need))
    return f"bench run -m task={task} optimizer={','.join(optimizers)} seed={seeds} (with the tuned hyperparameters)"


def caveats(board: pd.DataFrame) -> str:
    """What the board's final numbers rest on: fresh seeds, seeds that also chose them, or both."""
    fresh = board["fresh_seeds"] if "fresh_seeds" in board else pd.Series(False, index=board.index)
    return " ".join(([FRESH] if fresh.any() else []) + ([CAVEAT] if (~fresh).any() else []))


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


def budgets(runs: pd.DataFrame) -> dict[str, str]:
    """Per benchmark, what its optimizers' tuning budgets have in common: "one sweep <id>",
    "equal budgets (N trials each)" or "UNEQUAL budgets" (then each row says its own)."""
    out = {}
    for bench_name, group in runs.groupby("benchmark", sort=True):
        trials_per = group.groupby("optimizer")["setting"].nunique()
        sweeps = group["sweep"].dropna().unique() if "sweep" in group else []
        if len(sweeps) == 1 and group["sweep"].notna().all():
            # how the sweep chose its trials (bench tune's search=); sweeps before that choice were sobol
            search = group["search"].dropna().iloc[0] if "search" in group and group["search"].notna().any() else "sobol"
            out[bench_name] = f"one tuning sweep ({sweeps[0]}), {search} search, {_trial_text(trials_per)}"
        elif trials_per.nunique() == 1:
            out[bench_name] = f"equal budgets: {int(trials_per.iloc[0])} trial(s) each"
        else:
            out[bench_name] = "UNEQUAL tuning budgets: compare the trials column before trusting a rank"
    return out


def _trial_text(trials_per: pd.Series) -> str:
    return f"{int(trials_per.iloc[0])} trial(s) each" if trials_per.nunique() == 1 else "trials differ per row"


def _looks(group: pd.DataFrame) -> int:
    """How many looks a `bench tune seeds=auto` sweep took at these runs (1 otherwise): each
    look was tested at alpha / looks, and re-judging the final data must do the same."""
    if "looks" not in group:
        return 1
    looks = pd.to_numeric(group["looks"], errors="coerce").dropna()
    return max(1, int(looks.max())) if len(looks) else 1
