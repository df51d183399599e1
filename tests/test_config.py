"""Every yaml in every config group composes, and what it describes can be built."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import get_class, instantiate

from bench import BenchError
from bench.config import CONF_DIR, choices, description, run_id
from bench.optimizers import build_optimizer
from bench.runner.build import build_task


def composed(*overrides):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("group", ["task", "optimizer", "schedule", "logger"])
def test_every_option_has_a_description(group):
    assert choices(group), group
    for name in choices(group):
        assert description(group, name), f"{group}/{name}.yaml needs a first-line '# description'"


@pytest.mark.parametrize("name", choices("optimizer"))
def test_every_optimizer_composes_and_builds(name):
    cfg = composed(f"optimizer={name}")
    assert cfg.optimizer.name == name
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    optimizer, _ = build_optimizer(cfg.optimizer, model, optimum=0.0)  # f*, for those that need one (sps)
    assert isinstance(optimizer, torch.optim.Optimizer)


@pytest.mark.parametrize("name", choices("task"))
def test_every_task_composes_and_builds_or_names_missing_data(name):
    cfg = composed(f"task={name}")
    assert cfg.task.name == name and cfg.steps == cfg.task.budget
    present = getattr(get_class(cfg.task._target_), "data_present", None)
    if present is not None and not present(cfg.task):
        with pytest.raises(BenchError):
            build_task(cfg, torch.device("cpu"))
        return
    task = build_task(cfg, torch.device("cpu"))
    assert task.metric and task.mode in ("min", "max")


@pytest.mark.parametrize("name", choices("schedule"))
def test_every_schedule_is_a_multiplier_in_range(name):
    schedule = instantiate(composed(f"schedule={name}").schedule)
    values = [schedule(s, 100) for s in range(100)]
    assert all(0.0 <= v <= 1.0 for v in values)
    assert max(values) == pytest.approx(1.0, abs=0.05)


def test_run_id_ignores_where_results_go_but_not_what_runs():
    base = run_id(composed())
    assert run_id(composed("runs_root=/elsewhere", "progress=off", "force=true")) == base
    assert run_id(composed("seed=1")) != base
    assert run_id(composed("optimizer.lr=0.5")) != base
    assert base.startswith("logreg-adamw-")
