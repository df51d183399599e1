"""Does the search method change the verdict? Every (task, search method) is one `bench tune`
sweep over the same optimizers with the same budget: `trials` search trials per optimizer
(`search=sobol`, the default, or `search=tpe`, Optuna's TPE), then the winner re-run with `seeds`
fresh seeds. Those fresh seeds are what every comparison uses:

- under each method, every pair of optimizers on a task is an exact rank test, the task's pairs one
  Holm family (as the leaderboard judges them); the claim holds for a pair where both methods give
  the same verdict (better, worse, or not significant), and fails where they differ;
- per (task, optimizer), each other method's tuned result against the reference method's
  (`methods[0]`), all of them one Holm family: whether the search method changed what the
  optimizer reaches.

A control separates the method from luck: the reference method again with another seed for its
search (`control_seed`; for Sobol another scramble), judged the same way. Where it moves as many
verdicts as the other method does, the tuning budget is too small for any one search to settle
them, whichever method runs it. The claim's verdict rests on the methods; the control is reported
beside them.

The sweeps' manifests (runs/.sweeps/<id>/manifest.json) hold every trial's score and the seeds'
final values; each is found by the `bench tune` command it records.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass

from bench.experiments.common import VERDICTS, Experiment, Finding
from bench.experiments.verdicts import ci, family_note, judged, seeds_hint
from bench.results import stats
from bench.results.markup import markdown


@dataclass
class Tuned:
    """One optimizer on one task under one search method."""

    metric: str
    mode: str
    losses: list[float]  # the fresh seeds' final metric, lower is better, +inf for a miss
    trials: list[float]  # the search trials' final metric in trial order, lower is better, +inf for a miss


def variants(spec) -> list[tuple[str, str, int]]:
    """(label, search method, search seed) of every sweep per task: the methods, then the control."""
    out = [(str(m), str(m), int(spec.search_seed)) for m in spec.methods]
    if spec.get("control_seed") is not None:
        out.append((f"{spec.methods[0]} (search_seed={spec.control_seed})", str(spec.methods[0]), int(spec.control_seed)))
    return out


def _args(spec, task: str, method: str, search_seed: int) -> list[str]:
    return [*spec.tasks[task], f"optimizer={','.join(spec.optimizers)}", f"trials={spec.trials}",
            f"seeds={spec.seeds}", f"search_seed={search_seed}", f"search={method}"]


def sweep(exp: Experiment) -> None:
    for task in exp.spec.run:
        for _, method, search_seed in variants(exp.spec):
            exp.tune(_args(exp.spec, task, method, search_seed))


def manifest(exp: Experiment, args: list[str]) -> dict | None:
    """The manifest of the sweep `exp.tune(args)` ran, found by the command it records (None if
    it never ran); where an earlier spec left one with the same command, the latest."""
    command = "bench tune " + " ".join([*exp.base_overrides(), *args])
    found = []
    for path in (exp.runs_root / ".sweeps").glob("tune-*/manifest.json"):
        data = json.loads(path.read_text())
        if data.get("command") == command:
            found.append(data)
    return max(found, key=lambda d: d.get("updated_at", 0), default=None)


def _loss(value: float | None, mode: str) -> float:
    return math.inf if value is None else (-value if mode == "max" else value)


def tuned_from(data: dict, seeds: int) -> dict[str, Tuned]:
    """optimizer -> its tuned result, from a sweep's manifest. An optimizer whose every trial
    missed (diverged, failed) has no winner to re-run: the budget found nothing, which counts as
    `seeds` misses (+inf), as a miss is counted everywhere else, never dropped."""
    out = {}
    for point in data["points"]:
        mode = point.get("mode") or "min"
        search = sorted((c for c in point["cells"] if c["phase"] == "search"), key=lambda c: (c["study"], c["trial"]))
        trials = [_loss(c["value"], mode) for c in search]
        losses = [_loss(v, mode) for v in point["seeds"]["values"]]
        if point["best"] is None and search and all(c["status"] in ("diverged", "failed") for c in search):
            losses = [math.inf] * seeds
        out[point["optimizer"]] = Tuned(point.get("metric") or "", mode, losses, trials)
    return out


@dataclass
class Judgement:
    #: (task, method) -> the Holm family of that sweep's pairwise comparisons
    pairs: dict[tuple[str, str], list[stats.Comparison]]
    #: (task, optimizer, method) -> that method's tuned result against the reference method's (one family)
    effect: dict[tuple[str, str, str], stats.Comparison]
    verdict: str

    def agreement(self, reference: str, other: str) -> list[tuple[str, stats.Comparison, stats.Comparison]]:
        """(task, reference's comparison, other's comparison) for every pair both judged."""
        out = []
        for (task, method), comparisons in self.pairs.items():
            if method != reference or (task, other) not in self.pairs:
                continue
            theirs = {(c.a, c.b): c for c in self.pairs[(task, other)]}
            out += [(task, c, theirs[(c.a, c.b)]) for c in comparisons if (c.a, c.b) in theirs]
        return out


def same(a: stats.Comparison, b: stats.Comparison) -> bool:
    """Both decided alike: the same verdict, and one n can reach (n too small decides nothing)."""
    return a.verdict == b.verdict and a.verdict != "n too small"


def _reversed(a: stats.Comparison, b: stats.Comparison) -> bool:
    """Significant both times, in opposite directions."""
    return {a.verdict, b.verdict} == {"better", "worse"}


def judge(results: dict[tuple[str, str], dict[str, Tuned]], methods: list[str],
          decisive: list[str] | None = None) -> Judgement:
    """`results`: (task, label) -> optimizer -> Tuned, `methods` the labels (the reference first).
    Reproduced where every pair's verdict is the same under the reference and every `decisive`
    label (default: all the others); not reproduced where one reverses (better under one, worse
    under another) or none agrees; partly otherwise."""
    pairs = {}
    for key, tuned in results.items():
        names = list(tuned)
        keys = list(itertools.combinations(names, 2))
        pairs[key] = stats.compare_family({n: t.losses for n, t in tuned.items()}, keys) if keys else []
    reference = methods[0]
    labels, keys = {}, []
    for (task, method), tuned in results.items():
        if method == reference or (task, reference) not in results:
            continue
        for name, t in tuned.items():
            ref = results[(task, reference)].get(name)
            if ref is not None and t.losses and ref.losses:
                labels[f"{name}@{task}/{method}"] = t.losses
                labels[f"{name}@{task}/{reference}"] = ref.losses
                keys.append((f"{name}@{task}/{method}", f"{name}@{task}/{reference}", (task, name, method)))
    found = stats.compare_family(labels, [(a, b) for a, b, _ in keys]) if keys else []
    effect = {key: c for (_, _, key), c in zip(keys, found, strict=True)}
    judgement = Judgement(pairs, effect, VERDICTS[2])
    rows = [row for other in (methods[1:] if decisive is None else decisive)
            for row in judgement.agreement(reference, other)]
    agreeing = sum(same(a, b) for _, a, b in rows)
    reversed_ = any(_reversed(a, b) for _, a, b in rows)
    if rows and agreeing == len(rows):
        judgement.verdict = VERDICTS[0]
    elif agreeing and not reversed_:
        judgement.verdict = VERDICTS[1]
    return judgement


def ranks(comparisons: list[stats.Comparison]) -> dict[str, int]:
    """1 + how many optimizers significantly beat each one (the leaderboard's rank)."""
    out: dict[str, int] = {}
    for c in comparisons:
        out.setdefault(c.a, 1)
        out.setdefault(c.b, 1)
        if c.verdict == "worse":
            out[c.a] += 1
        elif c.verdict == "better":
            out[c.b] += 1
    return out


def _verdict(c: stats.Comparison) -> str:
    """A pair's verdict, read as "a is ... than b"."""
    return judged(c, {"better": f"{c.a} **better**", "worse": f"{c.a} **worse**"})


def analyse(exp: Experiment) -> Finding:
    spec = exp.spec
    tasks, runs = list(spec.run), variants(spec)
    labels = [label for label, _, _ in runs]
    results = {}
    for task in tasks:
        for label, method, search_seed in runs:
            data = manifest(exp, _args(spec, task, method, search_seed))
            if data is not None:
                results[(task, label)] = tuned_from(data, spec.seeds)
    judgement = judge(results, labels, decisive=list(spec.methods[1:]))
    reference = labels[0]
    body = [_tuned_table(spec, results, judgement, labels), "",
            f"Each cell: the winner's {spec.seeds} fresh seeds, median [95% order-statistic interval] of the final "
            f"metric (lower is better), and the optimizer's rank in its (task, search) sweep (1 + how many optimizers "
            f"beat it significantly). Every search had {spec.trials} trials per optimizer (`bench tune trials="
            f"{spec.trials} search=...`); TPE's first {_startup(spec.trials)} are Optuna's random startup draws."
            + (f" `{labels[-1]}` is the control: {reference} again, searching with another seed." if
               len(labels) > len(spec.methods) else ""), ""]
    effects = list(judgement.effect.values())
    body.append(family_note(exp, effects, f"each optimizer searched otherwise vs by {reference}", spec.seeds))
    body += ["", _pairs_table(judgement, labels), ""]
    body.append(_pairs_note(exp, judgement))
    if len(labels) > len(spec.methods):
        body += ["", f"How to read it: a verdict that moves under `{labels[-1]}` as well as under another method "
                     f"is not settled by any single search of {spec.trials} trials, whichever method runs it; only "
                     f"changes beyond the control's are the method's own."]
    parts = []
    for other in labels[1:]:
        rows = judgement.agreement(reference, other)
        agreeing, flips = sum(same(a, b) for _, a, b in rows), sum(_reversed(a, b) for _, a, b in rows)
        moved = [c for (_, _, m), c in judgement.effect.items() if m == other]
        ranks_kept = sum(ranks(judgement.pairs[(t, reference)]) == ranks(judgement.pairs[(t, other)])
                         for t in tasks if (t, reference) in judgement.pairs and (t, other) in judgement.pairs)
        parts.append(f"{other} gave the same verdict as {reference} in {agreeing} of {len(rows)} pairs ({flips} "
                     f"reversed), the same ranks on {ranks_kept} of {len(tasks)} tasks, and a significantly different "
                     f"tuned result for {sum(c.verdict in ('better', 'worse') for c in moved)} of {len(moved)} "
                     f"optimizers")
    summary = (f"{'; '.join(parts)} (n={spec.seeds} fresh seeds per side, {spec.trials} trials per optimizer and "
               f"search, {len(tasks)} task(s); exact rank tests, Holm families).")
    figures = [exp.save(plot(exp, results, tasks, labels), "budget-curves")]
    return Finding(judgement.verdict, summary, "\n".join(body), figures)


def _pairs_note(exp: Experiment, judgement: Judgement) -> str:
    """The pairs table holds one Holm family per (task, method), as the leaderboard judges a table."""
    every = [c for cs in judgement.pairs.values() for c in cs]
    m = max((len(cs) for cs in judgement.pairs.values()), default=0)
    if not m:
        return ""
    pairs = f"{m} pairs" if m > 1 else "one pair"
    text = (f"Under each method, the {pairs} of a task {'are' if m > 1 else 'is'} one Holm family (the leaderboard's rule): exact two-sided "
            f"rank tests over the fresh seeds, a miss counting as +∞; a family of {m} can decide from "
            f"{stats.min_seeds(m)} seeds per side. \"same\" means both methods reached the same verdict, "
            f"\"not significant\" included; \"changed\" that one found a difference the other did not.")
    short = [c for c in every if c.verdict == "n too small"]
    if short:
        text += (f" **n too small** for {len(short)} of {len(every)} (needs ≥ {max(c.needs for c in short)} seeds "
                 f"per side): {seeds_hint(exp)}.")
    return text


def _startup(trials: int) -> int:
    from bench.sweep.search import tpe_startup

    return tpe_startup(trials)


def _tuned_table(spec, results, judgement: Judgement, methods: list[str]) -> str:
    reference = methods[0]
    header = ["task", "optimizer", *(f"{m}: fresh seeds (rank)" for m in methods),
              *(f"{m} vs {reference}" for m in methods[1:])]
    rows = []
    for task in spec.run:
        rank = {m: ranks(judgement.pairs.get((task, m), [])) for m in methods}
        for name in spec.optimizers:
            cells = []
            for m in methods:
                t = results.get((task, m), {}).get(name)
                sign = -1.0 if t is not None and t.mode == "max" else 1.0
                cells.append("–" if t is None else f"{ci(t.losses, 3, sign)} ({rank[m].get(name, '–')})")
            versus = [judged(judgement.effect.get((task, name, m))) for m in methods[1:]]
            rows.append([task, name, *cells, *versus])
    return markdown(header, rows)


def _pairs_table(judgement: Judgement, methods: list[str]) -> str:
    reference = methods[0]
    rows = []
    for other in methods[1:]:
        for task, a, b in judgement.agreement(reference, other):
            change = ("same" if same(a, b) else "**reversed**" if _reversed(a, b)
                      else "undecided" if "n too small" in (a.verdict, b.verdict) else "**changed**")
            rows.append([task, f"{a.a} vs {a.b}", _verdict(a), f"{other}: {_verdict(b)}", change])
    return markdown(["task", "pair", reference, "other search", "verdict"], rows)


def best_so_far(losses: list[float]) -> list[float]:
    out, best = [], math.inf
    for value in losses:
        best = min(best, value)
        out.append(best)
    return out


def plot(exp: Experiment, results, tasks: list[str], methods: list[str]):
    """Tuning-budget curves: the best final metric found after k trials, one row per task, one
    column per search method, the same y range across a row."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from bench.results.plots import colours

    colour = colours(exp.spec.optimizers)
    fig = Figure(figsize=(5.0 * len(methods), 3.4 * len(tasks)), layout="constrained")
    axes = fig.subplots(len(tasks), len(methods), squeeze=False, sharey="row")
    for row, task in zip(axes, tasks, strict=True):
        positive = True
        for ax, method in zip(row, methods, strict=True):
            tuned = results.get((task, method), {})
            for name, t in tuned.items():
                sign = -1.0 if t.mode == "max" else 1.0
                curve = [sign * v if math.isfinite(v) else math.nan for v in best_so_far(t.trials)]
                positive &= all(v > 0 for v in curve if not math.isnan(v))
                ax.plot(range(1, len(curve) + 1), curve, marker=".", color=colour[name], label=name)
            metric = next((t.metric for t in tuned.values()), "")
            ax.set(title=f"{task}: {method}", xlabel="trials so far", ylabel=f"best {metric}")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        for ax in row:
            if positive:
                ax.set_yscale("log")
        row[0].legend(fontsize=8)
    return fig
