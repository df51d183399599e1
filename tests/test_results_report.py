"""Figures and the self-contained HTML report."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile

import matplotlib.colors as mcolors
import pytest

from bench.results import plots, report, store
from bench.results.synthetic import write_run

KINDS_IN_REPORT = ("profile", "curves-quad", "lr-quad", "budget-quad", "resources-quad")


def _write_root(root):
    for seed in range(5):  # three optimizers, three pairs: 5 seeds each can be decided
        for opt, lr, value in (("adamw", 0.01, 0.2), ("adamw", 0.1, 0.3), ("lion", 0.01, 0.15), ("sgd", 0.1, 0.4)):
            write_run(root, optimizer=opt, lr=lr, seed=seed, value=value + seed / 100, target=0.35,
                      steps_to_target=40 if value < 0.35 else None, time_to_target_s=0.4 if value < 0.35 else None,
                      state_bytes=0 if opt == "sgd" else 1024)
        write_run(root, optimizer="lion", lr=1.0, seed=seed, status="diverged")
    bad = write_run(root, optimizer="adam")
    (bad / "summary.json").write_text("{")
    cut = write_run(root, optimizer="sgd", lr=0.1, seed=9, value=0.41)
    (cut / "metrics.jsonl").write_text((cut / "metrics.jsonl").read_text()[:-30])
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(runs root, report path): drawing the figures is the slow part, so it happens once."""
    root = _write_root(tmp_path_factory.mktemp("results") / "runs")
    out = report.build_report(root, root.parent / "out" / "report.html", command=["bench", "report", "--runs", str(root)])
    return root, out


@pytest.fixture
def root(built):
    return built[0]


def test_report_is_self_contained_with_every_plot_kind(built):
    text = built[1].read_text()
    for name in KINDS_IN_REPORT:
        assert f"id='{name}'" in text, name
    images = re.findall(r"src='data:image/png;base64,([^']+)'", text)
    assert len(images) == len(KINDS_IN_REPORT)
    assert all(base64.b64decode(img)[:8] == b"\x89PNG\r\n\x1a\n" for img in images)
    # nothing to fetch: no scripts, stylesheets or remote images
    assert not re.search(r"<script|<link|src=['\"]?https?:", text)
    assert "<h3>quad: val/loss (lower is better), target 0.35 — " in text
    assert "lion" in text and "n=5" in text and "better (p=" in text and "Holm family" in text
    assert "summary.json is corrupt" in text and "truncated" in text  # skipped, not fatal
    assert "bench report --runs" in text
    assert "bench run -m task=quad optimizer=lion optimizer.lr=0.01 schedule=constant steps=100 batch_size=32 seed=0,1,2,3,4" in text
    assert "synthetic" in text  # environment table (host)


def test_report_with_no_runs_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no finished runs"):
        report.build_report(tmp_path / "empty", tmp_path / "r.html")


def test_colours_are_stable_per_optimizer():
    a = plots.colours(["adamw", "zeta", "alpha"])
    b = plots.colours(["alpha", "adamw", "sgd", "zeta", "beta"])
    assert a["adamw"] == b["adamw"] == "tab:blue"
    assert len(set(b.values())) == len(b)  # no two optimizers share a colour


def _line_colours(fig) -> dict[str, str]:
    out = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            label = line.get_label().split(" ")[0]
            if not label.startswith("_") and label != "median":
                out[label] = mcolors.to_hex(line.get_color())
    return out


def test_every_figure_has_labelled_axes_and_one_colour_per_optimizer(root, tmp_path):
    runs = store.load(root)
    figures = list(plots.figures(runs, x="time"))
    assert [name for name, _, _ in figures] == list(KINDS_IN_REPORT)
    expected = {k: mcolors.to_hex(v) for k, v in plots.colours(runs.table["optimizer"]).items()}
    for name, _, fig in figures:
        for ax in fig.axes:
            assert ax.get_xlabel() and ax.get_ylabel(), name
        for opt, colour in _line_colours(fig).items():
            if opt in expected:
                assert colour == expected[opt], (name, opt)
    lr_fig = dict((n, f) for n, _, f in figures)["lr-quad"]
    markers = [line for line in lr_fig.axes[0].get_lines() if line.get_marker() == "x"]
    assert len(markers) == 1 and list(markers[0].get_xdata()) == [1.0]  # lion's diverged lr
    paths = plots.save(figures[0][2], tmp_path / "figs", "profile")
    assert [p.suffix for p in paths] == [".png", ".svg"] and all(p.stat().st_size > 1000 for p in paths)
    assert "<svg" in paths[1].read_text()[:400]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_offline_in_headless_chromium(built, tmp_path):
    out = built[1]
    shot = tmp_path / "shot.png"
    profile = tempfile.mkdtemp(prefix="chromium-")
    try:
        subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                        "--window-size=1300,2400", f"--screenshot={shot}", out.resolve().as_uri()],
                       check=True, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    # a blank page is one colour; the report has text, tables and coloured figures
    assert pixels[..., :3].std() > 0.05 and len({tuple(p) for p in pixels[::40, ::40, :3].reshape(-1, 3)}) > 20
