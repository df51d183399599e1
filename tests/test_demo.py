"""`bench demo` end to end on a tiny spec: tuning, leaderboard, plots and report; a second call
reuses every finished run."""

from __future__ import annotations

from bench.demo import run_demo


def test_demo_writes_leaderboard_plots_and_report(tmp_path, capsys):
    spec = tmp_path / "demo.yaml"
    spec.write_text("tune: task=logreg optimizer=sgd,adamw trials=2 seeds=1 steps=20 eval_every=10\nbaseline: adamw\n")
    out = tmp_path / "demo"
    report = run_demo(out, spec)
    text = capsys.readouterr().out
    assert "6 cells: 0 done, 0 resumed, 6 to run" in text
    assert "logreg: train/subopt (lower is better)" in text  # the leaderboard's title
    assert "sgd" in text and "adamw" in text
    html = report.read_text()
    assert report == out / "report.html" and "<img" in html and "bench tune task=logreg" in html
    assert (out / "plots" / "curves-logreg.png").stat().st_size > 1000
    assert len(list((out / "runs").glob("*/summary.json"))) == 6

    run_demo(out, spec)
    assert "6 cells: 6 done, 0 resumed, 0 to run" in capsys.readouterr().out
