"""Experiment presets: each one's sweep and analysis run end to end at `--scale test` and write
their figures and a verdict section into CLAIMS.md; the pieces the verdicts rest on are checked
against hand-made cases."""

import re

import numpy as np
import pytest

from bench.experiments import names, run_experiment
from bench.experiments.claims import STATS_MARK, write_section
from bench.experiments.common import VERDICTS
from bench.experiments.verdicts import ci

PRESETS = ["edge_of_stability", "large_step_logreg", "schedule_free", "lion_memory", "reality_check", "search_method"]


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
    assert STATS_MARK in section
    # a handful of seeds decides nothing, and the section says so with the command that adds seeds
    assert "n too small" in section and f"bench/conf/experiment/{name}.yaml" in section
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


def test_interval_text_carries_n_coverage_and_says_when_there_is_none():
    assert ci([1.0]) == "1 (n=1; n too small for a 95% interval: needs ≥ 6)"
    assert ci([]) == "– (n=0)"
    assert ci([np.nan, np.nan]) == "– (n=0)"  # nan is "not measured": left out, unlike a miss
    # the order-statistic interval [x(1), x(6)] covers the median with probability 1 − 2/2^6
    assert ci([6.0, 1.0, 2.0, 3.0, 4.0, 5.0]) == "3.5 [1, 6] (n=6, 96.8% coverage)"
    assert ci([1, 2, 3, 4, 5, 6, 7, 8, 9]) == "5 [2, 8] (n=9, 96.0% coverage)"
    # a miss is +inf and sorts last: half the runs missing makes the median a miss
    assert ci([1, 2, 3, np.inf, np.inf, np.inf]) == "∞ [1, ∞] (n=6, 96.8% coverage)"
    # a higher-is-better metric is printed in its own units, its interval the right way round
    assert ci([-0.9, -0.8, -0.7, -0.6, -0.5, -0.4], 2, sign=-1.0) == "0.65 [0.4, 0.9] (n=6, 96.8% coverage)"


def test_a_section_from_the_earlier_statistics_says_so_until_it_is_rerun(tmp_path):
    claims = tmp_path / "CLAIMS.md"
    old = "# What bench found\n\nold head\n\n<!-- experiment:reality_check-gpu -->\n## rc on a gpu\n\n**Verdict: " \
          "reproduced.** numbers\n<!-- /experiment:reality_check-gpu -->\n"
    claims.write_text(old)
    write_section(claims, "reality_check", f"## rc\n\nnew\n{STATS_MARK}\n")
    text = claims.read_text()
    assert "old head" not in text  # the head always describes the current rules
    gpu = re.search(r"<!-- experiment:reality_check-gpu -->\n(.*?)<!--", text, flags=re.S).group(1)
    assert gpu.startswith("## rc on a gpu\n\n> **Not re-run under the current statistics.**")
    assert "`bench experiment reality_check --scale gpu --write-docs` replaces it" in gpu and "numbers" in gpu
    cpu = re.search(r"<!-- experiment:reality_check -->\n(.*?)<!--", text, flags=re.S).group(1)
    assert "Not re-run" not in cpu
    write_section(claims, "reality_check", f"## rc\n\nagain\n{STATS_MARK}\n")
    assert claims.read_text().count("Not re-run under the current statistics") == 1  # noted once
    write_section(claims, "reality_check-gpu", f"## rc on a gpu\n\nre-run\n{STATS_MARK}\n")
    assert "Not re-run" not in claims.read_text()


def test_cli_lists_presets_and_rejects_an_unknown_one(bench_cli, tmp_path):
    listed = bench_cli("experiment")
    assert listed.code == 0 and all(name in listed.output for name in PRESETS)
    bad = bench_cli("experiment", "nope", "--docs", str(tmp_path))
    assert bad.code == 2 and "unknown experiment 'nope'" in bad.output
    assert not (tmp_path / "CLAIMS.md").exists()
