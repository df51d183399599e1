"""`bench check`: a regression gate for CI.

A check sweep (`bench/conf/check/<name>.yaml`, or any yaml path) lists cells — one task × one
optimizer, each over the same seeds. The sweep runs in this process (composed with Hydra's
compose API, one `execute` per run) or is read from an existing runs root, and each cell is
compared with a committed baseline JSON: the final metric and steps-to-target over seeds, each
by an exact rank test, all cells as one Holm family at the sweep's `alpha` (check_rule.py).

Misses follow the results store: a diverged or failed run's metric, and a target never reached,
count as +inf on the "lower is better" scale, so they move the median instead of vanishing.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import io
import json
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import bench
from bench import BenchError
from bench.config import CONF_DIR
from bench.results.names import canonical_metric

# the rule imports scipy (seconds on a busy machine): a sweep that cannot start says so without it
if TYPE_CHECKING:
    from bench.results.check_rule import Cell, Gate, Row

CHECK_DIR = CONF_DIR / "check"
#: the smallest median change that can count: rel/abs for the final metric, steps_rel for steps
DEFAULT_TOLERANCE = {"rel": 0.02, "abs": 1.0e-6, "steps_rel": 0.1}
#: the gate's family-wise false-alarm rate: a change that moves nothing fails at most this often
DEFAULT_ALPHA = 0.05
#: environment facts that can move results on their own; a change is reported beside the verdict
ENV_KEYS = ("torch", "device", "device_name", "python", "threads")


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


def default_baseline(sweep: Sweep) -> Path:
    return sweep.path.with_name(f"{sweep.name}_baseline.json")


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
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    from bench.config import run_id
    from bench.runner.validate import validate

    runs = []
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            for label, overrides in sweep.cells:
                for seed in sweep.seeds:
                    try:
                        cfg = compose("config", overrides=[*overrides, f"seed={seed}", "progress=off"])
                    except HydraException as exc:
                        raise BenchError(f"{sweep.path} cell {label}: {str(exc).splitlines()[0]}") from exc
                    validate(cfg)
                    runs.append(PlannedRun(label, seed, run_id(cfg), cfg))
    finally:
        GlobalHydra.instance().clear()
    return runs


def run_plan(runs: list[PlannedRun], root: Path, threads: int, log: Callable[[str], None]) -> None:
    """Execute each planned run into `root`, in this process; finished ones are reused (execute
    skips them)."""
    import torch

    from bench.runner.main import execute

    # A fixed thread count: results must not depend on the runner's core count, and on a shared
    # CI machine a second thread mostly waits for a busy core.
    saved_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    started, reused = time.perf_counter(), 0
    try:
        for i, run in enumerate(runs, 1):
            t0 = time.perf_counter()
            run.cfg.runs_root = str(root)  # not part of the run id
            with contextlib.redirect_stdout(io.StringIO()):  # its "ok: <dir>" line; ours says more
                status = execute(run.cfg)["status"]
            reused += status == "skipped"
            log(f"[{i}/{len(runs)}] {run.label} seed={run.seed}: {status} ({time.perf_counter() - t0:.1f} s)")
    finally:
        torch.set_num_threads(saved_threads)
    log(f"{len(runs)} runs ({reused} reused) in {time.perf_counter() - started:.0f} s")


def collect(root: Path, labels: dict[str, str]) -> tuple[dict[str, Cell], dict[str, set], str]:
    """Cells and environment facts from the finished runs under `root`, read by the results
    store. Runs whose run id is in `labels` form the sweep's cells; when none is, every run
    counts, grouped by task/optimizer, and each group must hold a single setting."""
    from bench.results.check_rule import Cell
    from bench.results.store import load

    table = load(root).table
    if table.empty:
        raise BenchError(f"no finished runs under {root}")
    mine = table["run_id"].isin(labels)
    if mine.any():
        table = table[mine].assign(label=table.loc[mine, "run_id"].map(labels))
        how = f"{len(table)} of the sweep's {len(labels)} runs"
    else:
        table = table.assign(label=table["task"].astype(str) + "/" + table["optimizer"].astype(str))
        how = f"{len(table)} runs grouped by task/optimizer (none belongs to this sweep)"
    cells = {}
    for label, group in table.groupby("label", sort=True):
        variants = group[["setting", "benchmark"]].astype(str).drop_duplicates()
        if len(variants) > 1:
            raise BenchError(f"{root} holds {len(variants)} different settings of {label}; bench check compares one "
                             "setting per task/optimizer (use a check sweep, or a runs root with one setting)")
        group = group.sort_values("seed")
        first = group.iloc[0]
        budget = _finite_number(first.get("budget"))
        cells[label] = Cell(
            label, str(first["metric"]), str(first["mode"]), [int(s) for s in group["seed"]],
            [float(v) for v in group["value"]], [float(v) for v in group["loss"]],
            [float(v) for v in group["steps_to_target_inf"]], [str(s) for s in group["status"]],
            json.loads(first["hyperparameters"]) if isinstance(first["hyperparameters"], str) else {},
            None if budget is None else int(budget))
    # a column with a gap becomes float in the store: 1.0 threads must still read as "1"
    fact = lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)
    env = {k: set(map(fact, table[f"env/{k}"].dropna())) for k in ENV_KEYS if f"env/{k}" in table}
    return cells, env, how


def _finite_number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def write_baseline(path: Path, sweep_name: str, cells: dict[str, Cell], env: dict[str, set]) -> None:
    from bench.runner.rundir import git_sha

    data = {"sweep": sweep_name, "created_at": datetime.datetime.now().isoformat(timespec="seconds"),
            "git_sha": git_sha(), "env": {k: "/".join(sorted(v)) for k, v in env.items()},
            "cells": {label: cell.to_json() for label, cell in sorted(cells.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, sort_keys=True)
    # one line per list of numbers or names keeps the file short and its diffs readable
    text = re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + ", ".join(x.strip() for x in m.group(1).split(",")) + "]", text)
    path.write_text(text + "\n")


def read_baseline(path: Path) -> dict[str, Any]:
    from bench.results.check_rule import Cell

    if not path.is_file():
        raise BenchError(f"no baseline at {path}; write one with `bench check <sweep> --update` (and commit it)")
    try:
        data = json.loads(path.read_text())
        # a baseline written before a metric was renamed still compares with today's runs
        data["cells"] = {label: Cell.from_json(label, {**c, "metric": canonical_metric(c["metric"])})
                         for label, c in data["cells"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise BenchError(f"baseline {path} is not a bench check baseline ({type(exc).__name__}: {exc}); "
                         "regenerate it with --update") from exc
    return data


def environment_changes(baseline_env: dict[str, str], current: dict[str, set]) -> list[str]:
    """'torch 2.12.0 → 2.13.0'-style notes for every environment fact that differs."""
    notes = []
    for key in ENV_KEYS:
        before, now = baseline_env.get(key), "/".join(sorted(current.get(key, ())))
        if before is not None and now and str(before) != now:
            notes.append(f"{key} {before} → {now}")
    return notes


@dataclass
class Report:
    sweep: Sweep
    baseline_path: Path
    gate: Gate | None  # None: no baseline to compare with (a first --update)
    env: dict[str, set]
    env_notes: list[str]
    source: str
    updated: bool = False

    @property
    def rows(self) -> list[Row]:
        return self.gate.rows if self.gate else []

    @property
    def exit_code(self) -> int:
        return 1 if not self.updated and any(r.failing for r in self.rows) else 0


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


STYLE = {"regressed": "bold red", "missing": "bold red", "changed": "bold red", "improved": "green", "new": "yellow",
         "n too small": "yellow"}


def render(report: Report, fmt: str = "table") -> str | None:
    """The report as markdown or JSON text; `table` prints a rich table itself and returns None."""
    from bench.results.check_rule import COLUMNS, row_cells, sweep_warning

    rows = [row_cells(r) for r in report.rows]
    counts = {v: sum(r.verdict == v for r in report.rows) for v in dict.fromkeys(r.verdict for r in report.rows)}
    verdict = "updated the baseline" if report.updated else ("FAIL" if report.exit_code else "ok")
    tally = ", ".join(f"{n} {v}" for v, n in counts.items()) or "nothing to compare"
    env_now = ", ".join(f"{k} {'/'.join(sorted(v))}" for k, v in report.env.items() if k != "device_name")
    env = ("environment changed since the baseline: " + "; ".join(report.env_notes)
           + " (a difference may come from the environment, not the code)") if report.env_notes \
        else f"environment: {env_now}" + (" (same as the baseline)" if report.rows else "")
    lines = [f"bench check {report.sweep.name}: {report.source}", f"baseline: {report.baseline_path}", env]
    gate = report.gate
    sweep = report.sweep
    warning = gate.warning(str(sweep.path)) if gate else \
        sweep_warning(len(sweep.cells), len(sweep.seeds), sweep.alpha, str(sweep.path))
    power = gate.power() if gate else None
    footer = [x for x in (gate.rule() if gate else None, power, warning) if x] + [f"result: {tally} -> {verdict}"]
    if fmt == "json":
        return json.dumps({"sweep": report.sweep.name, "baseline": str(report.baseline_path), "result": verdict,
                           "exit_code": report.exit_code, "environment_changes": report.env_notes,
                           "alpha": report.sweep.alpha, "family": gate.family if gate else 0,
                           "rule": gate.rule() if gate else None, "power": power, "warning": warning,
                           "rows": [dict(zip(COLUMNS, r, strict=True)) for r in rows]}, indent=2)
    if fmt == "md":
        table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
        table += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
        return "\n\n".join(["\n".join(f"- {x}" for x in lines), "\n".join(table), "\n".join(f"- {x}" for x in footer)])
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(200, Console().width), highlight=False)
    for line in lines:
        console.print(line, style="bold yellow" if line.startswith("environment changed") else None)
    table = Table(show_lines=False)
    for column in COLUMNS:  # names stay whole; the `why` column wraps
        table.add_column(column, no_wrap=column in ("cell", "metric"))
    for row, cells in zip(report.rows, rows, strict=True):
        style = STYLE.get(row.verdict.split(" (")[0])  # "n too small (needs ≥ 6 seeds)"
        table.add_row(*cells[:-2], f"[{style}]{cells[-2]}[/]" if style else cells[-2], cells[-1])
    if rows:
        console.print(table)
    styles = {"result": "bold red" if report.exit_code else "bold green", "warning": "bold yellow"}
    for line in footer:
        console.print(line, style=styles.get(line.split(":")[0]))
    return None
