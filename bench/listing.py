"""`bench list`: a config group's choices as a table, from the yamls alone (no torch, no task
classes: data presence is checked by file name)."""

from __future__ import annotations

from bench import BenchError
from bench.config import GROUPS, choices, description, option_defaults

PLURAL = {"tasks": "task", "optimizers": "optimizer", "schedules": "schedule", "loggers": "logger"}


def list_command(what: str) -> None:
    group = PLURAL.get(what, what)
    if group not in GROUPS:
        raise BenchError(f"cannot list {what!r}; choose one of: {', '.join(PLURAL)}")
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{what} ({len(choices(group))})", show_lines=False)
    table.add_column(group)
    extra = {"optimizer": ["source", "state_per_param"], "task": ["data_source", "budget", "target"]}.get(group, [])
    for col in extra:
        table.add_column("state B/param" if col == "state_per_param" else col)
    table.add_column("description")
    for name in choices(group):
        node = option_defaults(group, name)
        cells = [str(node.get(c, "")) for c in extra]
        if group == "task":
            cells[0] = _data_status(node)
        table.add_row(name, *cells, description(group, name))
    console = Console()
    # a terminal gets its own width (rich wraps the descriptions); a pipe or file gets whole lines
    (console if console.is_terminal else Console(width=160)).print(table)


def _data_status(node) -> str:
    source = str(node.get("data_source", "built-in"))
    try:
        from bench.tasks import data_present  # file checks only: listing must not wait for torch

        present = data_present(node)
        if present is not None:
            return f"{source} ({'present' if present else 'missing'})"
    except Exception:  # listing must not fail because one task cannot import
        return f"{source} (unavailable)"
    return source
