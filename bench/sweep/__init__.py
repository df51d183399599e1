"""Sweeps beyond a grid: `bench tune` (equal-budget quasi-random search), resumable, on any
Hydra launcher. The help text lives here so that the CLI can show it without importing torch."""

TUNE_HELP = """Tune each optimizer with the same budget, then re-run its best point over fresh seeds.

Arguments are Hydra overrides plus the budget. Sweeps (a,b) span the comparison; every point of
it gets `studies` x `trials` runs at scrambled Sobol points of its optimizer's `search:` space
(seeded), then `seeds` runs of its best point with seeds never used in the search:

\\b
  bench tune optimizer=adamw,lion task=logreg trials=16 seeds=3
  bench tune optimizer=adamw,sgd task=logreg trials=5 studies=3        AlgoPerf-style studies
  bench tune optimizer=adamw,lion trials=16 launcher=parallel          one worker per GPU/core
  bench tune optimizer=lion task=cifar10 trials=32 launcher=slurm hydra.launcher.partition=gpu
  bench tune optimizer=adamw optimizer.search.lr.high=0.1 trials=8      narrow a search range

\\b
Budget: trials=16 (per study)  studies=1  seeds=3  search_seed=0 (the Sobol scramble)
Launchers: launcher=local (default: in this process), parallel (joblib), slurm, submitit_local.

Re-running the same command skips finished runs, resumes interrupted ones from their checkpoints
and reruns the rest ("38 cells: 30 done, 3 resumed, 5 to run"); Ctrl-C checkpoints the running
run. Every run's summary.json records sweep, phase (search|seeds), study and trial;
runs/.sweeps/<sweep>/manifest.json records the budget, search spaces, cells and results.
"""
