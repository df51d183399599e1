"""The user's own optimizers and tasks: config folders added as in any Hydra app, foreign classes
stored under their own name, and whole sweeps checked before their first run."""

import json
import shutil
import sys
from pathlib import Path

import pytest
from conftest import only_run, read_run

from bench import BenchError
from bench.config import choices
from bench.runner.preflight import _Sweep, preflight

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "user_conf"


def one_error_line(res) -> str:
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert res.code == 2, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert "Traceback" not in res.output and "HYDRA_FULL_ERROR" not in res.output
    return lines[0]


def nothing_written(root: Path) -> bool:
    return not root.exists() or not any(root.iterdir())


@pytest.fixture
def user_conf(tmp_path) -> Path:
    """A copy of the README's worked example, somewhere else than the working directory."""
    return Path(shutil.copytree(EXAMPLES, tmp_path / "my_conf"))


@pytest.mark.parametrize("how", ["--config-dir", "-cd", "--config-dir=", "hydra.searchpath"])
def test_user_folder_adds_an_optimizer(bench_cli, runs_root, user_conf, how):
    given = {"hydra.searchpath": [f"hydra.searchpath=[file://{user_conf}]"],
             "--config-dir=": [f"--config-dir={user_conf}"]}.get(how, [how, str(user_conf)])
    res = bench_cli("run", *given, "optimizer=torch_adamax", "task=logreg", "steps=3", f"runs_root={runs_root}",
                    "progress=off")
    assert res.code == 0, res.output
    run = only_run(runs_root)
    summary, _ = read_run(run)
    assert run.name.startswith("logreg-torch_adamax-") and summary["optimizer"] == "torch_adamax"
    assert summary["hyperparameters"]["lr"] == 2e-3  # the user's yaml, not a default


def test_user_folder_in_a_multirun_with_a_user_task(bench_cli, runs_root, user_conf):
    res = bench_cli("run", "-m", "-cd", str(user_conf), "optimizer=torch_adamax,sgd", "task=logreg_wine", "steps=2",
                    f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    names = sorted(d.name.rsplit("-", 1)[0] for d in runs_root.iterdir() if not d.name.startswith("."))
    assert names == ["logreg_wine-sgd", "logreg_wine-torch_adamax"]


def test_unknown_option_with_a_user_folder_lists_the_users_options(bench_cli, runs_root, user_conf):
    line = one_error_line(bench_cli("run", "-cd", str(user_conf), "optimizer=torch_adamx", f"runs_root={runs_root}"))
    assert "unknown optimizer 'torch_adamx'" in line and "torch_adamax" in line and "--config-dir" in line
    line = one_error_line(bench_cli("run", "-m", f"hydra.searchpath=[file://{user_conf}]",
                                    "task=logreg_wine,nosuch", f"runs_root={runs_root}"))
    assert "unknown task 'nosuch'" in line and "logreg_wine" in line
    assert nothing_written(runs_root)
    # without the folder, the user's option is unknown, and the message says where to add it
    line = one_error_line(bench_cli("run", "task=logreg_wine", f"runs_root={runs_root}"))
    assert "unknown task 'logreg_wine'" in line and "task/logreg_wine.yaml" in line


def test_user_yaml_values_are_type_checked(bench_cli, runs_root, user_conf):
    line = one_error_line(bench_cli("run", "-cd", str(user_conf), "optimizer=torch_adamax", "optimizer.lr=abc",
                                    f"runs_root={runs_root}"))
    assert "optimizer.lr must be a number, got 'abc'" in line
    assert nothing_written(runs_root)


@pytest.mark.parametrize("args,message", [
    (["--config-dir", "/no/such/folder"], "--config-dir: no folder '/no/such/folder'"),
    (["hydra.searchpath=[file:///no/such/folder]"], "hydra.searchpath: no folder '/no/such/folder'"),
    (["hydra.searchpath=file:///x"], "hydra.searchpath must be a list of folders"),
    (["-cd"], "-cd needs a folder"),
])
def test_bad_user_folder(bench_cli, runs_root, args, message):
    line = one_error_line(bench_cli("run", f"runs_root={runs_root}", *args))
    assert message in line


def test_folder_without_groups_says_where_yamls_go(bench_cli, runs_root, user_conf):
    # a common slip: the group folder itself instead of the folder that holds it
    line = one_error_line(bench_cli("run", "-cd", str(user_conf / "optimizer"), "optimizer=torch_adamax",
                                    f"runs_root={runs_root}"))
    assert "has no task/, optimizer/" in line and "optimizer/NAME.yaml" in line


def test_package_without_the_class_is_one_line(bench_cli, runs_root, user_conf, monkeypatch):
    # heavyball is optional for users: where it is missing (hidden here), its yaml fails with the
    # install command, in one line
    monkeypatch.setitem(sys.modules, "heavyball", None)
    line = one_error_line(bench_cli("run", "-cd", str(user_conf), "optimizer=heavyball_soap", "steps=2",
                                    f"runs_root={runs_root}"))
    assert "no module named 'heavyball'" in line and "pip install heavyball" in line
    assert nothing_written(runs_root)


def test_foreign_target_is_stored_under_its_class_name(bench_cli, runs_root):
    res = bench_cli("run", "optimizer=adamw", "optimizer._target_=torch.optim.NAdam", "~optimizer.fused",
                    "steps=3", f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    assert "note: optimizer._target_=torch.optim.NAdam: stored as optimizer 'nadam'" in res.stderr
    run = only_run(runs_root)
    summary, _ = read_run(run)
    assert run.name.startswith("logreg-nadam-") and summary["optimizer"] == "nadam"
    assert json.loads((run / "summary.json").read_text())["run_id"].startswith("logreg-nadam-")


def test_foreign_target_with_a_name_keeps_it(bench_cli, runs_root):
    res = bench_cli("run", "optimizer._target_=torch.optim.NAdam", "~optimizer.fused", "optimizer.name=my_nadam",
                    "steps=3", f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    assert "note:" not in res.stderr
    assert only_run(runs_root).name.startswith("logreg-my_nadam-")


def test_foreign_target_named_like_another_optimizer_is_refused(bench_cli, runs_root):
    # torch.optim.Muon would be stored as `muon`, bench's own (different) Muon
    line = one_error_line(bench_cli("run", "optimizer._target_=torch.optim.Muon", f"runs_root={runs_root}"))
    assert "stored as optimizer 'muon'" in line and "bench.optimizers.muon.Muon" in line
    assert "optimizer.name=" in line
    assert nothing_written(runs_root)


def test_yaml_key_the_foreign_class_does_not_take(bench_cli, runs_root):
    line = one_error_line(bench_cli("run", "optimizer=adamw", "optimizer._target_=torch.optim.NAdam",
                                    f"runs_root={runs_root}"))
    assert "'fused' for nadam" in line and "~optimizer.fused" in line
    listed = line.split("valid: ", 1)[1].split(" (", 1)[0].split(", ")
    assert "momentum_decay" in listed and "amsgrad" not in listed  # NAdam's arguments, not AdamW's
    assert nothing_written(runs_root)


def test_unknown_override_lists_the_targeted_class_arguments(bench_cli, runs_root):
    line = one_error_line(bench_cli("run", "optimizer._target_=torch.optim.NAdam", "~optimizer.fused",
                                    "optimizer.foo=1", f"runs_root={runs_root}"))
    assert "'foo' for nadam" in line and "momentum_decay" in line and "torch.optim.NAdam" in line
    assert "drop the override" in line
    line = one_error_line(bench_cli("run", "+optimizer.foo=1", f"runs_root={runs_root}"))
    assert "'foo' for adamw" in line and "drop the override +optimizer.foo" in line


def test_argument_the_class_takes_but_the_yaml_lacks(bench_cli, runs_root):
    line = one_error_line(bench_cli("run", "optimizer.maximize=true", f"runs_root={runs_root}"))
    assert "+optimizer.maximize=" in line and "torch.optim.AdamW takes it" in line


@pytest.mark.parametrize("args,message", [
    (["+optimizer.lr=1"], "optimizer.lr is already set; drop the +"),
    (["~optimizer.nosuch"], "cannot drop optimizer.nosuch"),
])
def test_add_and_drop_mistakes(bench_cli, runs_root, args, message):
    assert message in one_error_line(bench_cli("run", *args, f"runs_root={runs_root}"))


def test_multirun_struct_error_is_one_line_naming_the_fix(bench_cli, runs_root):
    line = one_error_line(bench_cli("run", "-m", "optimizer=adamw,sgd", "optimizer.betas=[0.9,0.95]",
                                    f"runs_root={runs_root}", "progress=off"))
    assert "optimizer=sgd" in line and "'betas' for sgd" in line and "drop the override" in line
    assert "not in struct" not in line
    assert nothing_written(runs_root)  # adamw did not run first


def test_multirun_with_a_bad_later_value_runs_nothing(bench_cli, runs_root):
    line = one_error_line(bench_cli("run", "-m", "optimizer.lr=1e-3,-1", "steps=3", f"runs_root={runs_root}",
                                    "progress=off"))
    assert "optimizer.lr=-1" in line and "optimizer.lr must be > 0" in line
    assert nothing_written(runs_root)
    line = one_error_line(bench_cli("run", "-m", "optimizer=adamw,lion", "seed=0,1", "steps=0,3",
                                    f"runs_root={runs_root}"))
    assert "steps must be a positive integer" in line
    assert nothing_written(runs_root)


def test_sweep_over_classes_needs_a_yaml_per_class(bench_cli, runs_root):
    line = one_error_line(bench_cli("run", "-m", "optimizer._target_=torch.optim.NAdam,torch.optim.Adam",
                                    "~optimizer.fused", f"runs_root={runs_root}"))
    assert "needs a name per class" in line and "--config-dir" in line


def test_tune_refuses_a_foreign_class_without_a_name():
    # bench tune stores what it composes: a nameless class is refused there, not renamed
    with pytest.raises(BenchError, match=r"add optimizer\.name=nadam"):
        preflight(["optimizer._target_=torch.optim.NAdam", "~optimizer.fused"])


def test_many_group_choices_are_composed_one_at_a_time():
    optimizers, tasks = choices("optimizer")[:5], choices("task")[:4]
    sweep = _Sweep([f"optimizer={','.join(optimizers)}", f"task={','.join(tasks)}", "seed=0,1,2"], ())
    points = sweep.combinations()
    assert len(points) == 1 + 4 + 3  # not 5 × 4: every choice still composed once
    assert {p[0] for p in points} == {f"optimizer={o}" for o in optimizers}
    assert {p[1] for p in points} == {f"task={t}" for t in tasks}
    assert all(p[-1] == "seed=0" for p in points)  # other values are validated, not composed
    small = _Sweep(["optimizer=adamw,sgd", "task=logreg,rosenbrock"], ()).combinations()
    assert len(small) == 4


def test_readme_worked_example_runs_as_written(bench_cli, runs_root, monkeypatch):
    readme = (EXAMPLES.parents[1] / "README.md").read_text()
    section = readme.split("## Your own optimizers and tasks", 1)[1].split("\n## ", 1)[0]
    command = next(line.split() for line in section.splitlines() if line.strip().startswith("bench run --config-dir"))
    assert command[2:] == ["--config-dir", "examples/user_conf", "optimizer=torch_adamax", "task=logreg"]
    monkeypatch.chdir(EXAMPLES.parents[1])  # the path is relative to the checkout, as README says
    res = bench_cli(*command[1:], "steps=3", f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    assert only_run(runs_root).name.startswith("logreg-torch_adamax-")


def test_tune_takes_the_search_path(bench_cli, runs_root, user_conf):
    res = bench_cli("tune", f"hydra.searchpath=[file://{user_conf}]", "optimizer=torch_adamax", "task=logreg", "trials=1",
                    "studies=1", "seeds=1", "steps=2", f"runs_root={runs_root}")
    assert res.code == 0, res.output
    runs = [d for d in runs_root.iterdir() if not d.name.startswith(".")]
    assert runs and all(d.name.startswith("logreg-torch_adamax-") for d in runs)
    # --config-dir / -cd work as in `bench run` (the same runs: nothing new to train)
    for flag in ("--config-dir", "-cd"):
        again = bench_cli("tune", flag, str(user_conf), "optimizer=torch_adamax", "task=logreg", "trials=1", "studies=1",
                          "seeds=1", "steps=2", f"runs_root={runs_root}")
        assert again.code == 0, again.output
        assert "2 cells: 2 done" in again.stdout
    assert "needs a folder" in one_error_line(bench_cli("tune", "optimizer=torch_adamax", "-cd"))


def test_bench_options_come_first_in_the_search_path(tmp_path):
    from bench.config import CONF_DIR, class_name, option_file

    (tmp_path / "optimizer").mkdir()
    (tmp_path / "optimizer" / "adamw.yaml").write_text("name: mine\n_target_: torch.optim.SGD\n")
    (tmp_path / "optimizer" / "mine.yaml").write_text("name: mine\n_target_: torch.optim.SGD\n")
    assert option_file("optimizer", "adamw", (tmp_path,)) == CONF_DIR / "optimizer" / "adamw.yaml"  # as Hydra
    assert option_file("optimizer", "mine", (tmp_path,)) == tmp_path / "optimizer" / "mine.yaml"
    assert option_file("optimizer", "mine") is None
    assert "mine" in choices("optimizer", (tmp_path,)) and "mine" not in choices("optimizer")
    assert class_name("torch.optim.NAdam") == "nadam"


@pytest.mark.parametrize("target,message", [
    ("nosuchpkg.Opt", "no module named 'nosuchpkg'; install the package that provides it (e.g. pip install nosuchpkg)"),
    ("torch.optim.Nope", "(torch.optim has no Nope); fix optimizer._target_"),
])
def test_a_class_that_cannot_import_is_one_line(bench_cli, runs_root, target, message):
    line = one_error_line(bench_cli("run", f"optimizer._target_={target}", f"runs_root={runs_root}"))
    assert message in line
