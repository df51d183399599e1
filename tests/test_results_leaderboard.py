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

GOOD = [0.20, 0.21, 0.22, 0.23, 0.24, 0.25]


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
    _write(root, "adamw", 0.01, [0.5, 0.52, 0.54, 0.56, 0.58, 0.6])
    _write(root, "lion", 0.01, [0.10, 0.11, 0.12, 0.13, 0.14, 0.15])
    _write(root, "lion", 0.1, [0.9] * 6, status="diverged")
    _write(root, "sgd", 0.1, GOOD)  # exactly adamw's numbers: no difference can be shown
    _write(root, "adam", 0.1, [0.5, 0.51, 0.52])  # 3 seeds: too few to be ranked at all
    return root


def test_tuned_best_trials_and_misses(board_root):
    board = lb.leaderboard(store.load(board_root).table).set_index("optimizer")
    assert board.loc["lion", "hyperparameters"] == "lr=0.01"  # the diverged lr=0.1 trial lost
    assert board.loc["adamw", "hyperparameters"] == "lr=0.1"
    assert dict(board["trials"]) == {"lion": 2, "adamw": 2, "sgd": 1, "adam": 1}
    assert board.loc["lion", "runs"] == 12 and board.loc["lion", "diverged"] == 6
    assert board.loc["lion", "n"] == 6 and board.loc["lion", "final"] == pytest.approx(0.125)
    # six seeds: [min, max] is the 95% order-statistic interval, coverage 1 − 2/64
    assert (board.loc["lion", "final_lo"], board.loc["lion", "final_hi"]) == (0.10, 0.15)
    assert board.loc["lion", "final_coverage"] == pytest.approx(62 / 64)
    # adam never reached the target: 0 of 3, and its median time to target is a miss (inf)
    assert board.loc["adam", "reached"] == 0 and board.loc["adam", "time_to_target_s"] == math.inf
    assert board.loc["adamw", "reached"] == 6 and board.loc["adamw", "steps_to_target"] == 52.5
    assert board.loc["adamw", "step_time_ms"] == pytest.approx(2.25)
    assert board.loc["sgd", "optimizer_state_bytes"] == 0 and board.loc["adamw", "optimizer_state_bytes"] == 800


def test_ranks_and_verdicts_come_from_one_holm_family(board_root):
    board = lb.leaderboard(store.load(board_root).table, baseline="adamw").set_index("optimizer")
    assert dict(board["vs_baseline"]) == {"lion": "better", "adamw": "baseline", "sgd": "not significant",
                                          "adam": "n too small"}
    # lion's 6 seeds all beat adamw's: exact p = 2/C(12,6) = 2/924, × 3 pairs (Holm's first step)
    assert board.loc["lion", "p_value"] == pytest.approx(2 / 924)
    assert board.loc["lion", "p_adjusted"] == pytest.approx(3 * 2 / 924)
    assert board.loc["sgd", "p_value"] == 1.0 and board.loc["sgd", "p_beats"] == 0.5  # identical seeds
    # adam has 3 seeds; a table of 4 (6 pairs) needs 5 per side: unranked, and told what it lacks
    assert not board.loc["adam", "ranked"] and math.isnan(board.loc["adam", "rank"])
    assert board.loc["adam", "needs"] == 5 and board.loc["adam", "family"] == 3
    assert {o: board.loc[o, "rank"] for o in ("lion", "adamw", "sgd")} == {"lion": 1, "adamw": 2, "sgd": 2}
    shown = tables.display(lb.leaderboard(store.load(board_root).table)).set_index("optimizer")
    assert shown.loc["adamw", "rank"] == "2=" and shown.loc["sgd", "rank"] == "2=" and shown.loc["lion", "rank"] == "1"
    assert shown.loc["adam", "rank"] == "–"
    assert shown.loc["adam", "vs adamw"] == "n too small (needs ≥ 5 seeds per side)"
    assert shown.loc["lion", "vs adamw"] == "better (p=0.0065)"
    assert shown.loc["sgd", "vs adamw"].startswith("not significant")


def test_the_leaderboard_judges_exactly_as_the_calibrated_function(board_root):
    """The calibration suite simulates `leaderboard.judge`; the board must be what it returns."""
    table = store.load(board_root).table
    best = lb.tuned(table)
    losses = {o: g["loss"].to_numpy(float) for o, g in best.groupby("optimizer")}
    ranked, need, family = lb.judge(losses)
    board = lb.leaderboard(table).set_index("optimizer")
    assert ranked == set(board.index[board["ranked"]]) and need == 5
    for (a, b), c in family.items():
        if "adamw" in (a, b) and c.verdict in ("better", "worse"):
            other = b if a == "adamw" else a
            flipped = c.verdict if a == other else {"better": "worse", "worse": "better"}[c.verdict]
            assert board.loc[other, "vs_baseline"] == flipped
            assert board.loc[other, "p_adjusted"] == c.p_adjusted


def test_an_untuned_single_run_is_not_ranked_first(board_root):
    # one run of an optimizer nobody tuned, with a better number than anyone: listed apart
    write_run(board_root, task="quad", optimizer="nadamw", lr=0.1, seed=0, value=0.01, target=0.3,
              steps_to_target=40, time_to_target_s=0.4)
    board = lb.leaderboard(store.load(board_root).table).set_index("optimizer")
    assert not board.loc["nadamw", "ranked"] and board.loc["nadamw", "vs_baseline"] == "n too small"
    assert board.loc["lion", "rank"] == 1
    assert lb.leaderboard(store.load(board_root).table)["optimizer"].iloc[-1] in ("nadamw", "adam")  # listed last
    notes = " ".join(tables.notes(lb.leaderboard(store.load(board_root).table), "quad"))
    assert "Unranked" in notes and "nadamw (n=1)" in notes and "seed=0,1,2,3,4" in notes


def test_unequal_budgets_are_flagged_in_the_header_and_per_row(board_root):
    board = lb.leaderboard(store.load(board_root).table)
    assert "UNEQUAL tuning budgets" in tables.title(board, "quad")
    flagged = board.set_index("optimizer")["budget_flag"]
    assert flagged["adam"] == "1 trials, others 2" and flagged["lion"] == ""


def test_n_too_small_names_the_bench_tune_command_that_adds_seeds(tmp_path):
    root = tmp_path / "runs"
    command = "bench tune task=quad optimizer=adamw,lion trials=2 seeds=3"
    for opt in ("adamw", "lion"):
        for seed in range(3):
            write_run(root, optimizer=opt, seed=seed, value=0.1 + seed / 100, extra={"phase": "seeds", "sweep": "abc"})
    (root / ".sweeps" / "abc").mkdir(parents=True)
    (root / ".sweeps" / "abc" / "manifest.json").write_text(json.dumps({"command": command}))
    board = lb.leaderboard(store.load(root).table)
    assert set(board["vs_baseline"]) == {"baseline", "n too small"}
    assert board["add_seeds"].iloc[0] == "bench tune task=quad optimizer=adamw,lion trials=2 seeds=4"
    assert "one tuning sweep (abc)" in tables.title(board, "quad")


def test_detectable_difference_shrinks_with_seeds(tmp_path):
    rng = np.random.default_rng(0)
    detectable = []
    for n in (6, 12):
        root = tmp_path / f"runs{n}"
        for opt in ("adamw", "lion"):
            for seed, v in enumerate(1 + 0.1 * rng.standard_normal(n)):
                write_run(root, optimizer=opt, seed=seed, value=float(v))
        detectable.append(lb.leaderboard(store.load(root).table).set_index("optimizer").loc["lion", "detectable"])
    assert 0 < detectable[1] < detectable[0] < 1.0


def test_higher_is_better_metric(tmp_path):
    root = tmp_path / "runs"
    for seed in range(6):
        write_run(root, task="cls", optimizer="a", metric="val/acc", mode="max", value=0.90 + seed / 100, seed=seed)
        write_run(root, task="cls", optimizer="b", metric="val/acc", mode="max", value=0.80 + seed / 100, seed=seed)
    board = lb.leaderboard(store.load(root).table, baseline="b").set_index("optimizer")
    assert board.loc["a", "rank"] == 1 and board.loc["a", "vs_baseline"] == "better"
    assert board.loc["a", "final"] == pytest.approx(0.925)
    assert (board.loc["a", "final_lo"], board.loc["a", "final_hi"]) == (pytest.approx(0.90), pytest.approx(0.95))
    # the difference is in the metric's own direction: accuracy 0.1 higher
    assert board.loc["a", "shift"] == pytest.approx(0.1) and board.loc["a", "shift_lo"] > 0


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
    assert lion == [pytest.approx(0.125), pytest.approx(0.55)]  # worst finite trial: adamw lr=0.01 (median .55)
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
    assert "| 2= | sgd |" in md and "n=6" in md and "not significant (p=1)" in md
    assert lb.rule(0.05, 3) in md and "Holm" in md and "Exact coverage of the median intervals: n=3" not in md
    assert "n=6: 96.8%" in md  # 62/64 = 96.875%, rounded down
    data = json.loads(tables.render(board, "json", across))
    adam = next(r for r in data["leaderboard"] if r["optimizer"] == "adam")
    assert adam["time_to_target_s"] == "inf" and adam["reached"] == 0
    assert data["across_tasks"][0]["n"] == 1
    csv = tables.render(board, "csv")
    assert csv.splitlines()[0].startswith("benchmark,task,metric") and len(csv.splitlines()) == 5
    assert data["rules"]["quad"][0] == lb.rule(0.05, 3)
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
    assert "| 0.3 n=2 (n too small) | ∞ 0/2 | ∞ 0/2 |" in reg  # no target set: never reached


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
