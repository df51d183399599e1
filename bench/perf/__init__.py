"""Performance benchmarks of bench itself (`bench perf ...`). Each measurement compares bench
with a plain-PyTorch reference in the same process, alternating the two, and reports the ratio
of their medians: absolute times on a shared machine drift, ratios measured side by side do not.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """A P1 case (bench/perf/loop.py): here, so that its data can be checked before torch loads."""

    about: str
    overrides: tuple[str, ...]
    goal: float  # largest acceptable bench / minimal train-time ratio


CASES = {
    "logreg": Case("full-batch logistic regression, breast_cancer (AdamW)",
                   ("task=logreg", "optimizer=adamw", "steps=3000"), 1.05),
    "fashion_mnist": Case("Fashion-MNIST CNN, width 32, batch 128 (AdamW)",
                          ("task=fashion_mnist", "optimizer=adamw", "steps=40", "task.subset=10000",
                           "task.val_subset=1000"), 1.02),
}


def require_data(names: list[str], extra: list[str]) -> None:
    """Every chosen case's data, checked before the first one runs: the logreg case alone takes
    a while, and a missing Fashion-MNIST should not be found out only after it."""
    from bench.sweep.check_sweep import require_data as require

    require([[*CASES[n].overrides, *extra] for n in names if n in CASES], "bench perf loop")
