"""Experiment presets: one command per claim from the literature (`bench experiment <name>`).

Each preset runs its sweep, then writes its figures and a verdict with numbers, n and confidence
intervals into its own section of a CLAIMS.md: by default the one in its runs root (figures
beside it), and the tracked docs/CLAIMS.md (figures in docs/claims/) only when asked
(`--write-docs`), never from the `test` scale. See common.py for the shape of a preset.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

from bench import BenchError
from bench.experiments.claims import section, write_section
from bench.experiments.common import Experiment, Finding, load_spec, names


def default_runs_root(name: str, scale: str) -> Path:
    return Path("runs") / "experiments" / f"{name}-{scale}"


def require_data(spec, what: str) -> None:
    """Every task a preset names at its scale (`task=NAME` overrides, `tasks:` lists and mappings,
    its own `task:` nodes) has its data here, checked before the first run: a GPU preset should not
    find a missing data set an hour in."""
    from omegaconf import OmegaConf

    from bench.config import choices
    from bench.sweep.check_sweep import DATA_FIX, missing_data
    from bench.tasks import data_present

    known, cells, nodes = set(choices("task")), [], []

    def walk(value, key=None):
        if isinstance(value, dict):
            if key == "task" and "_target_" in value:
                nodes.append(value)
            for k, v in value.items():
                if key == "tasks" and k in known:
                    cells.append([f"task={k}"])
                walk(v, k)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, str) and (value.startswith("task=") or (key in ("tasks", "run") and value in known)):
            cells.append([value if value.startswith("task=") else f"task={value}"])

    walk(OmegaConf.to_container(spec, resolve=True))
    missing = missing_data(cells)
    for node in nodes:
        if data_present(node) is False:
            fix = DATA_FIX.get("bench.tasks.fashion.FashionMNIST") if node.get("dataset") == "fashion_mnist" else None
            missing.append(f"{node.get('name', 'its task')} ({node.get('dataset')}" + (f"; fix: `{fix}`)" if fix else ")"))
    if missing:
        raise BenchError(f"{what} needs data that is not on this machine: {'; '.join(missing)}; nothing was run")


def run_experiment(name: str, scale: str = "cpu", runs_root: Path | None = None, docs: Path | None = None,
                   analyse_only: bool = False) -> Finding:
    """Run (or, with `analyse_only`, only analyse) a preset and write its section: into
    `docs`/CLAIMS.md with figures in `docs`/claims/ when `docs` is given, else into the runs
    root's CLAIMS.md with the figures beside it."""
    spec = load_spec(name, scale)
    root = runs_root or default_runs_root(name, scale)
    exp = Experiment(name, scale, spec, root, docs or root, figures_subdir="claims" if docs else "")
    module = importlib.import_module(f"bench.experiments.{name}")
    if scale != "gpu":
        import torch  # here, not above: listing the experiments must not wait for torch

        # The CPU presets are many small runs: one thread each is the fast way on a shared 2-core
        # machine (measured: 10 ms vs 107 ms per MLP step with two threads under contention).
        torch.set_num_threads(1)
    started = time.perf_counter()
    if not analyse_only:
        require_data(spec, f"bench experiment {name} --scale {scale}")
        module.sweep(exp)
    exp.read_only = True  # from here on, analyses that re-plan the sweep only read its runs back
    finding = module.analyse(exp)
    wall_s = time.perf_counter() - started
    write_section(exp.docs / "CLAIMS.md", exp.key, section(exp, finding, wall_s, exp.load()))
    return finding


__all__ = ["default_runs_root", "names", "run_experiment"]
