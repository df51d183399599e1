"""Experiment presets: one command per claim from the literature (`bench experiment <name>`).

Each preset runs its sweep, then writes its figures (docs/claims/<name>-*.png) and a verdict with
numbers, n and confidence intervals into its own section of docs/CLAIMS.md. See common.py for the
shape of a preset.
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import torch

from bench.experiments.common import Experiment, Finding, load_spec, names, section, write_section


def run_experiment(name: str, scale: str = "cpu", runs_root: Path | None = None, docs: Path = Path("docs"),
                   analyse_only: bool = False) -> Finding:
    spec = load_spec(name, scale)
    exp = Experiment(name, scale, spec, runs_root or Path("runs") / "experiments" / f"{name}-{scale}", docs)
    module = importlib.import_module(f"bench.experiments.{name}")
    if scale != "gpu":
        # The CPU presets are many small runs: one thread each is the fast way on a shared 2-core
        # machine (measured: 10 ms vs 107 ms per MLP step with two threads under contention).
        torch.set_num_threads(1)
    started = time.perf_counter()
    if not analyse_only:
        module.sweep(exp)
    exp.read_only = True  # from here on, analyses that re-plan the sweep only read its runs back
    finding = module.analyse(exp)
    wall_s = time.perf_counter() - started
    write_section(docs / "CLAIMS.md", exp.key, section(exp, finding, wall_s, exp.load()))
    return finding


__all__ = ["names", "run_experiment"]
