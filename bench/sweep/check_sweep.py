"""`bench check`: the sweep side of the CI regression gate.

Loads a check sweep (`bench/conf/check/<name>.yaml`, or any yaml path), checks that its tasks'
data are here, plans every (cell, seed) run up front with Hydra's compose API, and runs them in
this process (one `execute` per run) into a runs root keyed by a fingerprint of the code, or takes
an existing runs root instead; `check` then hands the runs root to bench/results/check.py, which
reads and judges it. It lives apart from the results layer because planning and running import
Hydra, torch and the runner, which reading and judging finished runs never need.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import bench
from bench import BenchError
from bench.config import CONF_DIR
from bench.results.check import (
    Report,
    collect,
    default_baseline,
    environment_changes,
    read_baseline,
    write_baseline,
)

CHECK_DIR = CONF_DIR / "check"
#: the smallest median change that can count: rel/abs for the final metric, steps_rel for steps
DEFAULT_TOLERANCE = {"rel": 0.02, "abs": 1.0e-6, "steps_rel": 0.1}
#: the gate's family-wise false-alarm rate: a change that moves nothing fails at most this often
DEFAULT_ALPHA = 0.05


@dataclass
class Sweep:
    name: str
    path: Path
    seeds: list[int]
    tolerance: dict[str, float]
    alpha: float
    #: (label, Hydra overrides without the seed), one per cell
    cells: list[tuple[str, list[str]]]


def _as_list(value: Any, where: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BenchError(f"{where} must be a list, got {value!r}")
    return value


def load_sweep(spec: str) -> Sweep:
    """A check sweep by name (bench/conf/check/<name>.yaml) or by path to a yaml file."""
    from omegaconf import OmegaConf

    path = Path(spec) if spec.endswith((".yaml", ".yml")) else CHECK_DIR / f"{spec}.yaml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in CHECK_DIR.glob("*.yaml")))
        raise BenchError(f"no check sweep {spec!r}; use a yaml path or one of: {known}")
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    except Exception as exc:  # yaml syntax, interpolation: the user's file, one line
        raise BenchError(f"cannot read check sweep {path}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(raw, dict) or not raw.get("cells"):
        raise BenchError(f"check sweep {path} needs a `cells:` list (see bench/conf/check/ci.yaml)")
    tolerance = _tolerance(raw.get("tolerance"), path)
    alpha = raw.get("alpha", DEFAULT_ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise BenchError(f"alpha in {path} must be a number between 0 and 1 (the gate's false-alarm rate, "
                         f"default {DEFAULT_ALPHA}), got {alpha!r}")
    common = [str(o) for o in _as_list(raw.get("overrides"), "overrides")]
    cells: list[tuple[str, list[str]]] = []
    for i, cell in enumerate(_as_list(raw["cells"], "cells")):
        if not isinstance(cell, dict) or "task" not in cell or "optimizers" not in cell:
            raise BenchError(f"cell {i} of {path} needs `task:` and `optimizers:`")
        optimizers = cell["optimizers"]
        if isinstance(optimizers, list):
            optimizers = {name: [] for name in optimizers}
        base = [f"task={cell['task']}", *common, *map(str, _as_list(cell.get("overrides"), f"cell {i} overrides"))]
        for opt, extra in optimizers.items():
            label = f"{cell.get('name', cell['task'])}/{opt}"
            if any(label == existing for existing, _ in cells):
                raise BenchError(f"{path} has two cells named {label}; give one task entry a `name:`")
            cells.append((label, [*base, f"optimizer={opt}", *map(str, _as_list(extra, label))]))
    seeds = _as_list(raw.get("seeds", [0, 1, 2]), "seeds")
    if not seeds or not all(isinstance(s, int) for s in seeds):
        raise BenchError(f"seeds in {path} must be a non-empty list of integers")
    return Sweep(path.stem, path, seeds, tolerance, float(alpha), cells)


def _tolerance(raw: Any, path: Path) -> dict[str, float]:
    if raw is None:
        return dict(DEFAULT_TOLERANCE)
    if not isinstance(raw, dict):
        raise BenchError(f"tolerance in {path} must be a mapping like {{rel: 0.02, abs: 1.0e-6, steps_rel: 0.1}}")
    if "k" in raw:  # the rule before the rank test: a multiple of the baseline seeds' MAD
        raise BenchError(f"tolerance k in {path} is no longer used (the gate is an exact rank test at `alpha`, "
                         "see docs/CI.md); delete k from `tolerance:`")
    if "alpha" in raw:
        raise BenchError(f"alpha is a top-level key of a check sweep: move it out of `tolerance:` in {path}")
    unknown = set(raw) - set(DEFAULT_TOLERANCE)
    if unknown:
        raise BenchError(f"unknown tolerance key {sorted(unknown)[0]!r} in {path}; valid: {', '.join(DEFAULT_TOLERANCE)}")
    bad = [k for k, v in raw.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0]
    if bad:
        raise BenchError(f"tolerance {bad[0]} in {path} must be a number ≥ 0, got {raw[bad[0]]!r}")
    return {**DEFAULT_TOLERANCE, **{k: float(v) for k, v in raw.items()}}


#: how to get a task's data, by the task class its yaml names; others fall back to `data_source`
DATA_FIX = {
    "bench.tasks.fashion.FashionMNIST": "sudo apt-get install dataset-fashion-mnist",
    "bench.tasks.cifar.Cifar10": "bench data cifar10",
    "bench.tasks.llama.LanguageModel": "bench data shakespeare",
}


def task_node(overrides: list[str]) -> Any:
    """The task node a list of overrides selects (`task=NAME` plus `task.key=value`), read from
    its yaml without composing the whole config: composing a sweep's every run takes seconds, and
    this check is meant to answer before any of them. None when no task is named or its yaml is
    not there (planning the sweep then says what is wrong)."""
    from omegaconf import OmegaConf

    name, updates = None, []
    for override in overrides:
        key, eq, value = override.lstrip("+").partition("=")
        if eq and key == "task":
            name = value
        elif eq and key.startswith("task."):
            updates.append(f"{key[len('task.'):]}={value}")
    path = CONF_DIR / "task" / f"{name}.yaml"
    if name is None or not path.is_file():
        return None
    try:
        return OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(updates))
    except Exception:  # an override only Hydra's grammar reads: leave the verdict to the run itself
        return None


def missing_data(cells: list[list[str]]) -> list[str]:
    """'<task> (fix: <command>)' for every distinct task among `cells` (override lists) whose data
    are not here — by the same check that `bench list tasks` shows (file names only, no torch)."""
    from bench.tasks import data_present

    missing: dict[str, str] = {}
    for overrides in cells:
        node = task_node(overrides)
        if node is None or node.get("name") in missing:
            continue
        try:
            present = data_present(node)
        except Exception:  # a task class that cannot import fails its runs, with the reason
            continue
        if present is False:
            fix = DATA_FIX.get(node._target_) or f"get its data ({node.get('data_source', 'see its yaml')})"
            where = f"not in {node.data_dir}; " if node.get("data_dir") else ""
            missing[node.get("name")] = f"{node.get('name')} ({where}fix: `{fix}`)"
    return list(missing.values())


def require_data(cells: list[list[str]], what: str) -> None:
    """Fail in one line, before anything runs, when a task of `what` has no data here."""
    missing = missing_data(cells)
    if missing:
        raise BenchError(f"{what} needs data that is not on this machine: {'; '.join(missing)}; nothing was run")


def code_fingerprint(sweep: Sweep, runs: list[PlannedRun]) -> str:
    """Hash of bench's own source and configs, of the modules that the sweep's `_target_`s name
    outside bench (a user's own optimizer), of the sweep file and of the torch version. The
    default runs root carries it, so finished runs are reused only while none of these changed:
    a run reused from older code would hide exactly the regression the check is for."""
    import importlib.util

    import torch

    package = Path(bench.__file__).parent
    files = {*package.rglob("*.py"), *package.rglob("*.yaml"), sweep.path}
    targets = {run.cfg[g].get("_target_") for run in runs for g in ("task", "optimizer", "schedule")}
    for target in filter(None, targets):
        try:
            spec = importlib.util.find_spec(target.rsplit(".", 1)[0])
        except (ImportError, ValueError):  # not importable: its runs fail, and say why
            continue
        if spec is not None and spec.origin and Path(spec.origin).is_file():
            files.add(Path(spec.origin))
    h = hashlib.sha256(torch.__version__.encode())
    for path in sorted(files):
        h.update(str(path).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:10]


@dataclass(frozen=True)
class PlannedRun:
    label: str
    seed: int
    run_id: str
    cfg: Any


def plan(sweep: Sweep) -> list[PlannedRun]:
    """Every (cell, seed) composed and validated up front, so bad input fails before the first
    run starts and leaves nothing behind."""
    from hydra.errors import HydraException

    from bench.compose import composer, composition_error
    from bench.config import run_id
    from bench.runner.validate import validate

    runs = []
    with composer() as make:
        for label, overrides in sweep.cells:
            for seed in sweep.seeds:
                point = [*overrides, f"seed={seed}", "progress=off"]
                try:
                    cfg = make(point)
                except HydraException as exc:
                    raise BenchError(f"{sweep.path} cell {label}: {composition_error(exc, point)}") from exc
                validate(cfg)
                runs.append(PlannedRun(label, seed, run_id(cfg), cfg))
    return runs


def run_plan(runs: list[PlannedRun], root: Path, threads: int, log: Callable[[str], None]) -> None:
    """Execute each planned run into `root`, in this process; finished ones are reused (execute
    skips them)."""
    import torch

    from bench.execute import Job, execute_all

    # A fixed thread count: results must not depend on the runner's core count, and on a shared
    # CI machine a second thread mostly waits for a busy core.
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started = time.perf_counter()
    for run in runs:
        run.cfg.runs_root = str(root)  # not part of the run id
    try:
        summaries = execute_all([Job(f"{run.label} seed={run.seed}", run.cfg) for run in runs], out=log)
    finally:
        torch.set_num_threads(saved_threads)
    reused = sum(s.get("status") == "skipped" for s in summaries)
    log(f"{len(runs)} runs ({reused} reused) in {time.perf_counter() - started:.0f} s")


def check(spec: str, baseline: str | None = None, runs: str | None = None, runs_root: str | None = None,
          update: bool = False, threads: int = 1, log: Callable[[str], None] = print) -> Report:
    """Run (or read) the sweep and compare it with the baseline; `update` rewrites the baseline."""
    sweep = load_sweep(spec)
    path = Path(baseline) if baseline else default_baseline(sweep)
    old = read_baseline(path) if not update or path.exists() else None  # fail fast, before running
    if runs is not None and not Path(runs).is_dir():
        raise BenchError(f"--runs {runs}: no such directory")
    if runs is None:  # before planning, which alone takes seconds: a missing data set is said at once
        require_data([overrides for _, overrides in sweep.cells], f"bench check {sweep.name}")
    planned = plan(sweep)
    if runs is not None:
        root = Path(runs)
    else:
        from bench.runner.rundir import ensure_root

        root = Path(runs_root or Path("runs/check") / f"{sweep.name}-{code_fingerprint(sweep, planned)}")
        ensure_root(root)  # only now: bad input leaves no directory behind
        run_plan(planned, root, threads, log)
    from bench.results.check_rule import compare

    cells, env, how = collect(root, {r.run_id: r.label for r in planned})
    gate = compare(old["cells"], cells, sweep.tolerance, sweep.alpha) if old else None
    notes = environment_changes(old.get("env", {}), env) if old else []
    if update:
        write_baseline(path, sweep.name, cells, env)
    return Report(sweep, path, gate, env, notes, f"{how} under {root}", updated=update)
