"""Experiment presets: each one's sweep and analysis run end to end at `--scale test` and write
their figures and a verdict section into CLAIMS.md; the pieces the verdicts rest on are checked
against hand-made cases."""

import re

import numpy as np
import pandas as pd
import pytest

from bench.experiments import names, run_experiment
from bench.experiments.common import VERDICTS, ci, write_section
from bench.experiments.lion_memory import best_lr_ratio

PRESETS = ["edge_of_stability", "large_step_logreg", "schedule_free", "lion_memory", "reality_check"]


def test_every_preset_has_a_spec_and_a_module():
    assert sorted(PRESETS) == names()


@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_end_to_end_at_test_scale(name, tmp_path):
    docs = tmp_path / "docs"
    finding = run_experiment(name, "test", tmp_path / "runs", docs)
    assert finding.verdict in VERDICTS
    assert finding.figures and all(p.exists() and p.read_bytes()[:4] == b"\x89PNG" for p in finding.figures)
    text = (docs / "CLAIMS.md").read_text()
    section = re.search(rf"<!-- experiment:{name} -->\n(.*?)<!-- /experiment:{name} -->", text, flags=re.S).group(1)
    assert f"**Verdict: {finding.verdict}.**" in section
    assert "(n=" in section  # every number comes with its n
    for figure in finding.figures:
        assert f"(claims/{figure.name})" in section
    # the analysis alone, on the runs already there, writes the same section again in place
    again = run_experiment(name, "test", tmp_path / "runs", docs, analyse_only=True)
    assert again.verdict == finding.verdict
    assert (docs / "CLAIMS.md").read_text().count(f"<!-- experiment:{name} -->") == 1


OPTIMIZER_KEYS = {"optimizers", "free", "base", "generic", "special"}


def referenced(node, key=None):
    """(group, name) of every task/optimizer/schedule a spec names, at any depth."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from referenced(v, k)
    elif isinstance(node, list):
        for v in node:
            yield from referenced(v, key)
    elif isinstance(node, str):
        match = re.fullmatch(r"(task|optimizer|schedule)=(\w+)", node)
        if match:
            yield match.group(1), match.group(2)
        elif key in OPTIMIZER_KEYS:
            yield "optimizer", node
        elif key == "tasks":  # memory.tasks lists task names
            yield "task", node


@pytest.mark.parametrize("scale", ["test", "cpu", "gpu"])
def test_every_scale_names_only_existing_options(scale):
    from omegaconf import OmegaConf

    from bench.config import CONF_DIR
    from bench.experiments.common import load_spec

    for name in PRESETS:
        spec = OmegaConf.to_container(load_spec(name, scale), resolve=True)
        named = set(referenced(spec))
        assert named, name
        missing = [f"{g}={n}" for g, n in named if not (CONF_DIR / g / f"{n}.yaml").exists()]
        assert not missing, f"{name} --scale {scale} names {missing}"


def test_sections_are_replaced_in_place_and_kept_in_preset_order(tmp_path):
    claims = tmp_path / "CLAIMS.md"
    write_section(claims, "schedule_free", "## sf\nfirst\n")
    write_section(claims, "edge_of_stability", "## eos\n")
    write_section(claims, "schedule_free", "## sf\nsecond\n")
    write_section(claims, "edge_of_stability-gpu", "## eos on a gpu\n")
    text = claims.read_text()
    assert text.startswith("# What bench found")
    assert "first" not in text and text.count("## sf") == 1
    # names() order, not write order; a GPU run's section follows its CPU preset's
    assert text.index("## eos\n") < text.index("## eos on a gpu") < text.index("## sf")


def test_interval_text_carries_n_and_says_when_there_is_none():
    assert ci([1.0]) == "1 (n=1, no interval)"
    assert ci([]) == "– (n=0)"
    assert ci([np.inf, np.inf, np.inf]) == "∞ [∞, ∞] (n=3)"
    low, high = map(float, re.search(r"\[(\S+), (\S+)\]", ci([1.0, 2.0, 3.0, 4.0])).groups())
    assert 1.0 <= low <= 2.5 <= high <= 4.0


def test_best_lr_ratio_finds_the_grid_optimum_of_each_optimizer():
    rows = []
    for seed in range(4):
        for lr in (1e-4, 1e-3, 1e-2):
            # AdamW is best at 1e-2, Lion at 1e-3, whatever the seed; a diverged run is +inf
            rows.append({"optimizer": "adamw", "lr": lr, "seed": seed, "loss": abs(np.log10(lr) + 2) + 0.01 * seed})
            rows.append({"optimizer": "lion", "lr": lr, "seed": seed,
                         "loss": np.inf if lr == 1e-2 else abs(np.log10(lr) + 3) + 0.01 * seed})
    point, draws = best_lr_ratio(pd.DataFrame(rows), "adamw", "lion", n_boot=200)
    assert point == pytest.approx(10.0)
    assert np.allclose(draws, 10.0)  # the optimum never moves between seeds, so neither does the ratio


def test_cli_lists_presets_and_rejects_an_unknown_one(bench_cli, tmp_path):
    listed = bench_cli("experiment")
    assert listed.code == 0 and all(name in listed.output for name in PRESETS)
    bad = bench_cli("experiment", "nope", "--docs", str(tmp_path))
    assert bad.code == 2 and "unknown experiment 'nope'" in bad.output
    assert not (tmp_path / "CLAIMS.md").exists()
