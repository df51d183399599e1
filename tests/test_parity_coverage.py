"""Every optimizer yaml has a parity row in one of the three parity tables.

A row covers a yaml when its optimizer is built from that yaml (`yaml(name, ...)` records the name),
or when it is built from a class that is the `_target_` of that yaml and of no other: a class that
several yamls share (torch.optim.SGD for sgd / heavyball / nesterov, Lion for lion / clion) cannot
say which of them a row checks, so those yamls need a row built from the yaml."""

from __future__ import annotations

from collections import defaultdict

import test_optimizer_parity
import test_optimizer_parity_classic
import test_optimizer_parity_matrix
import torch
from test_optimizer_parity import small_model

from bench.config import choices, option_defaults, resolve_target

TABLES = (test_optimizer_parity, test_optimizer_parity_classic, test_optimizer_parity_matrix)


def yamls_by_class() -> dict[type, list[str]]:
    by_class = defaultdict(list)
    for name in choices("optimizer"):
        by_class[resolve_target(option_defaults("optimizer", name), "optimizer")].append(name)
    return by_class


def covered(cases: dict, by_class: dict[type, list[str]]) -> dict[str, list[str]]:
    """yaml name -> the ids of the rows that cover it."""
    rows = defaultdict(list)
    for case, (ours, _) in cases.items():
        name = getattr(ours, "yaml", None)
        if name is None:
            sharing = by_class.get(type(ours(small_model())), [])
            name = sharing[0] if len(sharing) == 1 else None
        if name is not None:
            rows[name].append(case)
    return rows


def test_every_optimizer_yaml_has_a_parity_row():
    cases = {case: row for table in TABLES for case, row in table.CASES.items()}
    rows = covered(cases, yamls_by_class())
    missing = [name for name in choices("optimizer") if not rows.get(name)]
    assert not missing, f"optimizer yamls without a parity row: {', '.join(missing)}; add a row built with yaml(name, ...)"


def test_a_shared_class_covers_no_yaml():
    """A row built from torch.optim.SGD directly counts for none of sgd / heavyball / nesterov."""
    cases = {"sgd-direct": (lambda m: torch.optim.SGD(m.parameters(), lr=0.1), None)}
    assert dict(covered(cases, yamls_by_class())) == {}
