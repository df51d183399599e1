"""Synthetic run directories in the exact layout `bench run` writes: for tests (milliseconds
instead of training) and for the store benchmark.

    python -m bench.results.synthetic /tmp/store-10k 10000    # time loading 10,000 runs
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.runner import rundir


def write_run(root: str | Path, *, task: str = "quad", optimizer: str = "adamw", seed: int = 0, lr: float = 1e-3,
              value: float = 0.1, status: str = "ok", metric: str = "val/loss", mode: str = "min",
              target: float | None = None, steps: int = 100, steps_to_target: int | None = None,
              time_to_target_s: float | None = None, step_time_ms: float = 1.0, state_bytes: int = 0,
              hyperparameters: dict | None = None, extra: dict | None = None, curve_points: int = 11,
              task_settings: dict | None = None, name: str | None = None) -> Path:
    """One finished run. The curve falls linearly from 1 to `value` (for a "min" metric; a "max"
    metric rises from 0 to `value`); a diverged run's curve ends in inf."""
    hp = {"lr": lr, **(hyperparameters or {})}
    key = json.dumps([task, optimizer, hp, seed, steps, task_settings], sort_keys=True)
    run_id = f"{task}-{optimizer}-{hashlib.sha1(key.encode()).hexdigest()[:10]}"
    run_dir = Path(root) / (name or run_id)
    run_dir.mkdir(parents=True, exist_ok=True)
    task_lines = "".join(f"  {k}: {v}\n" for k, v in (task_settings or {}).items())
    (run_dir / rundir.CONFIG).write_text(f"task:\n  name: {task}\n{task_lines}optimizer:\n  name: {optimizer}\n"
                                         f"steps: {steps}\nseed: {seed}\n")
    start = 1.0 if mode == "min" else 0.0
    lines = []
    for i in range(curve_points):
        step = steps * i // max(1, curve_points - 1)
        v = start + (value - start) * i / max(1, curve_points - 1)
        if status == "diverged" and i == curve_points - 1:
            v = "inf"
        lines.append(json.dumps({"step": step, "time/train_s": step * step_time_ms / 1000, "lr": lr, "items": step * 32,
                                 "train/loss": v, metric: v}))
    (run_dir / rundir.METRICS).write_text("\n".join(lines) + "\n")
    summary: dict[str, Any] = {
        "run_id": run_id, "task": task, "optimizer": optimizer, "seed": seed, "metric": metric, "mode": mode,
        "target": target, "optimum": None, "hyperparameters": hp, "schedule": "Constant", "batch_size": 32,
        "implementation": "foreach", "status": status, "steps": steps,
        "final": {metric: value} if status != "failed" else {}, "best": value,
        "steps_to_target": steps_to_target, "time_to_target_s": time_to_target_s,
        "train_time_s": steps * step_time_ms / 1000, "eval_time_s": 0.01, "step_time_ms": step_time_ms,
        "diverged_at": steps if status == "diverged" else None, "items_per_step": 32,
        "optimizer_state_bytes": state_bytes, "peak_mem_bytes": 1 << 20, "n_params": 10,
        "env": {"bench": "0.1.0", "torch": "2.13.0+cpu", "device": "cpu", "host": "synthetic"},
        "finished_at": time.time(), "run_dir": str(run_dir), **(extra or {}),
    }
    (run_dir / rundir.SUMMARY).write_text(json.dumps(summary))
    return run_dir


def populate(root: Path, n: int) -> None:
    """n small runs: 4 tasks × 5 optimizers × lr grid × seeds, enough variety for the index."""
    for i in range(n):
        write_run(root, task=f"task{i % 4}", optimizer=f"opt{(i // 4) % 5}", seed=i // 200, lr=10 ** -(1 + (i // 20) % 10),
                  value=0.1 + (i % 97) / 1000, steps_to_target=50, time_to_target_s=0.5, curve_points=5)


def benchmark(root: Path, n: int) -> dict[str, float]:
    """Seconds to load n runs: cold (no index), building the index, and warm (index current)."""
    from bench.results.store import INDEX, load

    if not root.exists() or sum(1 for _ in root.iterdir()) < n:
        populate(root, n)
    (root / INDEX).unlink(missing_ok=True)
    timings = {}
    for label, cache in (("cold, no index", False), ("first load, writes index", True), ("warm, index current", True)):
        t = time.perf_counter()
        runs = load(root, cache=cache)
        timings[label] = time.perf_counter() - t
        assert len(runs.table) == n, (len(runs.table), runs.skipped[:3])
    return timings


if __name__ == "__main__":
    target, count = Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 10_000
    for label, seconds in benchmark(target, count).items():
        print(f"{count} runs, {label}: {seconds:.2f} s")
