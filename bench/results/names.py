"""Metric names that changed, and how run directories written before a rename are read.

Everything that reads a run directory (the results store, `rundir.read_summary`, a resumed
run's checkpoint) passes metric names through `canonical_metric`, so that old and new runs of
a task show up as one metric; `bench check` does the same for the metric names of a baseline.
"""

from __future__ import annotations

from typing import Any

#: old metric name → current name. `val/subopt` was renamed `train/subopt`: F(w) − f* is the
#: suboptimality of the training objective, not a held-out quantity. Run directories (metrics.jsonl,
#: summary.json), checkpoints and check baselines written before the rename still use the old name.
RENAMED_METRICS = {"val/subopt": "train/subopt"}


def canonical_metric(name: Any) -> Any:
    """The current name of a metric; anything else (a current name, None, NaN) is returned as is."""
    return RENAMED_METRICS.get(name, name) if isinstance(name, str) else name


def canonical_keys(metrics: dict[str, Any]) -> dict[str, Any]:
    """`metrics` with every key renamed to its current name (a current key wins over an old one)."""
    out = {}
    for key, value in metrics.items():
        new = canonical_metric(key)
        if new == key or new not in metrics:
            out[new] = value
    return out


def canonical_summary(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary.json dict with current metric names: its `metric` and the keys of `final`."""
    if not isinstance(summary, dict):
        return summary
    out = dict(summary)
    if "metric" in out:
        out["metric"] = canonical_metric(out["metric"])
    if isinstance(out.get("final"), dict):
        out["final"] = canonical_keys(out["final"])
    return out
