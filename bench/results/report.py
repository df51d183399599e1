"""One self-contained HTML page: leaderboards, figures (inline base64 PNG), run metadata, what
was skipped, and the commands that reproduce every number. No scripts, fonts or links to fetch,
so it opens offline and can be mailed around as one file."""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from bench.results import leaderboard as lb
from bench.results import markup, plots, speedup, tables
from bench.results.store import Runs, load

MAX_COMMANDS = 300  # beyond this the list stops being readable; the count is still shown
#: written into every report's <head>: `bench report` replaces a file carrying it, and nothing else without --force
GENERATOR = "bench report"
MARKER = f'<meta name="generator" content="{GENERATOR}">'
#: how reports began before they carried MARKER; they are replaced as well
OLD_HEAD = "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>bench report</title>"
FIGURE_PX = 1300  # figures are drawn this many pixels wide, so they stay sharp at the page's full width

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto; max-width: 1300px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
td.better { color: #176b1f; font-weight: 600; } td.worse { color: #a31515; }
img { display: block; width: 100%; height: auto; border: 1px solid #eee; margin: .4em 0; }
pre { background: #f6f6f6; padding: .8em; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
details summary { cursor: pointer; color: #333; margin: .4em 0; }
.note { color: #555; font-size: 13px; } .meta td:first-child { font-weight: 600; }
"""


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=max(110, FIGURE_PX / fig.get_figwidth()))
    return base64.b64encode(buf.getvalue()).decode()


def _verdict_class(col: str, value) -> str:
    return "better" if str(value).startswith("better") else "worse" if str(value).startswith("worse") else ""


def _table(frame: pd.DataFrame, verdict_col: str | None = None) -> str:
    """A plain HTML table; the verdict column is coloured so wins and losses stand out."""
    return markup.html_table(frame, (lambda col, value: _verdict_class(col, value) if col == verdict_col else "")
                             if verdict_col else None)


def _override(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_override(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return "null" if value is None else str(value)


def reproduce_commands(table: pd.DataFrame) -> list[str]:
    """`bench run -m …` per (benchmark, optimizer, setting), seeds folded into one sweep. Task
    settings appear when they distinguish this benchmark from others of the same task."""
    lines = []
    keys = ["benchmark", "task", "optimizer", "hyperparameters", "schedule", "batch_size"] + \
        [c for c in ("budget",) if c in table]
    for group_key, group in table.groupby(keys, sort=True, dropna=False):
        info = dict(zip(keys, group_key, strict=True))
        parts = ["bench", "run", "-m", f"task={info['task']}", f"optimizer={info['optimizer']}"]
        label = str(info["benchmark"])
        if "[" in label:  # logreg[dataset=wine,budget=300] → task.dataset=wine (budget → steps)
            for item in label[label.index("[") + 1:-1].split(","):
                k, v = item.split("=", 1)
                if k != "budget":
                    parts.append(f"task.{k}={v}")
        try:
            hp = json.loads(info["hyperparameters"])
        except (TypeError, ValueError):
            hp = {}
        parts += [f"optimizer.{k}={_override(v)}" for k, v in hp.items()]
        if isinstance(info["schedule"], str):
            parts.append(f"schedule={info['schedule'].lower()}")
        if "budget" in info and pd.notna(info["budget"]):
            parts.append(f"steps={info['budget']}")
        if pd.notna(info["batch_size"]):
            parts.append(f"batch_size={int(float(info['batch_size']))}")
        seeds = sorted({int(s) for s in group["seed"].dropna()})
        parts.append("seed=" + ",".join(map(str, seeds)))
        lines.append(shlex.join(parts))
    return lines


def _environment(table: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in ("env/bench", "env/torch", "env/device", "env/device_name", "env/threads", "env/host",
                        "env/git_sha") if c in table]
    if not cols:
        return pd.DataFrame()
    # a column with a missing value is float: 1.0 threads would print where 1 was meant
    env = table[cols].map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    env = env.value_counts().reset_index(name="runs")
    env.columns = [c.removeprefix("env/") for c in env.columns]
    return env


def render_html(runs: Runs, board: pd.DataFrame, across: pd.DataFrame, figures: Iterable, baseline: str,
                commands: Sequence[str], measure: str = "time", speedups: pd.DataFrame | None = None) -> str:
    table = runs.table
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    out = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>{MARKER}<title>bench report</title>"
           f"<style>{CSS}</style></head><body>",
           "<h1>Optimizer benchmark report</h1>",
           f"<p class='note'>Generated {html.escape(now)} from <code>{html.escape(str(runs.root))}</code>: "
           f"{len(table)} runs, {table['benchmark'].nunique()} benchmarks, {table['optimizer'].nunique()} optimizers, "
           f"{len(runs.skipped)} skipped. Baseline: <b>{html.escape(baseline)}</b>.</p>"]

    out.append("<h2>Leaderboards</h2>")
    out.append("<p class='note'>Each optimizer at its tuned best: the trial (distinct hyperparameter setting) "
               "with the best median final metric over seeds. Every estimate is a median with its distribution-free "
               "95% interval and that interval's exact coverage, or says how many seeds an interval needs; a miss "
               "(diverged, failed or target not reached) counts as ∞.</p>")
    for heading, cells, lines in tables.sections(board, baseline):
        out.append(f"<h3>{html.escape(heading)}</h3>")
        out.append(_table(cells, verdict_col=f"vs {baseline}"))
        out.append("".join(f"<p class='note'>{html.escape(line)}</p>" for line in lines))

    if not across.empty:
        out.append("<h2>Across benchmarks</h2>")
        out.append(_table(tables.display_across(across, measure)))
        out.append("<p class='note'>Mean rank: rank by median final metric within each benchmark (ties share the "
                   "average; an optimizer absent from a benchmark ranks last), averaged over benchmarks; descriptive, "
                   "without an interval (a handful of benchmarks supports none). Area score: AlgoPerf's normalised area under the "
                   "time-to-target performance profile for τ from 1 to 4 (1 = fastest everywhere).</p>")

    sections, skipped = list(tables.speedup_sections(speedups, baseline)), tables.speedup_skipped(speedups, baseline)
    if sections or skipped:
        out.append(f"<h2>{html.escape(baseline)}-equivalent speed-up</h2>")
        for heading, cells, lines in sections:
            out.append(f"<h3>{html.escape(heading)}</h3>")
            out.append(_table(cells))
            out.append("".join(f"<p class='note'>{html.escape(line)}</p>" for line in lines))
        out.append("".join(f"<p class='note'>{html.escape(line)}</p>" for line in skipped))

    out.append("<h2>Figures</h2>")
    for name, title, fig in figures:
        out.append(f"<h3 id='{html.escape(name)}'>{html.escape(title)}</h3>")
        out.append(f"<img alt='{html.escape(title)}' src='data:image/png;base64,{_png(fig)}'>")

    out.append("<h2>Runs</h2>")
    status = table["status"].value_counts().rename_axis("status").reset_index(name="runs")
    out.append(_table(status))
    env = _environment(table)
    if not env.empty:
        out.append("<h3>Environment</h3>" + _table(env))
    if runs.skipped:
        out.append(f"<h3>Skipped ({len(runs.skipped)})</h3>")
        out.append(_table(pd.DataFrame([(s.path, s.reason) for s in runs.skipped], columns=["directory", "reason"])))

    out.append("<h2>Commands</h2><p class='note'>This report:</p>")
    out.append(f"<pre>{html.escape(chr(10).join(commands))}</pre>")
    runs_cmds = reproduce_commands(table)
    shown_cmds = runs_cmds[:MAX_COMMANDS]
    more = f", first {MAX_COMMANDS} shown" if len(runs_cmds) > MAX_COMMANDS else ""
    # collapsed: dozens of long sweeps would otherwise bury the end of the page
    out.append(f"<details><summary>The runs: {len(runs_cmds)} commands, one sweep per setting{more} "
               f"(add <code>runs_root=…</code>)</summary>")
    out.append(f"<pre>{html.escape(chr(10).join(shown_cmds))}</pre></details>")
    out.append("</body></html>")
    return "\n".join(out)


def build_report(runs_root: str | Path, out_path: str | Path = "report.html", task: str | Sequence[str] | None = None,
                 baseline: str = "adamw", x: str = "step", measure: str = "time",
                 command: Sequence[str] | None = None, runs: Runs | None = None) -> Path:
    """Write the HTML report for every run under `runs_root` and return its path.

    `command` is recorded as what produced the report (default: this process's argv). Raises
    ValueError when there is nothing to report."""
    runs = runs or load(runs_root)
    if task is not None:
        wanted = {task} if isinstance(task, str) else set(task)
        runs = Runs(runs.root, runs.table[runs.table["task"].isin(wanted) | runs.table["benchmark"].isin(wanted)],
                    runs.skipped)
    if runs.table.empty:
        raise ValueError(f"no finished runs under {runs_root}")
    board = lb.leaderboard(runs.table, baseline=baseline)
    across = lb.across_tasks(runs.table, measure)
    figures = list(plots.figures(runs, x=x, measure=measure))  # may add curve problems to runs.skipped
    commands = [shlex.join(command or ["bench", *sys.argv[1:]])]
    gains = speedup.speedups(runs.table, baseline)
    text = render_html(runs, board, across, figures, baseline, commands, measure, gains)
    out_path = Path(out_path)
    # `bench report` has refused a missing directory before any work; a script calling this gets one
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out_path, text)
    return out_path


def is_report(path: Path) -> bool:
    """Whether `path` is a report this command wrote (its <head> carries MARKER)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    return MARKER in head or head.startswith(OLD_HEAD)


def write_atomically(path: Path, text: str) -> None:
    """Write into a temporary file beside `path`, then rename it over `path`: a reader never sees
    half a report, and a failed write leaves the earlier one intact. The directory must exist."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a report is as readable as any new file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
