"""`bench tune seeds=auto` (bench/sweep/auto_seeds.py): seeds are added only where a comparison is
undecided, the family-wise error over all looks stays at alpha, and the extra seeds buy power.
The procedure is simulated on optimizers that do not differ (the family-wise error) and on one
that does (the power), then run end to end on a tiny sweep."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import mannwhitneyu

from bench.results import stats
from bench.sweep import auto_seeds
from bench.sweep.plan import Budget

OPTIMIZERS = ["baseline", *(f"opt{i}" for i in range(6))]
PAIRS = auto_seeds.pairs_of(OPTIMIZERS)
ALPHA = stats.ALPHA
# the CLI defaults for 7 optimizers: 8 seeds, then 12, 16 and 20 where undecided: L = 4 looks
PLAN = auto_seeds.schedule(len(OPTIMIZERS), Budget().max_seeds, Budget().seed_step)
FIXED = auto_seeds.default_seeds(len(OPTIMIZERS))  # what `bench tune` runs without seeds=


class FastFamily:
    """`stats.compare_family`, with each exact rank test looked up by its sufficient statistic:
    the sizes, the misses on each side (the only ties: the simulated values are continuous) and
    the Mann–Whitney count. The first test with a key is computed by `stats.rank_test` itself, so
    the p-values are the same numbers; `test_fast_family_is_compare_family` checks the whole
    family against the real one."""

    def __init__(self):
        self.memo: dict[tuple, float] = {}

    def tests(self, losses, pairs) -> list[tuple[float, float]]:
        """(p, P(A beats B)) of each pair, the counts of all pairs at once."""
        names = sorted({o for pair in pairs for o in pair})
        x = [np.asarray(losses[o], dtype=float) for o in names]
        if len({len(v) for v in x}) == 1:  # one broadcast for the family (a look's pairs all have n_j seeds)
            m = np.stack(x)
            less = (m[:, None, :, None] < m[None, :, None, :]).sum(axis=(2, 3))
            ties = (m[:, None, :, None] == m[None, :, None, :]).sum(axis=(2, 3))
        else:
            less = np.array([[(a[:, None] < b[None, :]).sum() for b in x] for a in x])
            ties = np.array([[(a[:, None] == b[None, :]).sum() for b in x] for a in x])
        index = {o: i for i, o in enumerate(names)}
        misses = [int(np.isinf(v).sum()) for v in x]
        less, ties = less.tolist(), ties.tolist()
        out = []
        for a, b in pairs:
            i, j = index[a], index[b]
            na, nb = len(x[i]), len(x[j])
            key = (na, nb, misses[i], misses[j], 2 * less[i][j] + ties[i][j])
            if key not in self.memo:
                self.memo[key] = stats.rank_test(x[i], x[j])
            out.append((self.memo[key], (less[i][j] + 0.5 * ties[i][j]) / (na * nb)))
        return out

    def __call__(self, losses, pairs, alpha=ALPHA) -> list[stats.Comparison]:
        tested = self.tests(losses, pairs)
        adjusted = stats.holm([p for p, _ in tested])
        out = []
        for (a, b), (p, beats), q in zip(pairs, tested, adjusted, strict=True):
            if q <= alpha:
                verdict, needs = ("better" if beats > 0.5 else "worse"), 0
            elif len(pairs) * stats.smallest_p(len(losses[a]), len(losses[b])) > alpha:
                verdict, needs = "n too small", stats.min_seeds(len(pairs), alpha)
            else:
                verdict, needs = "not significant", 0
            out.append(stats.Comparison(a, b, p, float(q), beats, verdict, needs))
        return out


def draw(kind: str, misses: float, rng: np.random.Generator, shift: dict[str, float] | None = None) -> dict:
    """Every optimizer's losses for PLAN.cap seeds (in seed order), from one distribution;
    `shift` moves an optimizer's by that many standard deviations (negative: better)."""
    size = (len(OPTIMIZERS), PLAN.cap)
    x = {"normal": lambda: rng.standard_normal(size), "lognormal": lambda: rng.lognormal(0.0, 1.0, size),
         "t3": lambda: rng.standard_t(3, size)}[kind]()
    sd = {"normal": 1.0, "lognormal": float(np.sqrt((np.e - 1) * np.e)), "t3": float(np.sqrt(3.0))}[kind]
    for name, delta in (shift or {}).items():
        x[OPTIMIZERS.index(name)] += delta * sd
    x[rng.random(size) < misses] = np.inf
    return dict(zip(OPTIMIZERS, x, strict=True))


def rejected(comparisons) -> bool:
    return any(c.verdict in ("better", "worse") for c in comparisons)


def final_seeds(losses: dict, outcome: auto_seeds.Outcome) -> dict:
    return {o: losses[o][: outcome.sizes[o]] for o in OPTIMIZERS}


def test_default_seeds_give_verdicts_and_median_intervals():
    for k, expected in ((1, 6), (2, 6), (4, 6), (7, 6), (8, 7), (13, 7), (14, 8)):
        n, m = auto_seeds.default_seeds(k), k * (k - 1) // 2
        assert n == expected
        assert stats.median_ci(np.arange(n)).has_interval
        if m:  # perfectly separated seeds: scipy's exact test, Holm's first step, can reject at n
            assert m * mannwhitneyu(np.arange(n), np.arange(n) + n, method="exact").pvalue <= ALPHA
            if n > stats.seeds_for_median():  # and not with one seed fewer: n is the fewest for it
                assert m * mannwhitneyu(np.arange(n - 1), np.arange(n - 1) + n, method="exact").pvalue > ALPHA


def test_schedule_plans_looks_that_can_all_reject():
    assert (PLAN.initial, PLAN.cap, PLAN.step, PLAN.looks) == (8, 20, 4, 4)
    assert [PLAN.size(j) for j in range(PLAN.looks)] == [8, 12, 16, 20]
    for k in (2, 4, 7, 12):
        plan = auto_seeds.schedule(k, 20, 4)
        m = k * (k - 1) // 2
        assert plan.initial >= auto_seeds.default_seeds(k)
        assert m * stats.smallest_p(plan.initial, plan.initial) <= ALPHA / plan.looks  # the first look can decide
    demo = auto_seeds.schedule(4, 20, 4)  # 6 seeds could never reject at alpha/5: the first look starts at 7
    assert (demo.initial, demo.looks) == (7, 5) and 6 * stats.smallest_p(6, 6) > ALPHA / 5


def test_fast_family_is_compare_family():
    rng, fast = np.random.default_rng(7), FastFamily()
    for kind, misses in (("normal", 0.0), ("t3", 0.3), ("lognormal", 0.1)):
        for n in (4, 8, 13):
            losses = {o: v[:n] for o, v in draw(kind, misses, rng, {"opt0": -1.5}).items()}
            for a, b in zip(fast(losses, PAIRS, 0.01), stats.compare_family(losses, PAIRS, 0.01), strict=True):
                assert (a.a, a.b, a.verdict, a.needs) == (b.a, b.b, b.verdict, b.needs)
                assert a.p == pytest.approx(b.p, abs=1e-12) and a.p_adjusted == pytest.approx(b.p_adjusted, abs=1e-12)
                assert a.p_beats == pytest.approx(b.p_beats, abs=1e-12)
        losses = draw(kind, misses, rng, {"opt0": -1.0})  # and the whole procedure, look by look
        slow, quick = auto_seeds.run_looks(losses, PLAN), auto_seeds.run_looks(losses, PLAN, family=fast)
        assert (slow.sizes, slow.looks_done) == (quick.sizes, quick.looks_done)
        assert {p: (c.verdict, j) for p, (c, j) in slow.verdicts.items()} == \
            {p: (c.verdict, j) for p, (c, j) in quick.verdicts.items()}


def test_seeds_go_only_to_undecided_pairs_and_stop_at_the_cap():
    rng = np.random.default_rng(3)
    losses = draw("normal", 0.0, rng, {"opt0": -6.0})  # opt0 beats everyone at once; the rest are alike
    out = auto_seeds.run_looks(losses, PLAN)
    assert out.finished and out.sizes["opt0"] == PLAN.initial  # decided at the first look: no more seeds
    assert all(c.verdict in ("better", "worse") and j == 0 for pair, (c, j) in out.verdicts.items() if "opt0" in pair)
    assert max(out.sizes.values()) == PLAN.cap  # the alike ones grow until the cap, never past it
    for o in OPTIMIZERS:  # an optimizer stops growing at the look where its last comparison was decided
        mine = [(c, j) for (a, b), (c, j) in out.verdicts.items() if o in (a, b)]
        last = max(PLAN.cap if c.verdict in auto_seeds.UNDECIDED else PLAN.size(j) for c, j in mine)
        assert out.sizes[o] == last
    partial = auto_seeds.run_looks({o: v[: PLAN.initial + 2] for o, v in losses.items()}, PLAN)
    assert not partial.finished and partial.looks_done == 1  # the second look waits for its seeds
    assert partial.sizes == {o: PLAN.size(1) if o != "opt0" else PLAN.initial for o in OPTIMIZERS}


REPS = 300  # per kind of data: 6 kinds, 1,800 simulated sweeps of 7 optimizers


def test_family_wise_error_over_all_looks_stays_at_alpha():
    """All 7 optimizers from one distribution: any verdict is a false positive. The rate of sweeps
    with any, over every look, must be ≤ alpha + 3 Monte-Carlo standard errors, the standard error
    taken at the nominal rate, sqrt(alpha(1−alpha)/reps): ≤ 0.0877 for each kind (300 sweeps),
    ≤ 0.0654 pooled (1,800). The same holds for the final seeds re-judged as one Holm family at
    alpha/L, as the leaderboard does with the `looks` each run records."""
    rng, fast = np.random.default_rng(20240611), FastFamily()
    pooled = []
    for kind in ("normal", "lognormal", "t3"):
        for misses in (0.0, 0.1):
            procedure, rejudged, seeds = [], [], []
            for _ in range(REPS):
                losses = draw(kind, misses, rng)
                out = auto_seeds.run_looks(losses, PLAN, family=fast)
                procedure.append(rejected(c for c, _ in out.verdicts.values()))
                rejudged.append(rejected(fast(final_seeds(losses, out), PAIRS, ALPHA / PLAN.looks)))
                seeds.append(np.mean(list(out.sizes.values())))
            bound = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / REPS)
            print(f"{kind:9s} misses {misses:.0%}: FWER {np.mean(procedure):.3f} (re-judged {np.mean(rejudged):.3f}), "
                  f"mean seeds {np.mean(seeds):.1f}, bound {bound:.4f}")
            assert np.mean(procedure) <= bound and np.mean(rejudged) <= bound, kind
            pooled += [p or r for p, r in zip(procedure, rejudged, strict=True)]
    bound = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / len(pooled))
    print(f"pooled: FWER (procedure or re-judged) {np.mean(pooled):.4f}, bound {bound:.4f}")
    assert np.mean(pooled) <= bound


def test_auto_seeds_decide_a_real_difference_more_often_than_the_fixed_seeds():
    """opt0 better than the rest by 1 SD: how often it is declared better than the baseline by
    seeds=auto, by the fixed default (`FIXED` seeds, one look at alpha) and by seeds=auto's initial
    seeds alone (one look at alpha)."""
    rng, fast, reps = np.random.default_rng(5), FastFamily(), 250
    auto, fixed, initial, wrong, others, seeds = [], [], [], 0, [], []
    for _ in range(reps):
        losses = draw("normal", 0.0, rng, {"opt0": -1.0})
        out = auto_seeds.run_looks(losses, PLAN, family=fast)
        verdict = out.verdicts[("baseline", "opt0")][0].verdict
        auto.append(verdict == "worse")  # the verdict is for the first of the pair: the baseline
        wrong += verdict == "better"
        others.append(rejected(c for (a, b), (c, _) in out.verdicts.items() if "opt0" not in (a, b)))
        seeds.append(np.mean(list(out.sizes.values())))
        for n, into in ((FIXED, fixed), (PLAN.initial, initial)):
            judged = fast({o: v[:n] for o, v in losses.items()}, PAIRS, ALPHA)
            into.append(judged[PAIRS.index(("baseline", "opt0"))].verdict == "worse")
    gain = np.array(auto, float) - np.array(fixed, float)
    se = gain.std(ddof=1) / np.sqrt(reps)
    print(f"power at 1 SD: seeds=auto {np.mean(auto):.3f} (mean {np.mean(seeds):.1f} seeds), fixed {FIXED} seeds "
          f"{np.mean(fixed):.3f}, initial {PLAN.initial} seeds alone {np.mean(initial):.3f}; gain {gain.mean():.3f} ± {se:.3f}; "
          f"false positives among the alike: {np.mean(others):.3f}")
    assert wrong == 0
    assert gain.mean() > 3 * se and np.mean(auto) > np.mean(initial)
    assert np.mean(others) <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / reps)


# --- end to end --------------------------------------------------------------------------------

TINY = ("optimizer=adam,adamw,nadamw", "task=logreg", "steps=20", "log_every=5", "eval_every=10", "trials=2",
        "seeds=auto", "max_seeds=12", "seed_step=3")


def seed_runs(root: Path) -> dict[str, list[dict]]:
    runs = [json.loads(p.read_text()) for p in root.glob("*/summary.json")]
    out: dict[str, list[dict]] = {}
    for s in sorted((s for s in runs if s["phase"] == "seeds"), key=lambda s: s["seed"]):
        out.setdefault(s["optimizer"], []).append(s)
    return out


def test_tune_seeds_auto_adds_seeds_where_undecided_and_resumes(bench_cli, runs_root):
    first = bench_cli("tune", *TINY, f"runs_root={runs_root}")
    assert first.code == 0, first.output
    (manifest_path,) = runs_root.glob(".sweeps/*/manifest.json")
    manifest = json.loads(manifest_path.read_text())
    budget = manifest["budget"]
    assert (budget["seeds"], budget["initial_seeds"], budget["max_seeds"], budget["looks"]) == ("auto", 6, 12, 3)
    plan = auto_seeds.Schedule(6, 12, 3)
    (family,) = manifest["families"]
    assert family["finished"] and len(family["comparisons"]) == 3
    runs = seed_runs(runs_root)
    counts = {o: len(r) for o, r in runs.items()}
    for o, mine in runs.items():  # fresh seeds in order, after the search's seed 0
        assert [s["seed"] for s in mine] == list(range(1, counts[o] + 1))
    for o in counts:  # seeds were added until the optimizer's last comparison was decided, or to the cap
        last = [plan.cap if c["verdict"] in auto_seeds.UNDECIDED else plan.size(c["look"] - 1)
                for c in family["comparisons"] if o in (c["a"], c["b"])]
        assert counts[o] == max(last)
    assert min(counts.values()) < plan.cap == max(counts.values())  # some stopped early, none passed the cap
    for run_dir in runs_root.iterdir():  # L is recorded on the seeds phase's runs only
        if (run_dir / "config.yaml").exists():
            tune = yaml.safe_load((run_dir / "config.yaml").read_text())["tune"]
            assert tune["looks"] == (3 if tune["phase"] == "seeds" else None)
    assert "3 looks planned" in first.output

    total = 3 * 2 + sum(counts.values())
    again = bench_cli("tune", *TINY, f"runs_root={runs_root}")
    assert again.code == 0 and f"{total} cells: {total} done, 0 resumed, 0 to run" in again.output
    assert seed_runs(runs_root) == runs

    # lose the runs after the first look: the relaunch replays look 1 from disk and runs the rest again
    later = [s for mine in runs.values() for s in mine if s["trial"] >= plan.initial]
    for s in later:
        shutil.rmtree(runs_root / s["run_id"])
    resumed = bench_cli("tune", *TINY, f"runs_root={runs_root}")
    assert resumed.code == 0, resumed.output
    grown = sum(1 for o in counts if counts[o] > plan.initial)
    done = 3 * 2 + 3 * plan.initial
    assert f"{done + grown * plan.step} cells: {done} done, 0 resumed, {grown * plan.step} to run" in resumed.output
    after = seed_runs(runs_root)
    assert {o: [s["final"] for s in r] for o, r in after.items()} == {o: [s["final"] for s in r] for o, r in runs.items()}


def test_seeds_auto_options_are_checked(bench_cli, runs_root):
    for bad, says in (("seeds=some", "seeds must be an integer >= 0 or auto"),
                      ("max_seeds=9", "max_seeds applies to seeds=auto only"),
                      ("seed_step=0", "seed_step must be an integer >= 1")):
        res = bench_cli("tune", "optimizer=sgd,adam", "task=logreg", bad, f"runs_root={runs_root}")
        assert res.code == 2 and says in res.output, res.output
    res = bench_cli("tune", "optimizer=sgd,adam", "task=logreg", "seeds=auto", "max_seeds=5", f"runs_root={runs_root}")
    assert res.code == 2 and "raise max_seeds to at least 6" in res.output, res.output
    res = bench_cli("tune", "optimizer=sgd", "task=logreg", "schedule=constant,cosine", "seeds=auto",
                    f"runs_root={runs_root}")
    assert res.code == 2 and "one point per optimizer" in res.output, res.output
    assert not runs_root.exists() or not any(runs_root.iterdir())
