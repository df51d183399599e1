"""Tiny-trial throughput (P3): bench's in-process sweep path vs one `bench run` process per trial.

    python -m bench.sweep.throughput --trials 100 --steps 500 --task rosenbrock

Runs `bench tune` (one process, every trial in it) into a fresh runs root, then runs the very same
trials (read from the sweep's manifest) as separate `bench run` processes into another, and
prints both wall times and their ratio. `--processes N` times only the first N separate processes
and scales their total to all trials: every one pays the same interpreter, torch and Hydra
start-up, so the sample mean stands for the rest.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _timed(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--task", default="rosenbrock")
    ap.add_argument("--optimizer", default="adam")
    ap.add_argument("--processes", type=int, default=None, help="separate processes to time (default: all)")
    args = ap.parse_args(argv)
    common = [f"task={args.task}", f"optimizer={args.optimizer}", f"steps={args.steps}", "progress=off"]
    with tempfile.TemporaryDirectory(prefix="bench-p3-") as tmp:
        sweep_root, run_root = Path(tmp) / "sweep", Path(tmp) / "runs"
        inproc = _timed([sys.executable, "-m", "bench", "tune", *common, f"trials={args.trials}", "seeds=0",
                         f"runs_root={sweep_root}"])
        (manifest,) = sweep_root.glob(".sweeps/*/manifest.json")
        cells = json.loads(manifest.read_text())["points"][0]["cells"]
        sample = cells[: args.processes or len(cells)]
        separate = 0.0
        for cell in sample:
            values = [f"optimizer.{k}={v!r}" for k, v in cell["params"].items()]
            separate += _timed([sys.executable, "-m", "bench", "run", *common, *values, f"seed={cell['seed']}",
                                f"runs_root={run_root}"])
        done = len(list(run_root.glob("*/summary.json")))
        assert done == len(sample), f"{done} of {len(sample)} separate runs finished"
    scaled = separate * len(cells) / len(sample)
    print(f"{len(cells)} trials of {args.steps} steps ({args.task}, {args.optimizer})")
    print(f"  in-process sweep (bench tune):   {inproc:8.1f} s  ({1000 * inproc / len(cells):.0f} ms/trial)")
    how = "" if len(sample) == len(cells) else f", {len(sample)} timed and scaled"
    print(f"  separate bench run processes:    {scaled:8.1f} s  ({1000 * scaled / len(cells):.0f} ms/trial{how})")
    print(f"  ratio: {scaled / inproc:.1f}x")


if __name__ == "__main__":
    main()
