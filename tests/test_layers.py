"""The package's layering, read from its source: Hydra through its public API only, one module
that composes configs, and a results layer that only reads run directories."""

from __future__ import annotations

import re
from pathlib import Path

import bench

PACKAGE = Path(bench.__file__).parent


def sources() -> dict[str, str]:
    return {str(p.relative_to(PACKAGE.parent)): p.read_text() for p in PACKAGE.rglob("*.py")}


def test_no_private_hydra_module_is_used():
    assert [name for name, text in sources().items() if "hydra._internal" in text] == []


def test_one_module_composes_configs():
    composing = re.compile(r"\binitialize_config_dir\b|from hydra import[^\n]*\bcompose\b")
    assert [name for name, text in sources().items() if composing.search(text)] == ["bench/compose.py"]


def test_results_reads_run_directories_through_the_format_module_only():
    runner = re.compile(r"from bench\.runner(\.\w+)? import ([\w, ]+)|import bench\.runner\.(\w+)")
    found = set()
    for name, text in sources().items():
        if name.startswith("bench/results/"):
            for match in runner.finditer(text):
                found.add(match.group(1) or match.group(3) or match.group(2))
    assert found <= {".rundir", "rundir"}, found
