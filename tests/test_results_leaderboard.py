"""Leaderboards on synthetic run directories: tuned-best selection, trials, misses, ties, ranks,
the across-task table and the text renderings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bench.results import leaderboard as lb
from bench.results import store, tables
from bench.results.synthetic import write_run

GOOD = [0.20, 0.21, 0.22, 0.23, 0.24]


def _write(root, optimizer, lr, values, status="ok", task="quad", **kw):
    for seed, v in enumerate(values):
        reached = status == "ok" and v <= 0.3
        write_run(root, task=task, optimizer=optimizer, lr=lr, seed=seed, value=v, status=status, target=0.3,
                  steps_to_target=50 + seed if reached else None, time_to_target_s=0.5 + seed / 10 if reached else None,
                  step_time_ms=2.0 + seed / 10, state_bytes=800 if optimizer != "sgd" else 0, **kw)


@pytest.fixture
def board_root(tmp_path):
    root = tmp_path / "runs"
    _write(root, "adamw", 0.1, GOOD)
    _write(root, "adamw", 0.01, [0.5, 0.52, 0.54, 0.56, 0.58])
    _write(root, "lion", 0.01, [0.10, 0.11, 0.12, 0.13, 0.14])
    _write(root, "lion", 0.1, [0.9] * 5, status="diverged")
    _write(root, "sgd", 0.1, GOOD)  # exactly adamw's numbers: must tie
    _write(root, "adam", 0.1, [0.5, 0.51, 0.52])
    return root


def test_tuned_best_trials_and_misses(board_root):
    board = lb.leaderboard(store.load(board_root).table).set_index("optimizer")
    assert board.loc["lion", "hyperparameters"] == "lr=0.01"  # the diverged lr=0.1 trial lost
    assert board.loc["adamw", "hyperparameters"] == "lr=0.1"
    assert dict(board["trials"]) == {"lion": 2, "adamw": 2, "sgd": 1, "adam": 1}
    assert board.loc["lion", "runs"] == 10 and board.loc["lion", "diverged"] == 5
    assert board.loc["lion", "n"] == 5 and board.loc["lion", "final"] == pytest.approx(0.12)
    assert board.loc["lion", "final_lo"] <= 0.12 <= board.loc["lion", "final_hi"]
    # adam never reached the target: 0 of 3, and its median time to target is a miss (inf)
    assert board.loc["adam", "reached"] == 0 and board.loc["adam", "time_to_target_s"] == math.inf
    assert board.loc["adamw", "reached"] == 5 and board.loc["adamw", "steps_to_target"] == 52
    assert board.loc["adamw", "step_time_ms"] == pytest.approx(2.2)
    assert board.loc["sgd", "optimizer_state_bytes"] == 0 and board.loc["adamw", "optimizer_state_bytes"] == 800


def test_ranks_and_verdicts_show_ties_as_ties(board_root):
    board = lb.leaderboard(store.load(board_root).table, baseline="adamw").set_index("optimizer")
    assert dict(board["vs_baseline"]) == {"lion": "better", "adamw": "baseline", "sgd": "tie", "adam": "worse"}
    assert board.loc["sgd", "p_vs_baseline"] == 0.5  # identical seeds: every pair ties
    # lion beats everyone; adamw and sgd are beaten only by lion; adam by the other three
    assert dict(board["rank"]) == {"lion": 1, "adamw": 2, "sgd": 2, "adam": 4}
    shown = tables.display(lb.leaderboard(store.load(board_root).table)).set_index("optimizer")
    assert shown.loc["adamw", "rank"] == "2=" and shown.loc["sgd", "rank"] == "2=" and shown.loc["lion", "rank"] == "1"


def test_higher_is_better_metric(tmp_path):
    root = tmp_path / "runs"
    for seed in range(4):
        write_run(root, task="cls", optimizer="a", metric="val/acc", mode="max", value=0.90 + seed / 100, seed=seed)
        write_run(root, task="cls", optimizer="b", metric="val/acc", mode="max", value=0.80 + seed / 100, seed=seed)
    board = lb.leaderboard(store.load(root).table, baseline="b").set_index("optimizer")
    assert board.loc["a", "rank"] == 1 and board.loc["a", "vs_baseline"] == "better"
    assert board.loc["a", "final"] == pytest.approx(0.915)
    assert board.loc["a", "final_lo"] <= 0.915 <= board.loc["a", "final_hi"] <= 0.93 + 1e-9


def test_trials_are_distinct_settings_across_studies(tmp_path):
    root = tmp_path / "runs"
    # the same lr in two tuning studies is one setting (its seeds pool); a new lr is a second trial
    write_run(root, optimizer="lion", lr=0.01, seed=0, extra={"study": "s1", "trial": 0})
    write_run(root, optimizer="lion", lr=0.01, seed=1, extra={"study": "s2", "trial": 3})
    write_run(root, optimizer="lion", lr=0.1, seed=0, extra={"study": "s1", "trial": 1})
    write_run(root, optimizer="adamw", seed=0)  # no study keys: its own trial
    board = lb.leaderboard(store.load(root).table).set_index("optimizer")
    assert board.loc["lion", "trials"] == 2 and board.loc["adamw", "trials"] == 1


def test_tuned_best_prefers_more_seeds_on_equal_median(tmp_path):
    root = tmp_path / "runs"
    write_run(root, lr=0.1, seed=0, value=0.2)
    for seed in range(3):
        write_run(root, lr=0.01, seed=seed, value=0.2)
    best = lb.tuned(store.load(root).table)
    assert len(best) == 3 and set(json.loads(h)["lr"] for h in best["hyperparameters"]) == {0.01}


def test_hyperparameter_column_shows_what_varied(tmp_path):
    root = tmp_path / "runs"
    write_run(root, lr=0.1, hyperparameters={"weight_decay": 0.1, "eps": 1e-8}, value=0.1)
    write_run(root, lr=0.1, hyperparameters={"weight_decay": 0.01, "eps": 1e-8}, value=0.2)
    board = lb.leaderboard(store.load(root).table)
    assert board["hyperparameters"].iloc[0] == "lr=0.1 weight_decay=0.1"


def test_across_tasks_mean_rank_and_area_score(tmp_path):
    root = tmp_path / "runs"
    # task p: x fast (time 1) and best; y twice as slow. task q: y best and fast; x misses.
    for seed in range(3):
        write_run(root, task="p", optimizer="x", seed=seed, value=0.1, time_to_target_s=1.0, steps_to_target=10)
        write_run(root, task="p", optimizer="y", seed=seed, value=0.2, time_to_target_s=2.0, steps_to_target=20)
        write_run(root, task="q", optimizer="x", seed=seed, value=0.9)
        write_run(root, task="q", optimizer="y", seed=seed, value=0.1, time_to_target_s=3.0, steps_to_target=30)
    across = lb.across_tasks(store.load(root).table).set_index("optimizer")
    assert across.loc["x", "mean_rank"] == 1.5 and across.loc["y", "mean_rank"] == 1.5
    assert across.loc["x", "n"] == 2 and across.loc["x", "solved"] == 1 and across.loc["y", "solved"] == 2
    # x: ratio 1 on p, inf on q → (1 + 0)/2. y: ratio 2 on p → 2/3, ratio 1 on q → 1 → (2/3 + 1)/2.
    assert across.loc["x", "area_score"] == pytest.approx(0.5)
    assert across.loc["y", "area_score"] == pytest.approx(5 / 6)


def test_budget_trials_replace_misses_with_the_worst_finite_trial(board_root):
    budget = lb.budget_trials(store.load(board_root).table)
    lion = sorted(budget[("quad", "lion")])
    assert lion == [pytest.approx(0.12), pytest.approx(0.54)]  # worst finite trial: adamw lr=0.01 (median .54)
    assert np.all(np.isfinite(budget[("quad", "adam")]))


def test_task_filter_and_missing_baseline(board_root):
    write_run(board_root, task="other", optimizer="sgd")
    table = store.load(board_root).table
    assert set(lb.leaderboard(table, task="other")["optimizer"]) == {"sgd"}
    board = lb.leaderboard(table, task="other", baseline="adamw")
    assert board["vs_baseline"].tolist() == [""]
    assert "no baseline" in tables.display(board).iloc[0].tolist()


def test_renderings(board_root):
    table = store.load(board_root).table
    board, across = lb.leaderboard(table), lb.across_tasks(table)
    md = tables.render(board, "md", across)
    assert "### quad: val/loss (lower is better), target 0.3" in md
    assert "| 2= | sgd |" in md and "n=5" in md and "tie P=0.5" in md and lb.RULE in md
    data = json.loads(tables.render(board, "json", across))
    adam = next(r for r in data["leaderboard"] if r["optimizer"] == "adam")
    assert adam["time_to_target_s"] == "inf" and adam["reached"] == 0
    assert data["across_tasks"][0]["n"] == 1
    csv = tables.render(board, "csv")
    assert csv.splitlines()[0].startswith("benchmark,task,metric") and len(csv.splitlines()) == 5
    with pytest.raises(ValueError):
        tables.render(board, "xml")


def test_each_benchmark_table_names_its_own_metric(tmp_path):
    root = tmp_path / "runs"
    for seed in range(2):
        write_run(root, task="reg", seed=seed, value=0.3)
        write_run(root, task="cls", seed=seed, metric="val/acc", mode="max", value=0.9)
    md = tables.render(lb.leaderboard(store.load(root).table), "md")
    cls, reg = md.split("### reg")
    assert "final val/acc (median [95% CI])" in cls and "val/loss" not in cls
    assert "final val/loss (median [95% CI])" in reg and "val/acc" not in reg
    assert "nan" not in md and "| ∞ | ∞ |" not in md
    assert "| 0.3 [0.3, 0.3] n=2 | ∞ 0/2 | ∞ 0/2 |" in reg  # no target set: never reached


def test_fresh_seed_reruns_are_the_tuned_best_and_its_estimate(tmp_path):
    root = tmp_path / "runs"
    search = {"phase": "search"}
    # bench tune's search: lr=0.1 looked best on its one seed and was re-run over fresh seeds
    write_run(root, optimizer="adamw", lr=0.1, seed=0, value=0.10, extra=search)
    write_run(root, optimizer="adamw", lr=0.03, seed=0, value=0.15, extra=search)
    for seed, v in zip((1, 2, 3), (0.30, 0.32, 0.34), strict=True):
        write_run(root, optimizer="adamw", lr=0.1, seed=seed, value=v, extra={"phase": "seeds"})
    # an optimizer without a seeds phase keeps its best trial, judged on the seeds that chose it
    write_run(root, optimizer="sgd", lr=0.1, seed=0, value=0.25)
    write_run(root, optimizer="sgd", lr=0.3, seed=0, value=0.40)
    board = lb.leaderboard(store.load(root).table).set_index("optimizer")
    adamw, sgd = board.loc["adamw"], board.loc["sgd"]
    assert adamw["n"] == 3 and adamw["final"] == pytest.approx(0.32) and adamw["fresh_seeds"]
    assert adamw["trials"] == 2 and adamw["hyperparameters"].startswith("lr=0.1")
    assert sgd["n"] == 1 and sgd["final"] == pytest.approx(0.25) and not sgd["fresh_seeds"]
    text = lb.caveats(board.reset_index())
    assert lb.FRESH in text and lb.CAVEAT in text
    assert lb.caveats(board.loc[["adamw"]]) == lb.FRESH
