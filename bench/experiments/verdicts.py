"""The statistics of a preset's section as text: a median with its order-statistic interval
(`ci`), an effect size with its interval (`interval`), a comparison's verdict with its Holm p
(`judged`), the note under a table of comparisons (`family_note`), where to add seeds
(`seeds_hint`), and the verdict of an "at least as good" claim (`supported`). They are separate
from running cells because every analysis words its numbers the same way, and the rules those
words follow (exact rank tests, Holm per table, "n too small" where n cannot reach the level)
live in one place beside the text that states them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from omegaconf import OmegaConf

from bench.config import CONF_DIR
from bench.experiments.common import VERDICTS

# numpy and scipy (through stats) are imported by the functions that use them, as in common.py.
if TYPE_CHECKING:
    from bench.experiments.common import Experiment
    from bench.results import stats


def ci(values: Sequence[float], digits: int = 3, sign: float = 1.0) -> str:
    """`median [lo, hi] (n=k, 96.8% coverage)`: the median over seeds with its distribution-free
    order-statistic interval and that interval's exact coverage; below the n the level needs, the
    median alone and how many values would do. `values` are lower-is-better (sign · metric), a
    miss is +inf and sorts last; nan means "not measured" and is left out. `sign` = −1 prints a
    higher-is-better metric in its own units again."""
    from bench.results import stats

    kept = [float(v) for v in values if not math.isnan(float(v))]
    e = stats.median_ci(kept)
    if e.n == 0:
        return "– (n=0)"
    if not e.has_interval:
        return (f"{_num(sign * e.value, digits)} (n={e.n}; n too small for a {stats.LEVEL:.0%} interval: "
                f"needs ≥ {e.needs})")
    lo, hi = sorted((sign * e.lo, sign * e.hi))
    return (f"{_num(sign * e.value, digits)} [{_num(lo, digits)}, {_num(hi, digits)}] "
            f"(n={e.n}, {stats.percent_down(e.coverage)} coverage)")


def interval(e: stats.Estimate, digits: int = 3, what: str = "interval") -> str:
    """An effect size (`stats.shift_ci`, `ratio_ci`, `p_beats_ci`) as `value [lo, hi]`, or the
    value with the seeds per side its interval needs."""
    if e.n == 0 or math.isnan(e.value):
        return "–"
    if not e.has_interval:
        return f"{_num(e.value, digits)} (n too small for an {what}: needs ≥ {e.needs} per side)"
    return f"{_num(e.value, digits)} [{_num(e.lo, digits)}, {_num(e.hi, digits)}]"


def seeds_hint(exp: Experiment, key: str = "seeds") -> str:
    """Where to add seeds: the yaml key that sets them at this scale."""
    spec = OmegaConf.load(CONF_DIR / "experiment" / f"{exp.name}.yaml")
    scale_node = (spec.get("scales") or {}).get(exp.scale) or {}
    head, _, leaf = key.rpartition(".")
    node = OmegaConf.select(scale_node, head) if head else scale_node
    where = f" under `scales: {exp.scale}:`" if node is not None and leaf in node else ""
    command = f"bench experiment {exp.name}" + (f" --scale {exp.scale}" if exp.scale != "cpu" else "")
    return f"raise `{key}:`{where} in bench/conf/experiment/{exp.name}.yaml and re-run `{command}`"


def judged(c: stats.Comparison | None, words: dict[str, str] | None = None) -> str:
    """A comparison's verdict with its Holm-adjusted p beside it."""
    if c is None:
        return "missing"
    if c.verdict == "n too small":
        return f"n too small (needs ≥ {c.needs} seeds per side; Holm p {_p(c.p_adjusted)})"
    word = (words or {}).get(c.verdict, f"**{c.verdict}**" if c.verdict in ("better", "worse") else c.verdict)
    return f"{word} (Holm p {_p(c.p_adjusted)})"


def _p(p: float) -> str:
    """`= 0.0022` or `< 0.001`: the relation goes with the number."""
    return "= –" if math.isnan(p) else f"= {p:.2g}" if p >= 0.001 else "< 0.001"


def family_note(exp: Experiment, comparisons: Sequence[stats.Comparison], what: str, n: int,
                key: str = "seeds") -> str:
    """The sentence under a table of comparisons (`n` seeds per side): one Holm family, what n can
    and cannot decide, and the command that adds seeds where it cannot."""
    from bench.results import power, stats

    m = len(comparisons)
    if not m:
        return ""
    text = (f"The {m} comparisons of this table ({what}) are one Holm family: each is an exact" if m > 1 else
            f"The comparison of this table ({what}) is a Holm family of one: an exact")
    text += (" two-sided Wilcoxon–Mann–Whitney permutation test over seeds (a miss is +∞ and ties with other "
            f"misses), its p adjusted by Holm's method, and a verdict is better/worse only where the adjusted p "
            f"≤ {stats.ALPHA:.2g}; \"not significant\" is no evidence either way. A family of {m} can decide "
            f"from {stats.min_seeds(m)} seeds per side")
    shift = power.detectable_shift(n, n) if n else math.inf
    if math.isfinite(shift):
        text += f"; at n={n} the single test detects a shift of {shift:.2g} standard deviations with 80% power"
    text += "."
    short = [c for c in comparisons if c.verdict == "n too small"]
    if short:
        which = f"for {len(short)} of them" if m > 1 else "for it"
        text += f" **n too small** {which} (needs ≥ {max(c.needs for c in short)} seeds per side): " \
                f"{seeds_hint(exp, key)}."
    return text


def supported(verdicts: Sequence[str]) -> str:
    """The verdict of an "at least as good" claim from its comparisons (the claimed side's
    verdicts): a rank test can show a difference, never an equality, so a comparison supports the
    claim only where the claimed side is significantly better. Reproduced: every comparison
    supports it; partly: some do; otherwise not reproduced at this scale."""
    better = sum(v == "better" for v in verdicts)
    if verdicts and better == len(verdicts):
        return VERDICTS[0]
    return VERDICTS[1] if better else VERDICTS[2]


def _num(x: float, digits: int) -> str:
    import numpy as np

    if not np.isfinite(x):
        return "∞" if x > 0 else ("−∞" if x < 0 else "nan")
    return f"{x:.{digits}g}"

