"""`bench demo`: the whole product on a small real sweep — equal-budget tuning, leaderboard,
plots and an HTML report — from the spec in bench/conf/demo.yaml."""

from __future__ import annotations

import shlex
from pathlib import Path

from omegaconf import OmegaConf

from bench import BenchError
from bench.config import CONF_DIR


def run_demo(out: Path, spec_path: Path = CONF_DIR / "demo.yaml", threads: int = 1) -> Path:
    """Tune into <out>/runs, print the leaderboard, write <out>/plots and <out>/report.html;
    return the report's path. Finished runs are reused, so a second call only redraws."""
    import torch

    from bench.results.commands import plot_command, report_command, show_leaderboard
    from bench.sweep.tune import tune

    runs_root = out / "runs"
    spec = OmegaConf.load(spec_path)
    args = [*shlex.split(spec.tune), f"runs_root={runs_root}"]
    # Runs this small spend more time waking a second thread than computing on it.
    torch.set_num_threads(threads)
    if tune(args) != 0:
        raise BenchError(f"some demo runs did not finish; run `bench demo --out {out}` again to finish them")
    print()
    show_leaderboard(runs_root, baseline=spec.baseline)
    plot_command(str(runs_root), (), (), str(out / "plots"), ["all"], x="step", measure="time")
    return report_command(str(runs_root), (), (), str(out / "report.html"), spec.baseline, "step", "time",
                          explicit_baseline=False, argv=["bench", "tune", *args])
