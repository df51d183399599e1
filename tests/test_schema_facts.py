"""The keys every task or optimizer yaml shares (name, budget, the `search:` space, the facts
about an optimizer) follow bench/schema.py's TaskFacts / OptimizerFacts: every shipped yaml does,
and an override that breaks a type is refused in one line before anything runs."""

import pytest
from test_user_config import one_error_line

from bench import BenchError, schema
from bench.config import choices, option_defaults


@pytest.mark.parametrize("group", ["task", "optimizer"])
def test_every_shipped_yaml_follows_the_schema(group):
    for name in choices(group):
        schema.check_facts(group, option_defaults(group, name))


@pytest.mark.parametrize("override,message", [
    ("optimizer.search.lr.low=abc", "optimizer.search.lr.low has the wrong type"),
    ("+optimizer.search.eps={low: 1.0e-9}", "optimizer.search.eps needs high"),
    ("optimizer.ideal_bytes=many", "optimizer.ideal_bytes has the wrong type"),
    ("task.budget=2.5", "task.budget has the wrong type"),
])
def test_a_broken_shared_key_is_one_line(bench_cli, runs_root, override, message):
    line = one_error_line(bench_cli("run", "task=logreg", "optimizer=adamw", override, f"runs_root={runs_root}"))
    assert message in line
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_the_schema_is_not_fooled_by_a_range_without_numbers():
    from omegaconf import OmegaConf

    with pytest.raises(BenchError, match="unknown key"):
        schema.check_facts("optimizer", OmegaConf.create({"search": {"lr": {"lo": 1, "high": 2}}}))
