"""Commands that need a data set say so before doing any work, naming the command that installs
it; `bench experiment` writes the tracked docs/ only when asked, and never from the test scale."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_fashion_dir
from omegaconf import OmegaConf

from bench.experiments.common import Finding, figure
from bench.sweep.check_sweep import missing_data
from bench.tasks import DATA_CHECKS

INSTALL = "sudo apt-get install dataset-fashion-mnist"
FASHION = "bench.tasks.fashion.FashionMNIST"


@pytest.fixture
def no_fashion_mnist(monkeypatch, tmp_path):
    """Fashion-MNIST's lookup (the one `bench list tasks` uses) pointed at an empty folder, as on
    a machine without the package."""
    empty = tmp_path / "no-data"
    empty.mkdir()
    real = DATA_CHECKS[FASHION]
    monkeypatch.setitem(DATA_CHECKS, FASHION, lambda node: real(OmegaConf.merge(node, {"data_dir": str(empty)})))
    return empty


def error_lines(result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def test_check_ci_without_fashion_mnist_stops_at_once_and_runs_nothing(bench_cli, no_fashion_mnist, tmp_path,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    # the data is checked before the sweep is even planned (planning alone takes seconds)
    monkeypatch.setattr("bench.sweep.check_sweep.plan", lambda *a, **k: pytest.fail("the sweep was planned"))
    result = bench_cli("check", "ci", "--runs-root", str(tmp_path / "gate"))
    assert result.code == 2, result.output
    (line,) = error_lines(result)
    assert f"`{INSTALL}`" in line and "fashion_mnist_tiny" in line and "nothing was run" in line
    assert not (tmp_path / "gate").exists() and not (tmp_path / "runs").exists()
    assert "[1/" not in result.output  # no run started
    # the same answer as `bench list tasks` gives
    assert "dataset-fashion-mnist (missing)" in bench_cli("list", "tasks").stdout


def test_check_names_every_missing_data_set_with_its_own_fix(bench_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    present = tmp_path / "fm"
    write_fashion_dir(present, n=20, n_test=10)
    sweep = tmp_path / "mine.yaml"
    sweep.write_text(f"""seeds: [0, 1]
cells:
  - task: logreg
    optimizers: [sgd]
  - task: fashion_mnist_tiny
    overrides: [task.data_dir={tmp_path / 'elsewhere'}]
    optimizers: [sgd, adamw]
  - task: cifar10
    overrides: [task.data_dir={tmp_path / 'elsewhere'}]
    optimizers: [sgd]
  - task: fashion_mnist
    overrides: [task.data_dir={present}]
    optimizers: [sgd]
""")
    result = bench_cli("check", str(sweep), "--update", "--runs-root", str(tmp_path / "gate"))
    assert result.code == 2, result.output
    (line,) = error_lines(result)
    assert f"fashion_mnist_tiny (not in {tmp_path / 'elsewhere'}; fix: `{INSTALL}`)" in line
    assert "cifar10" in line and "`bench data cifar10`" in line
    # data that is there (sklearn's, or Fashion-MNIST where task.data_dir points) is not named
    assert "logreg" not in line and "fashion_mnist (" not in line
    assert not (tmp_path / "gate").exists() and not (tmp_path / "mine_baseline.json").exists()


def test_the_check_reads_the_same_presence_as_bench_list_tasks(tmp_path):
    write_fashion_dir(tmp_path / "fm", n=20, n_test=10)
    assert missing_data([["task=fashion_mnist_tiny", f"task.data_dir={tmp_path / 'fm'}"]]) == []
    assert missing_data([["task=llama", f"task.data={tmp_path / 'none.txt'}"]]) == \
        ["llama (fix: `bench data shakespeare`)"]
    # generated data needs nothing; an unknown task is left to the sweep's own planning to report
    assert missing_data([["task=cifar10_tiny"], ["task=llama_tiny"], ["task=nope"]]) == []


def test_perf_loop_without_fashion_mnist_stops_before_the_first_case(bench_cli, no_fashion_mnist, monkeypatch):
    import bench.perf.loop as loop

    measured = []
    monkeypatch.setattr(loop, "measure", lambda name, *rest: measured.append(name))
    result = bench_cli("perf", "loop")
    assert result.code == 2, result.output
    (line,) = error_lines(result)
    assert "bench perf loop" in line and f"`{INSTALL}`" in line and "nothing was run" in line
    assert measured == []  # not even the logreg case, which comes first and needs no download


def test_perf_loop_case_that_needs_no_download_still_runs_without_it(bench_cli, no_fashion_mnist, monkeypatch):
    import bench.perf.loop as loop

    measured = []
    monkeypatch.setattr(loop, "measure", lambda name, *rest: measured.append(name) or
                        loop.Result(name, "", "wall", 10, 1.05, [1.0], [1.0]))
    result = bench_cli("perf", "loop", "-c", "logreg", "--format", "json")
    assert result.code == 0, result.output
    assert measured == ["logreg"]


CHEAPEST = "large_step_logreg"  # the fastest preset at --scale test


def test_experiment_at_test_scale_writes_under_its_runs_root_not_docs(bench_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = bench_cli("experiment", CHEAPEST, "--scale", "test")
    assert result.code == 0, result.output
    root = Path("runs/experiments") / f"{CHEAPEST}-test"
    assert f"wrote {root / 'CLAIMS.md'}" in result.stdout
    assert not (tmp_path / "docs").exists()
    text = (tmp_path / root / "CLAIMS.md").read_text()
    figures = sorted((tmp_path / root).glob(f"{CHEAPEST}-*.png"))
    assert figures and all(f"]({p.name})" in text for p in figures)  # beside CLAIMS.md, linked as such
    # no extra folder in the runs root: every command that reads it would list one as foreign
    from bench.results.store import load

    assert load(tmp_path / root).skipped == []
    # the tracked docs are never written from the test scale, whichever flag asks
    for flags in (["--write-docs"], ["--docs", "docs"]):
        refused = bench_cli("experiment", CHEAPEST, "--scale", "test", "--analyse-only", *flags)
        assert refused.code == 2 and "--scale test" in refused.stderr and "--write-docs" in refused.stderr
        assert not (tmp_path / "docs").exists()
    # a folder of one's own is fine: the analysis alone, written there with its claims/ figures
    elsewhere = bench_cli("experiment", CHEAPEST, "--scale", "test", "--analyse-only", "--docs", "report")
    assert elsewhere.code == 0, elsewhere.output
    assert f"wrote {Path('report') / 'CLAIMS.md'}" in elsewhere.stdout
    assert sorted(p.name for p in (tmp_path / "report" / "claims").iterdir()) == [p.name for p in figures]


@pytest.fixture
def instant_preset(monkeypatch):
    """CHEAPEST with its sweep skipped and an analysis that draws one figure: the paths alone."""
    import importlib

    module = importlib.import_module(f"bench.experiments.{CHEAPEST}")

    def analyse(exp):
        fig, _ = figure()
        return Finding("reproduced", "one sentence.", "| a |\n|---|\n| 1 |", [exp.save(fig, "curve")])

    monkeypatch.setattr(module, "sweep", lambda exp: None)
    monkeypatch.setattr(module, "analyse", analyse)


def test_experiment_writes_docs_only_with_write_docs(bench_cli, tmp_path, monkeypatch, instant_preset):
    monkeypatch.chdir(tmp_path)
    plain = bench_cli("experiment", CHEAPEST)
    assert plain.code == 0, plain.output
    root = Path("runs/experiments") / f"{CHEAPEST}-cpu"
    assert (tmp_path / root / "CLAIMS.md").is_file() and (tmp_path / root / f"{CHEAPEST}-curve.png").is_file()
    assert not (tmp_path / "docs").exists()
    assert f"`bench experiment {CHEAPEST} --write-docs` updates it" in plain.stdout

    written = bench_cli("experiment", CHEAPEST, "--write-docs")
    assert written.code == 0, written.output
    assert f"wrote {Path('docs') / 'CLAIMS.md'}" in written.stdout and "unchanged" not in written.stdout
    text = (tmp_path / "docs" / "CLAIMS.md").read_text()
    assert (tmp_path / "docs" / "claims" / f"{CHEAPEST}-curve.png").is_file()
    assert f"](claims/{CHEAPEST}-curve.png)" in text
    # the head and the section's footer name the command that rewrites them
    assert "`bench experiment <name> --write-docs`" in text
    assert f"<sub>`bench experiment {CHEAPEST} --write-docs` — scale cpu" in text

    gpu = bench_cli("experiment", CHEAPEST, "--scale", "gpu", "--docs", str(tmp_path / "elsewhere"))
    assert gpu.code == 0, gpu.output
    assert f"`bench experiment {CHEAPEST} --scale gpu --write-docs`" in (tmp_path / "elsewhere" / "CLAIMS.md").read_text()
