"""`bench leaderboard`, `bench plot`, `bench report` through the CLI, including bad input."""

from __future__ import annotations

import json

import pytest

from bench.results.synthetic import write_run


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "runs"
    for seed in range(4):  # two optimizers, one comparison: 4 seeds each can reach p = 2/70 < 0.05
        write_run(root, optimizer="adamw", seed=seed, value=0.20 + seed / 100, target=0.3, time_to_target_s=0.5,
                  steps_to_target=50)
        write_run(root, optimizer="lion", seed=seed, value=0.10 + seed / 100, target=0.3, time_to_target_s=0.3,
                  steps_to_target=30)
    corrupt = write_run(root, optimizer="sgd")
    (corrupt / "summary.json").write_text("{not json")
    return root


def test_leaderboard_table(bench_cli, root):
    result = bench_cli("leaderboard", "--runs", str(root))
    assert result.code == 0, result.output
    assert "quad: val/loss (lower is better), target 0.3" in result.stdout
    assert "lion" in result.stdout and "n=4" in result.stdout and "better" in result.stdout and "0.029" in result.stdout
    assert "Holm family" in result.stdout
    assert "skipped 1 (not fatal)" in result.stderr and "summary.json is corrupt" in result.stderr


@pytest.mark.parametrize("fmt", ["md", "csv", "json"])
def test_leaderboard_formats(bench_cli, root, fmt):
    result = bench_cli("leaderboard", "--runs", str(root), "--format", fmt, "task=quad")
    assert result.code == 0, result.output
    if fmt == "json":
        rows = json.loads(result.stdout)["leaderboard"]
        assert [r["optimizer"] for r in rows] == ["lion", "adamw"] and rows[0]["vs_baseline"] == "better"
    elif fmt == "csv":
        assert result.stdout.splitlines()[0].startswith("benchmark,") and len(result.stdout.splitlines()) == 3
    else:
        assert "| 1 | lion |" in result.stdout


def test_leaderboard_baseline_and_filters(bench_cli, root):
    result = bench_cli("leaderboard", "--runs", str(root), "--baseline", "lion", "--format", "json")
    rows = {r["optimizer"]: r for r in json.loads(result.stdout)["leaderboard"]}
    assert rows["adamw"]["vs_baseline"] == "worse" and rows["lion"]["vs_baseline"] == "baseline"
    only = bench_cli("leaderboard", "--runs", str(root), "optimizer=lion", "--format", "csv")
    assert only.code == 0 and "adamw" not in only.stdout
    note = bench_cli("leaderboard", "--runs", str(root), "--optimizer", "lion", "--format", "md")
    assert note.code == 0 and "no runs of the default baseline 'adamw'" in note.stderr


@pytest.mark.parametrize("args, message", [
    (("leaderboard", "--format", "xml"), "unknown --format 'xml'; choose one of: table, md, csv, json"),
    (("leaderboard", "task=nope"), "no runs of task nope under"),
    (("leaderboard", "--optimizer", "nope"), "no runs of optimizer nope"),
    (("leaderboard", "colour=red"), "cannot read filter 'colour=red'"),
    (("leaderboard", "--baseline", "sgd"), "baseline 'sgd' has no runs here; optimizers: adamw, lion"),
    (("plot", "--kind", "pie"), "unknown --kind 'pie'"),
    (("plot", "--x", "epochs"), "unknown --x 'epochs'; choose one of: step, time, items"),
    (("report", "--measure", "joules"), "unknown --measure 'joules'"),
])
def test_bad_input_is_one_line_and_exit_2(bench_cli, root, args, message):
    result = bench_cli(*args, "--runs", str(root))
    assert result.code == 2, result.output
    assert result.stderr.strip().splitlines() == [f"error: {result.stderr.strip()[7:]}"]
    assert message in result.stderr


def test_missing_or_empty_runs_root(bench_cli, tmp_path):
    missing = bench_cli("leaderboard", "--runs", str(tmp_path / "absent"))
    assert missing.code == 2 and "does not exist" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = bench_cli("report", "--runs", str(tmp_path / "empty"))
    assert empty.code == 2 and "no finished runs" in empty.stderr


def test_plot_writes_png_and_svg(bench_cli, root, tmp_path):
    out = tmp_path / "figs"
    result = bench_cli("plot", "--runs", str(root), "--out", str(out), "--kind", "lr,profile")
    assert result.code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["lr-quad.png", "lr-quad.svg", "profile.png", "profile.svg"]
    assert str(out / "profile.png") in result.stdout


def test_report_command(bench_cli, root, tmp_path):
    out = tmp_path / "r" / "report.html"
    out.parent.mkdir()  # bench report writes into an existing directory (tests/test_output_paths.py)
    result = bench_cli("report", "--runs", str(root), "--out", str(out), "--x", "items")
    assert result.code == 0, result.output
    assert f"report: {out}" in result.stdout
    text = out.read_text()
    assert f"bench report --runs {root} --out {out} --x items" in text
    assert text.count("data:image/png;base64,") == 5


def test_help_explains_with_examples(bench_cli):
    for command in ("leaderboard", "plot", "report"):
        result = bench_cli(command, "--help")
        assert result.code == 0 and f"bench {command}" in result.stdout and "--runs" in result.stdout


def test_real_runs_end_to_end(bench_cli, runs_root):
    result = bench_cli("run", "-m", "task=logreg", "optimizer=adamw,sgd", "steps=20", f"runs_root={runs_root}",
                       "progress=off")
    assert result.code == 0, result.output
    board = bench_cli("leaderboard", "--runs", str(runs_root), "--format", "json")
    assert board.code == 0, board.output
    rows = json.loads(board.stdout)["leaderboard"]
    assert {r["optimizer"] for r in rows} == {"adamw", "sgd"}
    assert all(r["n"] == 1 and r["trials"] == 1 and r["benchmark"] == "logreg" for r in rows)
    assert all(r["final_lo"] is None for r in rows)  # one seed: no interval rather than a fake one
    assert "skipped" not in board.stderr  # the sweep's own .sweeps folder is not a run
    table = bench_cli("leaderboard", "--runs", str(runs_root), "--format", "md")
    assert "n=1 (n too small)" in table.stdout and "Unranked" in table.stdout
