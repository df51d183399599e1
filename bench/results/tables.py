"""Leaderboards as text: a rich table on a terminal, Markdown, CSV, JSON, and the string cells
the HTML report reuses. Every estimate is printed as `median [95% CI] n=…`; a miss is `∞`."""

from __future__ import annotations

import io
import json
import math

import pandas as pd

from bench.results import markup, stats
from bench.results.leaderboard import caveats, rule

FORMATS = ("table", "md", "csv", "json")


def num(x: float, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if float(x).is_integer() and abs(x) < 1e15:  # 1600 steps, not 1.6e+03
        return str(int(x))
    return f"{x:.{digits}g}"


def whole(x: float) -> str:
    """A count (steps, runs): an integer as an integer; a median between two counts keeps its .5."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def estimate(row: pd.Series, col: str, unit: str = "", n: int | None = None, coverage: bool = False,
             fmt=lambda x: num(x, 3)) -> str:
    """`median [lo, hi] n=6 (97%)`: the interval (with its exact coverage when asked; the notes
    under each table list it per n); where n is too small for one, `median n=3 (n too small)`.
    A miss is ∞."""
    value, lo, hi = row[col], row[f"{col}_lo"], row[f"{col}_hi"]
    cover, needs = row.get(f"{col}_coverage", math.nan), row.get(f"{col}_needs", 0)
    count = f" n={n}" if n is not None else ""
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if value == math.inf and (lo == math.inf or math.isnan(lo)):  # half the seeds or more missed
        return "∞" + count
    text = fmt(value) + unit
    if not math.isnan(lo):
        shown = f" ({stats.percent_down(cover)})" if coverage and not math.isnan(cover) else ""
        return f"{text} [{fmt(lo)}, {fmt(hi)}]{count}{shown}"
    return text + count + (" (n too small)" if needs and needs > 0 else "")


def interval(row: pd.Series, col: str, fmt=lambda x: num(x, 3)) -> str:
    """An effect size with its interval, or `n too small (needs ≥ k)`."""
    value, lo = row[col], row[f"{col}_lo"]
    if isinstance(value, float) and math.isnan(value):
        return "–"
    if math.isnan(lo):
        needs = row.get(f"{col}_needs", 0)
        return fmt(value) + (f" (n too small: {int(needs)}/side)" if needs else "")
    return f"{fmt(value)} [{fmt(lo)}, {fmt(hi)}]" if (hi := row[f"{col}_hi"]) is not None else fmt(value)


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


def verdict(row: pd.Series) -> str:
    v = row["vs_baseline"]
    if v in ("baseline", ""):
        return v
    if v == "n too small":
        return f"n too small (needs ≥ {int(row['needs'])} seeds per side)"
    return f"{v} (p={num(row['p_adjusted'], 2)})"


def effects(row: pd.Series) -> str:
    """Against the baseline: the difference of the final metric, P(beats) and the ratio of steps
    to target, each with its interval where n allows one."""
    if row["vs_baseline"] in ("baseline", ""):
        return ""
    parts = [f"Δ {interval(row, 'shift')}", f"P(beats) {interval(row, 'p_beats', lambda x: f'{x:.2f}')}"]
    if not (isinstance(row["steps_ratio"], float) and math.isnan(row["steps_ratio"])):
        parts.append(f"steps ×{interval(row, 'steps_ratio')}")
    return "; ".join(parts)


def display(board: pd.DataFrame, baseline: str = "adamw") -> pd.DataFrame:
    """The leaderboard's cells as strings, in reading order. `benchmark` is kept for grouping."""
    if board.empty:
        return pd.DataFrame()
    ranked = board[board["ranked"]]
    shared = ranked.groupby(["benchmark", "rank"])["rank"].transform("size") > 1
    rows = []
    for _, r in board.iterrows():
        target_n = f" {r['reached']}/{r['n']}"
        if r["ranked"]:
            rank = f"{int(r['rank'])}=" if shared.get(r.name, False) else str(int(r["rank"]))
        else:
            rank = "–"
        rows.append({
            "benchmark": r["benchmark"],
            "rank": rank,
            "optimizer": r["optimizer"],
            "trials": str(r["trials"]) + (f" (≠ {r['budget_flag'].split('others ')[-1]})" if r["budget_flag"] else ""),
            "tuned hyperparameters": r["hyperparameters"],
            f"final {r['metric']} (median [95% CI])": estimate(r, "final", n=r["n"], coverage=True),
            "steps to target (reached)": estimate(r, "steps_to_target", fmt=whole) + target_n,
            "train time to target (reached)": estimate(r, "time_to_target_s", " s") + target_n,
            "diverged": f"{r['diverged']}/{r['runs']}" + (f" (+{r['failed']} failed)" if r["failed"] else ""),
            "optimizer state": human_bytes(r["optimizer_state_bytes"]),
            "step time": estimate(r, "step_time_ms", " ms"),
            f"vs {baseline}": verdict(r) or "no baseline",
            f"effect vs {baseline} [95% CI]": effects(r),
            "detectable Δ (80% power)": "" if r["vs_baseline"] in ("baseline", "") else
            ("n too small" if not math.isfinite(r["detectable"]) else f"±{num(r['detectable'], 2)}"),
        })
    return pd.DataFrame(rows)


def notes(board: pd.DataFrame, benchmark: str) -> list[str]:
    """What to read under one benchmark's table: the test and its family, the unranked rows and
    the command that adds their seeds, and what the final numbers rest on."""
    part = board[board["benchmark"] == benchmark]
    r = part.iloc[0]
    out = [rule(float(r["alpha"]), int(r["family"]))]
    covered = part.drop_duplicates("n").sort_values("n")
    shown = [f"n={n}: {stats.percent_down(c)}" for n, c in zip(covered["n"], covered["final_coverage"], strict=True) if c == c]
    out.append("Exact coverage of the median intervals: " + (", ".join(shown) if shown else "none")
               + f"; a median needs ≥ {stats.seeds_for_median()} seeds for a 95% interval.")
    unranked = part[~part["ranked"]]
    if len(unranked):
        lacking = ", ".join(f"{o} (n={n})" for o, n in zip(unranked["optimizer"], unranked["n"], strict=True))
        out.append(f"Unranked, too few seeds for this table's family (needs ≥ {int(unranked['needs'].max())} "
                   f"per side): {lacking}. Add seeds: {r['add_seeds']}")
    elif (part["vs_baseline"] == "n too small").any() or (part["needs"] > 0).any():
        out.append(f"Add seeds: {r['add_seeds']}")
    out.append(caveats(part))
    return out


def sections(board: pd.DataFrame, baseline: str = "adamw"):
    """Yield (title, cells, notes) per benchmark; each has its own metric, so its own column names."""
    for bench_name, group in board.groupby("benchmark", sort=True):
        yield title(board, bench_name), display(group, baseline).drop(columns="benchmark"), notes(board, bench_name)


def title(board: pd.DataFrame, benchmark: str) -> str:
    r = board[board["benchmark"] == benchmark].iloc[0]
    target = "" if math.isnan(r["target"]) else f", target {num(r['target'])}"
    return f"{benchmark}: {r['metric']} ({_orientation(r['mode'])}){target} — {r['budget']}"


def display_across(across: pd.DataFrame, measure: str = "time") -> pd.DataFrame:
    if across.empty:
        return pd.DataFrame()
    return pd.DataFrame({
        "optimizer": across["optimizer"],
        "benchmarks run": across["benchmarks"].astype(str),
        "solved (median seed reached target)": across["solved"].astype(str),
        "mean rank (descriptive)": [f"{num(r['mean_rank'], 3)} n={r['n']}" for _, r in across.iterrows()],
        f"area score ({measure}-to-target profile, τ≤4)": [f"{x:.3f}" for x in across["area_score"]],
    })


def speedup_sections(speedups: pd.DataFrame, baseline: str = "adamw"):
    """Yield (title, cells, notes) per task family with a fitted baseline curve: one row per
    optimizer, one column per budget, each cell the median speed-up D_eff / D over seeds with its
    interval (see `bench.results.speedup`)."""
    if speedups is None or speedups.empty:
        return
    for family, part in speedups.groupby("family", sort=True):
        r = part.iloc[0]
        budgets = sorted(part["data_budget"].unique())
        steps = {d: part.loc[part["data_budget"] == d, "steps"].iloc[0] for d in budgets}
        columns = {d: f"{whole(steps[d])} steps" if steps[d] == steps[d] else f"D={num(d)}" for d in budgets}
        rows = []
        for opt, mine in sorted(part.groupby("optimizer"), key=lambda item: (item[0] != baseline, item[0])):
            row = {"optimizer": opt}
            for d in budgets:
                cell = mine[mine["data_budget"] == d]
                row[columns[d]] = "" if cell.empty else \
                    estimate(cell.iloc[0], "speedup", "×", n=int(cell.iloc[0]["n"])) + \
                    ("†" if cell.iloc[0]["extrapolated"] else "") + ("‡" if cell.iloc[0]["noisy_curve"] else "")
            rows.append(row)
        law = f"L(D) = {num(r['alpha'])}·D^−{num(r['beta'])} {'−' if r['gamma'] < 0 else '+'} {num(abs(r['gamma']))}"
        title = f"{family}: {baseline}-equivalent speed-up D_eff / D"
        lines = [f"Fitted to {baseline}'s tuned-best median final {r['metric']} at {int(r['fit_budgets'])} budgets: {law} "
                 f"(D = items seen, steps × items per step). D_eff: the {baseline} budget at which that curve reaches an "
                 f"optimizer's final {r['metric']} (Wen et al. 2025); 1× is {baseline}'s own pace, ∞: below the curve's "
                 f"floor {num(r['gamma'])}, 0: a miss; †: D_eff outside {baseline}'s budgets (extrapolated).",
                 "Interval: the seeds' order statistics mapped through the fitted curve (distribution-free for the "
                 f"median speed-up, from {stats.seeds_for_median()} seeds), the curve taken as known: its own seed "
                 "noise is not in the interval, which covers only while that noise is small (docs/STATISTICS.md); ‡: "
                 f"{baseline}'s seeds are too noisy against this row's for that, so read the interval as this "
                 "optimizer's seed spread alone."]
        yield title, pd.DataFrame(rows), lines


def speedup_skipped(speedups: pd.DataFrame | None, baseline: str = "adamw") -> list[str]:
    """One line per task whose runs span several budgets but give no speed-up table, and why."""
    skipped = {} if speedups is None else speedups.attrs.get("skipped", {})
    return [f"No {baseline}-equivalent speed-up for {family}: {why}." for family, why in sorted(skipped.items())]


#: the across-benchmarks headers where the full ones do not fit the terminal (`across_legend` explains them)
ACROSS_SHORT = ["optimizer", "benchmarks", "solved", "mean rank", "area score"]


def across_legend(measure: str = "time") -> str:
    return (f"solved: benchmarks where the median seed reached the target; mean rank: by median final metric "
            f"(descriptive, n = benchmarks); area score: area under the {measure}-to-target performance profile, τ≤4.")


def _jsonable(value):
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"  # as metrics.jsonl writes them: a miss stays visible
    if hasattr(value, "item"):
        return _jsonable(value.item())
    return value


def render(board: pd.DataFrame, fmt: str, across: pd.DataFrame | None = None, baseline: str = "adamw",
           speedups: pd.DataFrame | None = None) -> str:
    """md, csv or json text of a leaderboard (csv and json carry the raw numbers)."""
    if fmt == "csv":
        out = io.StringIO()
        board.to_csv(out, index=False)
        return out.getvalue()
    if fmt == "json":
        data = {"leaderboard": [{k: _jsonable(v) for k, v in row.items()} for row in board.to_dict("records")],
                "rules": {b: notes(board, b) for b in board["benchmark"].unique()} if not board.empty else {}}
        if across is not None and not across.empty:
            data["across_tasks"] = [{k: _jsonable(v) for k, v in row.items()} for row in across.to_dict("records")]
        if speedups is not None and not speedups.empty:
            data["speedups"] = [{k: _jsonable(v) for k, v in row.items()} for row in speedups.to_dict("records")]
        if speedup_skipped(speedups, baseline):
            data["speedups_skipped"] = speedup_skipped(speedups, baseline)
        return json.dumps(data, indent=2)
    if fmt == "md":
        parts = []
        for heading, cells, lines in sections(board, baseline):
            parts.append(f"### {heading}\n\n{markup.markdown_frame(cells)}\n\n" + "\n\n".join(lines))
        if across is not None and not across.empty:
            parts.append(f"### Across benchmarks\n\n{markup.markdown_frame(display_across(across))}")
        for heading, cells, lines in speedup_sections(speedups, baseline):
            parts.append(f"### {heading}\n\n{markup.markdown_frame(cells)}\n\n" + "\n\n".join(lines))
        parts += speedup_skipped(speedups, baseline)
        return "\n\n".join(parts) + "\n"
    raise ValueError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")


#: columns the terminal table leaves out first when it is too narrow (a name starts with one of
#: these), least needed first; rank, optimizer, the final metric and the verdict always stay
DROP_ORDER = ("train time to target", "optimizer state", "step time", "detectable Δ", "effect vs", "diverged",
              "trials", "tuned hyperparameters", "steps to target")
SHORT = {"effect vs": "effect"}
CELL_WIDTH = 16  # to fit, longer cells wrap onto two or three lines rather than widen the table
WIDE_CELL_WIDTH = 48  # --wide: most cells on one line


def _width(frame: pd.DataFrame, columns, cell_width: int = CELL_WIDTH) -> int:
    """Columns a rich table of these columns needs when each cell may wrap at `cell_width`."""
    total = 1  # the left border
    for col in columns:
        words = [len(w) for w in str(col).split()] + [len(str(c)) for c in frame[col]]
        total += min(cell_width, max(words, default=1)) + 3  # padding on both sides and a border
    return total


def fit_columns(frame: pd.DataFrame, width: int) -> tuple[list[str], list[str]]:
    """(columns shown, columns dropped): drop in DROP_ORDER until the table fits `width`."""
    shown, dropped = list(frame.columns), []
    for prefix in DROP_ORDER:
        if _width(frame, shown) <= width:
            break
        for col in [c for c in shown if c.startswith(prefix)]:
            shown.remove(col)
            dropped.append(SHORT.get(prefix, prefix))
    return shown, dropped


def _rich_table(heading: str, frame: pd.DataFrame, columns):
    from rich.table import Table
    from rich.text import Text

    # Text, not str: rich would read a label like logreg[budget=300] as markup and drop "[budget=300]"
    table = Table(title=Text(heading), title_justify="left", show_lines=False)
    for col in columns:
        table.add_column(Text(col), overflow="fold")
    for row in frame[list(columns)].itertuples(index=False):
        table.add_row(*(Text(str(v)) for v in row))
    return table


def print_rich(board: pd.DataFrame, across: pd.DataFrame | None = None, baseline: str = "adamw",
               console=None, wide: bool = False, speedups: pd.DataFrame | None = None, measure: str = "time") -> None:
    """Per-benchmark rich tables, then the across-benchmark table when there is more than one.
    They fit the console's width, leaving out columns in DROP_ORDER and saying which; `wide`
    shows every column, as wide as that takes."""
    from rich.console import Console
    from rich.text import Text

    parts = list(sections(board, baseline))
    console = console or Console()
    if wide:
        needed = max((_width(frame, frame.columns, WIDE_CELL_WIDTH) for _, frame, _ in parts), default=0)
        console = Console(file=console.file, width=max(console.width, needed))
    dropped: list[str] = []
    for heading, frame, lines in parts:
        shown, gone = (list(frame.columns), []) if wide else fit_columns(frame, console.width)
        dropped += [name for name in gone if name not in dropped]
        console.print(_rich_table(heading, frame, shown))
        console.print(Text("\n".join(lines), style="dim"))
    if across is not None and not across.empty and board["benchmark"].nunique() > 1:
        frame = display_across(across, measure)
        natural = 1 + sum(max([len(str(c))] + [len(str(v)) for v in frame[c]]) + 3 for c in frame.columns)
        if not wide and natural > console.width:
            # the long headers would break mid-word: short ones, and what they mean underneath
            frame = frame.set_axis(ACROSS_SHORT, axis=1)
            console.print(_rich_table("Across benchmarks", frame, frame.columns))
            console.print(Text(across_legend(measure), style="dim"))
        else:
            console.print(_rich_table("Across benchmarks", frame, frame.columns))
    for heading, frame, lines in speedup_sections(speedups, baseline):
        console.print(_rich_table(heading, frame, frame.columns))
        console.print(Text("\n".join(lines), style="dim"))
    for line in speedup_skipped(speedups, baseline):
        console.print(Text(line, style="dim"))
    if dropped:
        console.print(Text(f"Left out to fit {console.width} columns: {', '.join(dropped)}. "
                           f"--wide shows all.", style="dim"))
