"""Where `bench report` and `bench plot` write, checked before any work; the leaderboard fits the
terminal; one benchmark label in the table, the CSV, the plot files and the report."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bench.results import plots
from bench.results.synthetic import write_run

LABEL = "logreg[budget=2000]"


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Two step budgets of one task, so the benchmarks are labelled `logreg[budget=…]`; the long
    budget reaches its target after 1600 and 1650 steps (medians that %.3g would print as 1.6e+03)."""
    root = tmp_path_factory.mktemp("paths") / "runs"
    for seed in range(4):
        for opt, value, steps in (("adamw", 0.2, 1650), ("lion", 0.1, 1600)):
            write_run(root, task="logreg", optimizer=opt, seed=seed, value=value + seed / 100, target=0.3,
                      steps=2000, steps_to_target=steps, time_to_target_s=steps / 1000, state_bytes=2048,
                      hyperparameters={"weight_decay": 0.01, "betas": [0.9, 0.999]})
            write_run(root, task="logreg", optimizer=opt, seed=seed, value=value + 0.1 + seed / 100, steps=300)
    return root


def _one_error(result, *fragments: str) -> None:
    assert result.code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output


def _denied(monkeypatch, directory: Path) -> None:
    """Make `directory` unwritable: chmod, and where that does not stop us (root), deny it in
    os.access as a read-only mount would."""
    directory.chmod(0o555)
    if os.geteuid() == 0:
        real = os.access

        def access(path, mode, *args, **kwargs):
            if Path(path).resolve() == directory.resolve() and mode & os.W_OK:
                return False
            return real(path, mode, *args, **kwargs)

        monkeypatch.setattr(os, "access", access)


# ---- bench report --out ---------------------------------------------------------------------

def test_report_into_a_directory_says_pass_a_file(bench_cli, root, tmp_path):
    result = bench_cli("report", "--runs", str(root), "--out", str(tmp_path))
    _one_error(result, "is a directory", f"pass a file path like {tmp_path / 'report.html'}")
    assert list(tmp_path.iterdir()) == []


def test_report_into_a_missing_directory_is_refused_not_created(bench_cli, root, tmp_path):
    out = tmp_path / "no" / "such" / "report.html"
    result = bench_cli("report", "--runs", str(root), "--out", str(out))
    _one_error(result, f"create {out.parent} first")
    assert not (tmp_path / "no").exists()


def test_report_into_a_read_only_directory(bench_cli, root, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    _denied(monkeypatch, locked)
    try:
        result = bench_cli("report", "--runs", str(root), "--out", str(locked / "report.html"))
        _one_error(result, "cannot write into", "pass --out somewhere writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_report_keeps_a_foreign_file_unless_forced(bench_cli, root, tmp_path):
    out = tmp_path / "notes.html"
    original = b"<html>my own notes</html>\n\x00\xff"
    out.write_bytes(original)
    refused = bench_cli("report", "--runs", str(root), "--out", str(out), "task=logreg[budget=300]")
    _one_error(refused, "exists and is not a bench report", "--force")
    assert out.read_bytes() == original and [p.name for p in tmp_path.iterdir()] == ["notes.html"]

    forced = bench_cli("report", "--runs", str(root), "--out", str(out), "--force", "task=logreg[budget=300]")
    assert forced.code == 0, forced.output
    text = out.read_text()
    assert '<meta name="generator" content="bench report">' in text and "my own notes" not in text
    assert [p.name for p in tmp_path.iterdir()] == ["notes.html"]  # no temporary file left behind


def test_an_earlier_report_is_replaced_atomically(bench_cli, root, tmp_path):
    out = tmp_path / "report.html"
    first = bench_cli("report", "--runs", str(root), "--out", str(out), "task=logreg[budget=300]")
    assert first.code == 0, first.output
    inode = out.stat().st_ino
    out.chmod(0o644)
    second = bench_cli("report", "--runs", str(root), "--out", str(out), "task=logreg[budget=2000]")
    assert second.code == 0, second.output
    assert LABEL in out.read_text() and "logreg[budget=300]" not in out.read_text()
    assert out.stat().st_ino != inode  # a new file renamed over the old one, not rewritten in place
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_report_prints_counts_as_integers_full_width_figures_and_folded_commands(bench_cli, root, tmp_path):
    out = tmp_path / "report.html"
    result = bench_cli("report", "--runs", str(root), "--out", str(out), f"task={LABEL}")
    assert result.code == 0, result.output
    text = out.read_text()
    assert "<td>1600 (n too small) 4/4</td>" in text and "<td>1650 (n too small) 4/4</td>" in text
    assert not re.search(r"\de\+0\d", text.split("<h2>Figures</h2>")[0])  # no 1.6e+03 in the tables
    assert "img { display: block; width: 100%" in text
    assert "white-space: pre-wrap" in text
    assert re.search(r"<details><summary>The runs: 2 commands", text)
    # each figure is drawn wide enough to fill the page without blurring
    assert f"id='curves-{plots.file_stem(LABEL)}'" in text


# ---- bench plot --out -----------------------------------------------------------------------

def test_plot_into_a_read_only_directory(bench_cli, root, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    _denied(monkeypatch, locked)
    try:
        result = bench_cli("plot", "--runs", str(root), "--out", str(locked), "--kind", "lr")
        _one_error(result, "cannot write into", "pass --out somewhere writable")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_plot_creates_one_missing_folder_but_not_a_tree(bench_cli, root, tmp_path):
    tree = tmp_path / "a" / "b" / "figs"
    refused = bench_cli("plot", "--runs", str(root), "--out", str(tree), "--kind", "lr")
    _one_error(refused, f"create {tree.parent} first", "creates only the last folder")
    assert not (tmp_path / "a").exists()

    leaf = tmp_path / "figs"
    made = bench_cli("plot", "--runs", str(root), "--out", str(leaf), "--kind", "lr")
    assert made.code == 0, made.output
    assert sorted(p.name for p in leaf.iterdir()) == sorted(
        f"lr-{plots.file_stem(b)}.{ext}" for b in ("logreg[budget=300]", LABEL) for ext in ("png", "svg"))


def test_plot_onto_a_file_is_refused(bench_cli, root, tmp_path):
    out = tmp_path / "figs.png"
    out.write_bytes(b"png")
    _one_error(bench_cli("plot", "--runs", str(root), "--out", str(out)), "is a file", "pass a directory")
    assert out.read_bytes() == b"png"


# ---- the leaderboard on a terminal --------------------------------------------------------

def test_leaderboard_fits_80_columns_and_says_what_it_left_out(bench_cli, root, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = bench_cli("leaderboard", "--runs", str(root))
    assert result.code == 0, result.output
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    tail = result.stdout[result.stdout.index("Left out to fit 80 columns:"):]
    note = " ".join(tail.split())  # one sentence, wrapped at 80 like everything else
    assert note.startswith("Left out to fit 80 columns: train time to target, optimizer state, step time")
    assert note.endswith("--wide shows all.")
    assert "train time to target" not in result.stdout[:result.stdout.index("Left out")]
    assert "2.0 KiB" not in result.stdout and "±0.043" not in result.stdout
    for kept in ("rank", "optimizer", "vs adamw", "lion", "better"):
        assert kept in result.stdout


def test_leaderboard_wide_shows_every_column(bench_cli, root, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    result = bench_cli("leaderboard", "--runs", str(root), "--wide")
    assert result.code == 0, result.output
    assert "Left out" not in result.stdout
    # a cell of every column the 80-column table leaves out
    for cell in ("1.6 s (n too small) 4/4", "2.0 KiB", "1 ms (n too small)", "±0.043", "P(beats)", "0/4"):
        assert cell in result.stdout, cell


def test_one_benchmark_label_in_table_csv_and_plot_files(bench_cli, root, tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    table = bench_cli("leaderboard", "--runs", str(root))
    assert f"{LABEL}: val/loss (lower is better)" in table.stdout  # not eaten as rich markup
    csv = bench_cli("leaderboard", "--runs", str(root), "--format", "csv")
    assert {line.split(",")[0] for line in csv.stdout.splitlines()[1:]} == {"logreg[budget=300]", LABEL}
    out = tmp_path / "figs"
    bench_cli("plot", "--runs", str(root), "--out", str(out), "--kind", "budget")
    assert plots.file_stem(LABEL) == "logreg_budget=2000"
    assert {p.stem for p in out.iterdir()} == {"budget-logreg_budget=300", "budget-logreg_budget=2000"}
    assert "1600" in table.stdout and "e+03" not in table.stdout
