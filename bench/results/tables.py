"""Leaderboards as text: a rich table on a terminal, Markdown, CSV, JSON, and the string cells
the HTML report reuses. Every estimate is printed as `median [95% CI] n=…`; a miss is `∞`."""

from __future__ import annotations

import io
import json
import math

import pandas as pd

from bench.results.leaderboard import RULE, caveats

FORMATS = ("table", "md", "csv", "json")


def num(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return f"{x:.{digits}g}"


def estimate(row: pd.Series, col: str, unit: str = "", n: int | None = None) -> str:
    value, lo, hi = row[col], row[f"{col}_lo"], row[f"{col}_hi"]
    if value == lo == hi == math.inf:  # every resample missed: the interval adds nothing
        return "∞" + (f" n={n}" if n is not None else "")
    text = num(value, 3) + unit
    text += f" [{num(lo, 3)}, {num(hi, 3)}]" if not math.isnan(lo) else " (no CI)"
    return text + (f" n={n}" if n is not None else "")


def human_bytes(x: float) -> str:
    if x is None or math.isnan(x):
        return "–"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(x) < 1024 or unit == "GiB":
            return f"{x:.0f} {unit}" if unit == "B" else f"{x:.1f} {unit}"
        x /= 1024
    return f"{x:.1f} GiB"


def _orientation(mode: str) -> str:
    return "higher is better" if mode == "max" else "lower is better"


def display(board: pd.DataFrame, baseline: str = "adamw") -> pd.DataFrame:
    """The leaderboard's cells as strings, in reading order. `benchmark` is kept for grouping."""
    if board.empty:
        return pd.DataFrame()
    shared = board.groupby(["benchmark", "rank"])["rank"].transform("size") > 1
    rows = []
    for (_, r), tie in zip(board.iterrows(), shared, strict=True):
        target_n = f" {r['reached']}/{r['n']}"
        verdict = r["vs_baseline"]
        if verdict not in ("baseline", ""):
            verdict += f" P={num(r['p_vs_baseline'], 2)}"
            verdict += f" [{num(r['p_vs_baseline_lo'], 2)}, {num(r['p_vs_baseline_hi'], 2)}]" \
                if not math.isnan(r["p_vs_baseline_lo"]) else " (no CI)"
        rows.append({
            "benchmark": r["benchmark"],
            "rank": f"{r['rank']}=" if tie else str(r["rank"]),
            "optimizer": r["optimizer"],
            "trials": str(r["trials"]),
            "tuned hyperparameters": r["hyperparameters"],
            f"final {r['metric']} (median [95% CI])": estimate(r, "final", n=r["n"]),
            "steps to target (reached)": estimate(r, "steps_to_target") + target_n,
            "train time to target (reached)": estimate(r, "time_to_target_s", " s") + target_n,
            "diverged": f"{r['diverged']}/{r['runs']}" + (f" (+{r['failed']} failed)" if r["failed"] else ""),
            "optimizer state": human_bytes(r["optimizer_state_bytes"]),
            "step time": estimate(r, "step_time_ms", " ms"),
            f"vs {baseline}": verdict or "no baseline",
        })
    return pd.DataFrame(rows)


def sections(board: pd.DataFrame, baseline: str = "adamw"):
    """Yield (title, cells) per benchmark; each has its own metric, so its own column names."""
    for bench_name, group in board.groupby("benchmark", sort=True):
        yield title(board, bench_name), display(group, baseline).drop(columns="benchmark")


def title(board: pd.DataFrame, benchmark: str) -> str:
    r = board[board["benchmark"] == benchmark].iloc[0]
    target = "" if math.isnan(r["target"]) else f", target {num(r['target'])}"
    return f"{benchmark}: {r['metric']} ({_orientation(r['mode'])}){target}"


def display_across(across: pd.DataFrame, measure: str = "time") -> pd.DataFrame:
    if across.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "optimizer": across["optimizer"],
        "benchmarks run": across["benchmarks"].astype(str),
        "solved (median seed reached target)": across["solved"].astype(str),
        "mean rank (95% CI)": [estimate(r, "mean_rank", n=r["n"]) for _, r in across.iterrows()],
        f"area score ({measure}-to-target profile, τ≤4)": [f"{x:.3f}" for x in across["area_score"]],
    })


def _jsonable(value):
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"  # as metrics.jsonl writes them: a miss stays visible
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def render(board: pd.DataFrame, fmt: str, across: pd.DataFrame | None = None, baseline: str = "adamw") -> str:
    """md, csv or json text of a leaderboard (csv and json carry the raw numbers)."""
    if fmt == "csv":
        out = io.StringIO()
        board.to_csv(out, index=False)
        return out.getvalue()
    if fmt == "json":
        data = {"leaderboard": [{k: _jsonable(v) for k, v in row.items()} for row in board.to_dict("records")],
                "rule": RULE}
        if across is not None and not across.empty:
            data["across_tasks"] = [{k: _jsonable(v) for k, v in row.items()} for row in across.to_dict("records")]
        return json.dumps(data, indent=2)
    if fmt == "md":
        parts = []
        for heading, cells in sections(board, baseline):
            parts.append(f"### {heading}\n\n{_markdown(cells)}")
        if across is not None and not across.empty:
            parts.append(f"### Across benchmarks\n\n{_markdown(display_across(across))}")
        parts.append(f"Rule: {RULE}\n\n{caveats(board)}")
        return "\n\n".join(parts) + "\n"
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


def _markdown(frame: pd.DataFrame) -> str:
    cells = [[str(c).replace("|", "\\|") for c in row] for row in frame.itertuples(index=False)]
    head = "| " + " | ".join(frame.columns) + " |\n|" + "---|" * len(frame.columns) + "\n"
    return head + "\n".join("| " + " | ".join(row) + " |" for row in cells)


def print_rich(board: pd.DataFrame, across: pd.DataFrame | None = None, baseline: str = "adamw",
               console=None) -> None:
    """Per-benchmark rich tables, then the across-benchmark table when there is more than one."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(width=max(180, Console().width))
    for heading, frame in sections(board, baseline):
        table = Table(title=heading, title_justify="left", show_lines=False)
        for col in frame.columns:
            table.add_column(col, overflow="fold")
        for row in frame.itertuples(index=False):
            table.add_row(*map(str, row))
        console.print(table)
    if across is not None and not across.empty and board["benchmark"].nunique() > 1:
        table = Table(title="Across benchmarks", title_justify="left")
        frame = display_across(across)
        for col in frame.columns:
            table.add_column(col)
        for row in frame.itertuples(index=False):
            table.add_row(*map(str, row))
        console.print(table)
    console.print(f"[dim]Rule: {RULE}\n{caveats(board)}[/dim]")
