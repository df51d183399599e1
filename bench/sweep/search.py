"""How `bench tune` picks its search points: `search=sobol` (default), `random` or `tpe`.

Sobol and random points are known before anything runs (bench/sweep/plan.py draws them all at
once). TPE (Optuna's tree-structured Parzen estimator) proposes each trial from the results of the
trials before it, so its search phase runs in rounds: every (point, study) is a chain of `trials`
cells, and a round runs the next cell of every chain that is not done yet. Launchers still get a
batch per round (one job per chain), so `launcher=parallel` keeps its workers busy across
optimizers, tasks and studies.

Determinism and resuming come from one rule: trial t of a chain is a pure function of the seed
and the finished trials 0..t−1 (their points as they ran and their losses). Each proposal builds a
fresh in-memory Optuna study, replays those trials into it with `add_trial` (which draws no random
numbers) and asks a sampler seeded with (search_seed, study, t) for one point. A relaunch reads
the finished trials back from their run directories, proposes exactly the points it proposed
before (so they have the same run ids and are not run again), and carries on from the first trial
that has no result yet. A chain waits at a failed trial: the next launch retries it, and only a
finished result (ok or diverged) may shape the later proposals, so that a retry that succeeds
never re-plans trials that already ran.

Losses are the task's metric oriented lower-is-better (`select.loss`): a diverged trial is +inf,
which TPE ranks below every finite value, so its region counts as bad. Startup: the first
`tpe_startup(trials)` trials are Optuna's own independent random draws (min(10, max(2, trials//4)):
Optuna's default of 10 would leave a 16-trial budget little to model), the rest are modelled.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, Callable

from bench import BenchError
from bench.sweep import record, select
from bench.sweep.plan import Budget, Cell, Point, materialize, search_cells
from bench.sweep.space import Dimension, rounded


def tpe_startup(trials: int) -> int:
    """How many of a chain's trials are independent random draws before TPE models the rest."""
    return min(10, max(2, trials // 4))


def trial_seed(search_seed: int, study: int, trial: int) -> int:
    """The sampler's seed for one proposal; the same for every point (common random numbers in
    the startup draws of spaces with the same keys)."""
    return int(hashlib.sha256(f"{search_seed}/{study}/tpe/{trial}".encode()).hexdigest()[:8], 16)


def _optuna():
    try:
        import optuna
    except ImportError as exc:
        raise BenchError("search=tpe needs Optuna: pip install 'bench[optuna]' (or use search=sobol)") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _distributions(optuna, space: list[Dimension]) -> dict[str, Any]:
    from optuna.distributions import LogUniformDistribution, UniformDistribution

    return {d.key: LogUniformDistribution(d.low, d.high) if d.log else UniformDistribution(d.low, d.high)
            for d in space}


#: proposals made in this process: each round re-plans every chain from its start, and a finished
#: trial's result never changes, so an earlier trial's proposal is looked up rather than recomputed
_proposed: dict[tuple, dict[str, float]] = {}


def propose(space: list[Dimension], history: list[tuple[dict[str, float], float]], seed: int,
            startup: int) -> dict[str, float]:
    """TPE's next point given the finished trials `history` ((point, loss) in trial order)."""
    key = (tuple(space), tuple((tuple(sorted(p.items())), loss) for p, loss in history), seed, startup)
    if key not in _proposed:
        _proposed[key] = _propose(space, history, seed, startup)
    return dict(_proposed[key])


def _propose(space: list[Dimension], history: list[tuple[dict[str, float], float]], seed: int,
             startup: int) -> dict[str, float]:
    optuna = _optuna()
    distributions = _distributions(optuna, space)
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup)
    with warnings.catch_warnings():  # experimental-API notices, not news for whoever runs a sweep
        warnings.simplefilter("ignore")
        study = optuna.create_study(direction="minimize", sampler=sampler)
        for params, loss in history:
            study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=loss))
        proposed = study.ask(distributions).params
    return {d.key: rounded(d, proposed[d.key]) for d in space}


def tpe_cells(points: list[Point], budget: Budget, sweep: str,
              summary_of: Callable[[Cell], dict | None]) -> list[Cell]:
    """Every chain's cells as far as finished results take it: its finished trials, then the
    next one (to run, or being retried). `summary_of` reads a cell's run directory."""
    cells = []
    startup = tpe_startup(budget.trials)
    for index, point in enumerate(points):
        for study in range(budget.studies):
            history: list[tuple[dict[str, float], float]] = []
            for trial in range(budget.trials):
                params = propose(point.space, history, trial_seed(budget.search_seed, study, trial), startup)
                cell = Cell(index, "search", study, trial, int(point.cfg.seed) + study, params, sweep, search="tpe")
                cells.append(materialize(cell, point))
                summary = summary_of(cell)
                if not record.finished(summary):
                    break
                history.append((params, select.loss(summary)))
    return cells


def plan_search(points: list[Point], budget: Budget, sweep: str,
                summary_of: Callable[[Cell], dict | None]) -> list[Cell]:
    """The search cells known now: all of them for sobol and random, the chains' finished cells
    and next ones for tpe. Called again after each round, it adds the next round's cells."""
    if budget.search == "tpe":
        return tpe_cells(points, budget, sweep, summary_of)
    return search_cells(points, budget, sweep)


def planned_total(points: list[Point], budget: Budget) -> int:
    return len(points) * budget.studies * budget.trials


def complete(search: list[Cell], points: list[Point], budget: Budget) -> bool:
    """Whether every search cell is known: always for sobol and random, for tpe once every chain
    has reached its last trial (a best from a partial search would give some points less budget)."""
    return len(search) == planned_total(points, budget)

