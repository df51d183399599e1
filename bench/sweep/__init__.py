"""Sweeps beyond a grid: `bench tune` (equal-budget quasi-random search), resumable, on any
Hydra launcher. The help text lives here so that the CLI can show it without importing torch."""

# Paragraphs are single lines (the help formatter wraps them); \b keeps an example block as is.
TUNE_HELP = (
    "Tune each optimizer with the same budget, then re-run its best point over fresh seeds.\n\n"
    "Arguments are Hydra overrides plus the budget. Sweeps (a,b) span the comparison. Each point of it gets "
    "studies x trials runs at scrambled Sobol points of its optimizer's `search:` space (seeded), then "
    "`seeds` runs of the best point with seeds the search never used.\n\n"
    "\b\n"
    "  bench tune optimizer=adamw,lion task=logreg trials=16 seeds=3\n"
    "  bench tune optimizer=adamw,sgd trials=5 studies=3     AlgoPerf-style\n"
    "  bench tune optimizer=adamw,lion launcher=parallel     1 worker/GPU or core\n"
    "  bench tune optimizer=lion task=cifar10 launcher=slurm \\\n"
    "      hydra.launcher.partition=gpu                      see docs/SLURM.md\n"
    "  bench tune optimizer=sgd optimizer.search.lr.high=1   narrow a range\n\n"
    "Budget: trials=16 (per study), studies=1, seeds=3, search_seed=0 (the Sobol scramble). "
    "Launchers: launcher=local (default, in this process), parallel (joblib), slurm, submitit_local.\n\n"
    "Running the same command again skips finished runs, resumes interrupted ones from their checkpoints "
    "and runs the rest (\"38 cells: 30 done, 3 resumed, 5 to run\"); Ctrl-C checkpoints the run in progress. "
    "Each run's summary.json records sweep, phase (search|seeds), study and trial; "
    "runs/.sweeps/<sweep>/manifest.json records the budget, search spaces, cells and results."
)
