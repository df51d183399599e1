"""Proof by simulation that bench's verdicts and intervals mean what they say.

    python -m bench.results.calibration            # the full table (a few minutes on one core)
    python -m bench.results.calibration --trials 400

Seeds of an optimizer are simulated as draws from one distribution (normal, log-normal, or
Student t with 3 d.o.f.: heavy tails), centred at 1 with a spread of 0.2 (20%), optionally with
10% misses (+inf: diverged / target never reached). For n seeds per side it measures:

- coverage of every interval kind the leaderboard prints (median, Hodges–Lehmann shift, ratio of
  medians, P(beats)) against its true value, or that none is printed where n is too small;
- the family-wise false-positive rate of a full leaderboard table (6 optimizers and the baseline,
  all from one distribution), through `leaderboard.judge`, the function the table itself uses;
- power: how often an optimizer whose seeds are 20% lower (one spread) is declared better than
  the baseline in that table.

Monte-Carlo error: a rate p estimated from T trials has standard error sqrt(p(1−p)/T); the test
suite allows 3 of them (about 0.02 for p = 0.05 and T = 1000).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from bench.results import stats
from bench.results.leaderboard import judge
from bench.results.markup import markdown

KINDS = ("normal", "lognormal", "t3")
CENTRE, SPREAD, MISS = 1.0, 0.2, 0.1


def draw(rng: np.random.Generator, kind: str, size, misses: bool) -> np.ndarray:
    """Losses centred at 1 with spread 0.2; a fraction MISS of them +inf when `misses`."""
    z = {"normal": rng.standard_normal, "lognormal": rng.standard_normal,
         "t3": lambda s: rng.standard_t(3, s)}[kind](size)
    x = np.exp(SPREAD * z) if kind == "lognormal" else CENTRE + SPREAD * z
    if misses:
        x = np.where(rng.random(size) < MISS, np.inf, x)
    return x


def _quantile(kind: str, p: float) -> float:
    z = {"normal": sps.norm.ppf, "lognormal": sps.norm.ppf, "t3": lambda q: sps.t.ppf(q, 3)}[kind](p)
    return float(np.exp(SPREAD * z) if kind == "lognormal" else CENTRE + SPREAD * z)


def true_median(kind: str, misses: bool) -> float:
    """With misses the median moves up: it is the 0.5/(1 − MISS) quantile of the finite part."""
    return _quantile(kind, 0.5 / (1 - MISS) if misses else 0.5)


def true_p_beats(kind: str, shift: float, misses: bool, draws: int = 2_000_000) -> float:
    """P(A < B) + P(A = B)/2 for A = X − shift, B = Y (X, Y iid finite draws; a miss loses to
    any finite value and ties with a miss). Finite part by a 2·10⁶-draw simulation (its error,
    ~3·10⁻⁴, is far below the coverage tolerances) except for the normal, where it is exact."""
    if kind == "normal":
        finite = float(sps.norm.cdf(shift / (SPREAD * math.sqrt(2))))
    else:
        rng = np.random.default_rng(99)
        finite = float(np.mean(draw(rng, kind, draws, False) - shift < draw(rng, kind, draws, False)))
    if not misses:
        return finite
    q = MISS
    return (1 - q) ** 2 * finite + q * (1 - q) + 0.5 * q * q


@dataclass
class Coverage:
    kind: str
    misses: bool
    n: int
    interval: str  # median | shift | ratio | p_beats
    printed: float  # fraction of trials that printed an interval (0 where n is too small)
    coverage: float  # among printed intervals, the fraction covering the truth
    nominal: float  # the smallest exact coverage the intervals claimed (or the level)
    trials: int


def coverage(kind: str, misses: bool, n: int, trials: int, seed: int = 0) -> list[Coverage]:
    """Coverage of each interval kind at n seeds per side. Shift and ratio intervals are exact
    under location and scale models, which misses break; they are simulated without misses."""
    rng = np.random.default_rng([seed, n, KINDS.index(kind), misses])
    truth = {"median": true_median(kind, misses), "shift": -SPREAD, "ratio": 1 / 1.2,
             "p_beats": true_p_beats(kind, SPREAD, misses)}
    hits = {k: [] for k in truth}
    claimed = {k: [] for k in truth}
    for _ in range(trials):
        x, y = draw(rng, kind, n, misses), draw(rng, kind, n, misses)
        ests = {"median": stats.median_ci(x), "p_beats": stats.p_beats_ci(x - SPREAD, y)}
        if not misses:
            positive = np.exp(x - CENTRE)  # positive quantities (steps, seconds): a scale model
            ests["shift"] = stats.shift_ci(x - SPREAD, y)
            ests["ratio"] = stats.ratio_ci(positive / 1.2, np.exp(y - CENTRE))
        for key, e in ests.items():
            if e.has_interval:
                hits[key].append(e.lo <= truth[key] <= e.hi)
                claimed[key].append(e.coverage if not math.isnan(e.coverage) else stats.LEVEL)
            else:
                assert e.needs > n, (key, n, e)  # no interval only where n is really too small
    return [Coverage(kind, misses, n, key, len(hits[key]) / trials, float(np.mean(hits[key])) if hits[key] else math.nan,
                     float(min(claimed[key])) if claimed[key] else math.nan, trials)
            for key in truth if (key in ("median", "p_beats") or not misses)]


def _tables(kind: str, misses: bool, n: int, trials: int, shift: float, optimizers: int, seed: int):
    """`trials` simulated tables of `optimizers` + the baseline, judged by `leaderboard.judge`
    (the leaderboard's own function); opt0's seeds are lowered by `shift`."""
    rng = np.random.default_rng([seed, n, KINDS.index(kind), misses, int(shift * 1000)])
    names = ["baseline", *(f"opt{i}" for i in range(optimizers))]
    for _ in range(trials):
        losses = {name: draw(rng, kind, n, misses) for name in names}
        losses["opt0"] = losses["opt0"] - shift
        yield judge(losses)[2]


def false_positive_rate(kind: str, misses: bool, n: int, trials: int, optimizers: int = 6, seed: int = 0) -> float:
    """All optimizers from one distribution: the fraction of tables with any better/worse verdict."""
    return float(np.mean([any(c.verdict in ("better", "worse") for c in family.values())
                          for family in _tables(kind, misses, n, trials, 0.0, optimizers, seed)]))


def power(kind: str, misses: bool, n: int, trials: int, shift: float = SPREAD, optimizers: int = 6,
          seed: int = 0) -> float:
    """The fraction of tables that declare opt0 (seeds lower by `shift`: 20% = one spread) better
    than the baseline."""
    found = [(c := family.get(("baseline", "opt0"))) is not None and c.verdict == "worse"  # baseline worse
             for family in _tables(kind, misses, n, trials, shift, optimizers, seed)]
    return float(np.mean(found))


#: the speed-up simulation: the baseline's true curve L(D) = 2·D^−0.5 + 1 at four budgets, and the
#: optimizer's seed spread (about a tenth of the loss gained by doubling the data there)
SPEEDUP_BUDGETS = (320.0, 640.0, 1280.0, 2560.0)
SPEEDUP_SPREAD = 0.01


def speedup_coverage(kind: str, n: int, base_ratio: float, trials: int, seed: int = 0) -> float:
    """How often the printed AdamW-equivalent speed-up interval covers the true speed-up 2: the
    optimizer's median loss at D = 640 is the curve's at 2D, its n seeds spread by SPEEDUP_SPREAD
    with `kind`'s shape; the curve is refitted each trial to the medians of 6 baseline seeds per
    budget whose spread is `base_ratio` times the optimizer's (0: the curve is known exactly)."""
    from bench.results.speedup import PowerLaw, fit_power_law, speedup_ci

    rng = np.random.default_rng([seed, n, KINDS.index(kind), int(base_ratio * 100)])
    truth, budgets = PowerLaw(2.0, 0.5, 1.0), np.array(SPEEDUP_BUDGETS)
    covered = 0
    for _ in range(trials):
        law = truth
        if base_ratio:
            base = truth.loss(budgets)[:, None] + base_ratio * SPEEDUP_SPREAD * rng.standard_normal((len(budgets), 6))
            law = fit_power_law(budgets, np.median(base, axis=1))
        noise = (draw(rng, kind, n, False) - true_median(kind, False)) / SPREAD  # median 0
        e = speedup_ci(law, truth.loss(2 * 640.0) + SPEEDUP_SPREAD * noise, 640.0)
        covered += bool(e.lo <= 2.0 <= e.hi)
    return covered / trials


def monte_carlo_error(p: float, trials: int) -> float:
    return math.sqrt(max(p * (1 - p), 1e-12) / trials)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 10, 20])
    parser.add_argument("--speedup", action="store_true", help="the speed-up interval's coverage table instead")
    args = parser.parse_args(argv)
    if args.speedup:
        rows = [[kind, n, f"{ratio:g}", f"{speedup_coverage(kind, n, ratio, args.trials):.3f}"]
                for kind in KINDS for n in args.seeds if n >= 6 for ratio in (0.0, 0.5, 1.0)]
        print(f"{args.trials} trials per cell\n\n" + markdown(["data", "n", "baseline spread / optimizer's",
                                                               "coverage of the speed-up interval"], rows))
        return
    print(f"{args.trials} trials per cell; Monte-Carlo standard error of a 5% rate "
          f"{monte_carlo_error(0.05, args.trials):.4f}, of a 95% coverage the same")
    rows = []
    for kind in KINDS:
        for misses in (False, True):
            for n in args.seeds:
                fpr, found = false_positive_rate(kind, misses, n, args.trials), power(kind, misses, n, args.trials)
                cov = {c.interval: c for c in coverage(kind, misses, n, args.trials)}
                cells = [_cov(cov.get(k)) for k in ("median", "shift", "ratio", "p_beats")]
                rows.append([kind, "10%" if misses else "no", n, f"{fpr:.3f}", f"{found:.3f}", *cells])
    print("\n" + markdown(["data", "misses", "n", "FWER of a 7-optimizer table", "power (20% shift)", "median", "shift",
                           "ratio", "P(beats)"], rows))


def _cov(c: Coverage | None) -> str:
    if c is None:
        return "–"
    if c.printed == 0:
        return "n too small"
    return f"{c.coverage:.3f} (≥{c.nominal:.3f})"


if __name__ == "__main__":
    main()
