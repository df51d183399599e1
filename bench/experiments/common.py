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
from typing import Any, Sequence

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf, open_dict

from bench import BenchError
from bench.config import CONF_DIR
from bench.results import stats
from bench.results.store import Runs, load

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

    @property
    def figures_dir(self) -> Path:
        return self.docs / "claims"

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

    def base_overrides(self) -> list[str]:
        return [f"runs_root={self.runs_root}", "progress=off", *self.spec.get("overrides", [])]

    def load(self) -> Runs:
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
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    for ax in axes:
        ax.grid(alpha=0.3)
    return fig, axes


def ci(values: Sequence[float], digits: int = 3, stat=stats.median) -> str:
    """`median [lo, hi] (n=k)`: the 95% bootstrap interval of the results package, never a bare mean."""
    e = stats.bootstrap([v for v in values if not (isinstance(v, float) and math.isnan(v))], stat=stat)
    if e.n == 0:
        return "– (n=0)"
    if e.n < 2:
        return f"{_num(e.value, digits)} (n={e.n}, no interval)"
    return f"{_num(e.value, digits)} [{_num(e.lo, digits)}, {_num(e.hi, digits)}] (n={e.n})"


def _num(x: float, digits: int) -> str:
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

Each section below is written by one command, `bench experiment <name>`, which runs the sweep
(finished runs are reused), then writes the figures under [claims/](claims/) and the section itself.
Numbers are medians over n independent runs (seeds) with 95% bootstrap intervals; a claim counts as
reproduced only when the whole interval supports it. "Not reproduced at this scale" means what it
says: the CPU presets are small, and their `--scale gpu` variants are the ones to trust.
"""


def write_section(claims: Path, name: str, markdown: str) -> None:
    """Replace (or add) this experiment's section of CLAIMS.md; the others stay as they are, in
    the order of `names()`."""
    text = claims.read_text() if claims.exists() else CLAIMS_HEAD
    sections = dict(re.findall(r"<!-- experiment:([\w-]+) -->\n(.*?)<!-- /experiment:\1 -->\n", text, flags=re.S))
    head = text.split("<!-- experiment:", 1)[0].rstrip("\n") + "\n"
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
    scale_note = f"--scale {exp.scale}" if exp.scale != "cpu" else ""
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
        f"<sub>`{f'bench experiment {exp.name} {scale_note}'.rstrip()}` — scale {exp.scale}, {len(runs.table)} runs "
        f"({len(ok)} ok) in {exp.runs_root}, {wall_s / 60:.1f} min wall time for this command; the runs themselves "
        f"took {_run_minutes(runs):.1f} min ({_machine()}), {time.strftime('%Y-%m-%d', time.gmtime())}.</sub>",
        "",
    ])


def _run_minutes(runs: Runs) -> float:
    """Wall time of the runs themselves (start to summary), whenever they ran: a re-run of the
    command that reuses finished runs is fast, but this still says what the sweep costs."""
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
