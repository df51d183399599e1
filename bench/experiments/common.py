"""What every experiment preset shares: its spec at a scale, running its cells in this process,
reading them back through the results store, numbers with CIs, and its section of CLAIMS.md.

A preset is `conf/experiment/<name>.yaml` (the claim, its source, the sweep, and per-scale
overrides under `scales:`) plus `bench/experiments/<name>.py` with two functions:
`sweep(exp)` runs the runs (finished ones are skipped, so a re-run only redoes the analysis) and
`analyse(exp) -> Finding` turns the runs into figures, a table and a verdict.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf, open_dict

from bench import BenchError
from bench.config import CONF_DIR

# numpy, pandas, matplotlib and scipy (through stats) are imported by the functions that analyse
# runs: listing the experiments (`bench experiment`) reads only their yaml.
if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from bench.results import stats
    from bench.results.store import Runs

SCALES = ("test", "cpu", "gpu")
VERDICTS = ("reproduced", "partly reproduced", "not reproduced at this scale")


@dataclass
class Cell:
    """One run: Hydra overrides, and optionally a whole task node that replaces `task` (for the
    experiment's own tasks, which have no yaml in conf/task)."""

    overrides: list[str]
    task: dict[str, Any] | None = None
    label: str = ""
    #: a finished run's resolved config to start from instead of composing one (re-running a
    #: tuned trial with other seeds); `overrides` are then plain `key=value` updates of it
    config: DictConfig | None = None


@dataclass
class Finding:
    verdict: str  # one of VERDICTS
    summary: str  # one sentence with the decisive numbers
    body: str  # markdown: the table and how to read it
    figures: list[Path] = field(default_factory=list)


@dataclass
class Experiment:
    name: str
    scale: str
    spec: DictConfig
    runs_root: Path
    docs: Path  # CLAIMS.md goes here, figures into docs/claims/
    read_only: bool = False  # run() only reads finished runs back (the analysis after the sweep)
    #: the figures' folder under `docs`; "" puts them beside CLAIMS.md (in a runs root, where a
    #: folder that holds no runs would be listed as foreign by every command that reads it)
    figures_subdir: str = "claims"

    @property
    def figures_dir(self) -> Path:
        return self.docs / self.figures_subdir if self.figures_subdir else self.docs

    def run(self, cells: Sequence[Cell], label: str | None = None) -> list[dict[str, Any]]:
        """Execute each cell here (no interpreter start-up per run); finished cells are skipped.
        Read-only: return each cell's summary from disk (status "missing" when it never ran)."""
        from bench.config import run_id
        from bench.runner.main import execute
        from bench.runner.rundir import read_summary

        summaries = []
        GlobalHydra.instance().clear()
        width = len(str(len(cells)))
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                for i, cell in enumerate(cells, 1):
                    started = time.perf_counter()
                    if cell.config is not None:
                        cfg = OmegaConf.merge(cell.config, OmegaConf.from_dotlist(cell.overrides))
                        cfg.runs_root, cfg.progress = str(self.runs_root), "off"  # set, not parsed: YAML reads off as false
                    else:
                        cfg = compose("config", overrides=[*self.base_overrides(), *cell.overrides])
                    if cell.task is not None:
                        with open_dict(cfg):
                            cfg.task = OmegaConf.create(cell.task)
                    if self.read_only:
                        run_dir = self.runs_root / run_id(cfg)
                        summaries.append(read_summary(run_dir) or {"status": "missing", "run_dir": str(run_dir)})
                        continue
                    with contextlib.redirect_stdout(io.StringIO()):
                        summary = execute(cfg)
                    summaries.append(summary)
                    print(f"[{i:>{width}}/{len(cells)}] {label or self.name} {cell.label or ' '.join(cell.overrides)}: "
                          f"{summary['status']} ({time.perf_counter() - started:.1f}s)", flush=True)
        finally:
            GlobalHydra.instance().clear()
        return summaries

    def tune(self, args: list[str]) -> None:
        """An equal-budget quasi-random search through `bench tune`, in this process."""
        from bench.sweep.tune import tune

        if self.read_only:
            return
        with contextlib.redirect_stdout(sys.stderr):  # its per-run lines are progress, not results
            tune([*self.base_overrides(), *args])

    def compose(self, overrides: Sequence[str]) -> DictConfig:
        """One run's config as `run` would compose it, for measurements made in this process."""
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
                return compose("config", overrides=[*self.base_overrides(), *overrides])
        finally:
            GlobalHydra.instance().clear()

    def base_overrides(self) -> list[str]:
        return [f"runs_root={self.runs_root}", "progress=off", *self.spec.get("overrides", [])]

    def load(self) -> Runs:
        from bench.results.store import load

        return load(self.runs_root)

    @property
    def key(self) -> str:
        """The name of this experiment's CLAIMS.md section and figures: the CPU preset's results
        and a GPU run's live side by side."""
        return self.name if self.scale in ("cpu", "test") else f"{self.name}-{self.scale}"

    def save(self, fig: Figure, stem: str) -> Path:
        self.figures_dir.mkdir(parents=True, exist_ok=True)
        path = self.figures_dir / f"{self.key}-{stem}.png"
        fig.savefig(path, dpi=110)
        return path


@dataclass
class Tuned:
    """A grid point after `tune_grid`: the best lr, its search score, and the seed runs' summaries."""

    lr: float | None
    score: float | None
    search: list[dict[str, Any]]
    seeds: list[dict[str, Any]]


def tune_grid(exp: Experiment, points: dict[str, Cell], lrs: Sequence[float], search_seed: int,
              seeds: Sequence[int], label: str = "") -> dict[str, Tuned]:
    """Equal-budget lr tuning on a grid: every point runs every lr once (seed `search_seed`), the
    best final metric picks its lr, and that lr is re-run with `seeds`, which the search never
    used (so the winner's luck in the search is not counted again). Diverged or failed runs can
    never win; a point whose every lr failed gets no seed runs."""
    from bench.runner.rundir import read_summary
    from bench.sweep.select import score

    def with_lr(cell: Cell, lr: float, seed: int) -> Cell:
        return Cell([*cell.overrides, f"optimizer.lr={lr}", f"seed={seed}"], cell.task,
                    f"{cell.label} lr={lr:g} seed={seed}")

    def finished(summaries: list[dict]) -> list[dict]:  # a skipped run's summary is on disk
        return [s if s.get("status") != "skipped" else read_summary(Path(s["run_dir"])) or s for s in summaries]

    keys = list(points)
    search = finished(exp.run([with_lr(points[k], lr, search_seed) for k in keys for lr in lrs],
                              label=f"{label} search".strip()))
    out: dict[str, Tuned] = {}
    for i, key in enumerate(keys):
        mine = search[i * len(lrs):(i + 1) * len(lrs)]
        scored = [(score(s), lr) for s, lr in zip(mine, lrs, strict=True) if score(s) is not None]
        if not scored:
            out[key] = Tuned(None, None, mine, [])
            continue
        sign = -1 if mine[0].get("mode") == "max" else 1
        best_score, best_lr = min(scored, key=lambda t: sign * t[0])
        out[key] = Tuned(best_lr, best_score, mine, [])
    again = [(k, with_lr(points[k], out[k].lr, seed)) for k in keys if out[k].lr is not None for seed in seeds]
    results = finished(exp.run([c for _, c in again], label=f"{label} seeds".strip()))
    for (key, _), summary in zip(again, results, strict=True):
        out[key].seeds.append(summary)
    return out


def load_spec(name: str, scale: str) -> DictConfig:
    path = CONF_DIR / "experiment" / f"{name}.yaml"
    if not path.exists():
        raise BenchError(f"unknown experiment {name!r}; choose one of: {', '.join(names())}")
    if scale not in SCALES:
        raise BenchError(f"unknown scale {scale!r}; choose one of: {', '.join(SCALES)}")
    spec = OmegaConf.load(path)
    scales = spec.pop("scales", {}) or {}
    return OmegaConf.merge(spec, scales.get(scale, {}), {"scale": scale})


def names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def figure(ncols: int = 1, width: float = 5.5, height: float = 3.8) -> tuple[Figure, list]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig, axes


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
    from bench.results import stats

    m = len(comparisons)
    if not m:
        return ""
    text = (f"The {m} comparisons of this table ({what}) are one Holm family: each is an exact" if m > 1 else
            f"The comparison of this table ({what}) is a Holm family of one: an exact")
    text += (" two-sided Wilcoxon–Mann–Whitney permutation test over seeds (a miss is +∞ and ties with other "
            f"misses), its p adjusted by Holm's method, and a verdict is better/worse only where the adjusted p "
            f"≤ {stats.ALPHA:.2g}; \"not significant\" is no evidence either way. A family of {m} can decide "
            f"from {stats.min_seeds(m)} seeds per side")
    shift = stats.detectable_shift(n, n) if n else math.inf
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


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def hyperparameter(row: Any, key: str) -> Any:
    """One optimizer hyperparameter of a store row (the store keeps them as JSON text)."""
    import json

    return json.loads(row.hyperparameters).get(key)


def selected(runs: Runs, task: str, lrs: Sequence[float], seeds: Sequence[int]) -> list:
    """Store rows of this spec's task, step sizes and seeds (a runs root may hold runs of an
    earlier spec: those are left out), sorted by (lr, seed)."""
    rows = [r for r in runs.table[runs.table["task"] == task].itertuples()
            if float(hyperparameter(r, "lr")) in [float(x) for x in lrs] and int(r.seed) in list(seeds)]
    return sorted(rows, key=lambda r: (float(hyperparameter(r, "lr")), int(r.seed)))


def curves_by_run(runs: Runs, metric: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """run_id → (steps, values) of one metric, sorted by step."""
    frame = runs.curves()
    frame = frame[frame["metric"] == metric]
    out = {}
    for run_id, part in frame.groupby("run_id"):
        part = part.sort_values("step")
        out[run_id] = (part["step"].to_numpy(dtype=float), part["value"].to_numpy(dtype=float))
    return out


# --- CLAIMS.md -----------------------------------------------------------------------------------
CLAIMS_HEAD = """# What bench found

Each section below is written by one command, `bench experiment <name> --write-docs` (the one
printed under it), which runs the sweep (finished runs are reused), then writes the figures under
[claims/](claims/) and the section itself; without `--write-docs` both go into the runs root.
Numbers are medians over n independent runs (seeds) with distribution-free 95% order-statistic
intervals, printed with their exact coverage; below 6 seeds no such interval exists and the median
stands alone, marked "n too small". A comparison of two groups of seeds is an exact rank test, the
comparisons of one table are one Holm family, and the adjusted p stands beside each verdict; a run
that missed (diverged, failed, never reached the target) counts as +∞, never dropped. A claim
counts as reproduced only where these tests support it. "Not reproduced at this scale" means what
it says: the CPU presets are small, and their `--scale gpu` variants are the ones to trust.
"""

#: written into every section by `section`: a section without it predates these statistics
STATS_MARK = "<!-- statistics: exact rank tests, Holm per table, order-statistic intervals -->"


STALE = "> **Not re-run under the current statistics.**"


def stale_note(key: str) -> str:
    """What a section written under the earlier statistics says about itself until it is re-run."""
    name, _, scale = key.partition("-")
    command = write_docs_command(name, scale or "cpu")
    return (f"{STALE} This section was produced under the earlier rules: 95% percentile-bootstrap intervals "
            f"(at 3 to 5 seeds they lie inside [min, max], which itself covers the median less than 95% of the "
            f"time) and, for comparisons, better/worse where the bootstrap interval of P(a beats b) excluded 1/2 "
            f"(a rule that fires on pure noise 19% of the time at 3 vs 3 seeds). Its measurements stand; its "
            f"intervals and verdict are not calibrated. `{command}` replaces it.")


def write_docs_command(name: str, scale: str) -> str:
    """The command that rewrites a section of the tracked docs/CLAIMS.md: printed beside it, so
    the docs say how to reproduce themselves."""
    return f"bench experiment {name}" + (f" --scale {scale}" if scale != "cpu" else "") + " --write-docs"


def write_section(claims: Path, name: str, markdown: str) -> None:
    """Replace (or add) this experiment's section of CLAIMS.md; the others stay as they are, in
    the order of `names()`, and one that predates the current statistics (no `STATS_MARK`) says
    so under its heading. The head is `CLAIMS_HEAD`, so that it always describes these rules."""
    text = claims.read_text() if claims.exists() else ""
    sections = dict(re.findall(r"<!-- experiment:([\w-]+) -->\n(.*?)<!-- /experiment:\1 -->\n", text, flags=re.S))
    head = CLAIMS_HEAD
    for key, old in sections.items():
        if STATS_MARK not in old:  # (re)write its note, so that it says what the current code says
            title, _, rest = re.sub(rf"\n{re.escape(STALE)}[^\n]*\n", "", old, count=1).partition("\n")
            sections[key] = f"{title}\n\n{stale_note(key)}\n{rest}"
    sections[name] = markdown.rstrip("\n") + "\n"
    order = [k for n in names() for k in sorted(sections) if k == n or k.startswith(n + "-")]
    order += sorted(set(sections) - set(order))
    body = "".join(f"\n<!-- experiment:{n} -->\n{sections[n]}<!-- /experiment:{n} -->\n" for n in order)
    claims.parent.mkdir(parents=True, exist_ok=True)
    claims.write_text(head + body)


def section(exp: Experiment, finding: Finding, wall_s: float, runs: Runs) -> str:
    spec = exp.spec
    ok = runs.table[runs.table["status"] == "ok"] if len(runs.table) else runs.table
    figures = "\n".join(f"![{exp.name}]({p.relative_to(exp.docs).as_posix()})" for p in finding.figures)
    return "\n".join([
        f"## {spec.title}" + (f" ({exp.scale.upper()} scale)" if exp.scale == "gpu" else ""),
        "",
        f"**Claim** ({spec.source}): {spec.claim.strip()}",
        "",
        f"**Verdict: {finding.verdict}.** {finding.summary}",
        "",
        figures,
        "",
        finding.body.strip(),
        "",
        f"<sub>`{write_docs_command(exp.name, exp.scale)}` — scale {exp.scale}, {len(runs.table)} runs "
        f"({len(ok)} ok) in {exp.runs_root}, {wall_s / 60:.1f} min wall time for this command; the runs themselves "
        f"took {_run_minutes(runs):.1f} min ({_machine()}), {time.strftime('%Y-%m-%d', time.gmtime())}.</sub>",
        STATS_MARK,
        "",
    ])


def _run_minutes(runs: Runs) -> float:
    """Wall time of the runs themselves (start to summary), whenever they ran: a re-run of the
    command that reuses finished runs is fast, but this still says what the sweep costs."""
    import numpy as np
    import pandas as pd

    table = runs.table
    if table.empty or "started_at" not in table or "finished_at" not in table:
        return 0.0
    spans = pd.to_numeric(table["finished_at"], errors="coerce") - pd.to_numeric(table["started_at"], errors="coerce")
    return float(np.nansum(spans)) / 60


def _machine() -> str:
    import os

    import torch

    device = "CUDA " + torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()} CPU cores"
    return f"{device}, torch {torch.__version__}"
