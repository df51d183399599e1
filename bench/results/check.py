"""`bench check`: a regression gate for CI — the results side.

A check sweep (`bench/conf/check/<name>.yaml`, or any yaml path) lists cells — one task × one
optimizer, each over the same seeds; bench/sweep/check_sweep.py loads and runs it. This module
reads the finished runs of a runs root, compares each cell with a committed baseline JSON: the
final metric and steps-to-target over seeds, each by an exact rank test, all cells as one Holm
family at the sweep's `alpha` (check_rule.py), and renders the report.

Misses follow the results store: a diverged or failed run's metric, and a target never reached,
count as +inf on the "lower is better" scale, so they move the median instead of vanishing.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import BenchError
from bench.results.names import canonical_metric

# the rule imports scipy (seconds on a busy machine): a sweep that cannot start says so without it
if TYPE_CHECKING:
    from bench.results.check_rule import Cell, Gate, Row
    from bench.sweep.check_sweep import Sweep

#: environment facts that can move results on their own; a change is reported beside the verdict
ENV_KEYS = ("torch", "device", "device_name", "python", "threads")


def default_baseline(sweep: Sweep) -> Path:
    return sweep.path.with_name(f"{sweep.name}_baseline.json")


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
        from bench.results.markup import markdown

        return "\n\n".join(["\n".join(f"- {x}" for x in lines), markdown(COLUMNS, rows),
                           "\n".join(f"- {x}" for x in footer)])
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
