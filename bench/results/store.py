"""Run directories → pandas. One row per finished run (`load`), learning curves in long form
(`Runs.curves`).

Reading 10,000 summary.json files costs seconds, so the flattened rows are cached in
`<runs_root>/.index/runs-v3.parquet`, keyed per directory by the mtime and size of summary.json
and metrics.jsonl: an unchanged directory costs two `stat` calls. Anything that is not a usable
run (unfinished, corrupt, foreign) is listed once in `Runs.skipped` with its reason; nothing in
a runs root can make loading raise.

Metric names are read as their current names (`names.canonical_metric`): a run written before a
metric was renamed ranks and plots together with the runs written after.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from bench.results import scan
from bench.results.names import canonical_metric, canonical_summary
from bench.results.scan import Skipped
from bench.runner import rundir

#: v2: metric names are stored renamed (names.py); a v1 index may hold pre-rename ones.
#: v3: one `hp/<name>` column per hyperparameter, and `task/<name>` only where the setting applies
#: (a v2 index lacks the first and holds inert separable-data settings on every logreg row)
INDEX = Path(".index") / "runs-v3.parquet"
REQUIRED = ("task", "optimizer", "status", "metric", "mode")
#: nested summary keys kept as JSON text in the cache (their shapes vary between optimizers/tasks)
AS_JSON = ("hyperparameters", "task_info", "error")
#: bookkeeping columns of the cache, dropped from what callers see
STAMPS = ("_summary_stamp", "_metrics_stamp")
#: task settings that only one variant of a task reads: (task class, setting) -> (switch, value).
#: logreg.yaml declares n/dim/margin for its generated `separable` data, so every logreg run's
#: config carries them; on breast_cancer they are inert, and a `task/dim` value there would read as
#: if the run had used 20 features (and split one benchmark in two when someone overrides it)
ONLY_WHEN = {("bench.tasks.logreg.LogReg", key): ("dataset", "separable") for key in ("n", "dim", "margin")}


@dataclass
class Runs:
    root: Path
    table: pd.DataFrame
    skipped: list[Skipped] = field(default_factory=list)

    def curves(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Long-form curves of the given runs (all when None): columns run_id, step, time
        (train seconds), items, metric, value. Unreadable lines are skipped and reported."""
        rows = self.table if run_ids is None else self.table[self.table["run_id"].isin(set(run_ids))]
        frames = []
        for run_id, run_dir in zip(rows["run_id"], rows["run_dir"], strict=True):
            frame, problem = read_curve(Path(run_dir), run_id)
            if problem:
                self._report(run_dir, problem)
            if frame is not None:
                frames.append(frame)
        if not frames:
            return pd.DataFrame(columns=["run_id", "step", "time", "items", "metric", "value"])
        return pd.concat(frames, ignore_index=True)

    def _report(self, path: str, reason: str) -> None:
        item = Skipped(str(path), reason)
        if item not in self.skipped:
            self.skipped.append(item)


def read_curve(run_dir: Path, run_id: str) -> tuple[pd.DataFrame | None, str | None]:
    """(long-form frame, problem). A bad line (a crash mid-write) ends the usable curve there."""
    try:
        text = (run_dir / rundir.METRICS).read_text()
    except OSError as exc:
        return None, f"metrics.jsonl unreadable ({exc.strerror or exc}); no learning curve"
    records, problem = [], None
    for number, line in enumerate(text.splitlines(), 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "step" not in record:
                raise ValueError
        except ValueError:
            problem = f"metrics.jsonl line {number} is not a complete JSON record (truncated?); curve kept up to line {number - 1}"
            break
        records.append(record)
    if not records:
        return None, problem or "metrics.jsonl is empty; no learning curve"
    wide = pd.DataFrame.from_records(records)
    ids = [c for c in ("step", "time/train_s", "items") if c in wide]
    long = wide.melt(id_vars=ids, var_name="metric", value_name="value")
    long = long[~long["metric"].isin(("lr", "time/eval_s"))]
    long["metric"] = long["metric"].map(canonical_metric)  # old names (a resumed old run mixes both)
    # jsonl stores non-finite floats as strings ("nan", "inf"): a diverged step stays visible
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long = long.dropna(subset=["value"]).rename(columns={"time/train_s": "time"})
    for col in ("time", "items"):
        if col not in long:
            long[col] = np.nan
    long.insert(0, "run_id", run_id)
    return long[["run_id", "step", "time", "items", "metric", "value"]].reset_index(drop=True), problem


def _config_facts(run_dir: str) -> dict[str, str]:
    """Top-level `steps` and the task's scalar settings from config.yaml. A line scan rather than
    a YAML parse: the file is OmegaConf's own output, and parsing 10,000 of them costs seconds."""
    try:
        with open(f"{run_dir}/config.yaml") as f:
            lines = f.read().splitlines()
    except OSError:
        return {}
    facts, task, section = {}, {}, None
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if not line.startswith(" "):
            section = line.split(":", 1)[0]
            if section == "steps":
                facts["budget"] = line.split(":", 1)[1].strip()
        elif section == "task" and line.startswith("  ") and not line.startswith("   ") and ":" in line:
            key, value = (s.strip() for s in line.split(":", 1))
            task[key] = value
    target, switches = task.get("_target_"), {k: v.strip("'\"") for k, v in task.items()}
    for key, value in task.items():
        switch = ONLY_WHEN.get((target, key))
        if switch is not None and switches.get(switch[0]) != switch[1]:
            continue  # declared by the task's yaml, but not read by this variant of it
        if value and key not in ("name", "_target_", "data_source", "budget"):
            facts[f"task/{key}"] = value.strip("'\"")
    return facts


def _hp_value(value: Any) -> Any:
    """One `hp/<name>` cell: numbers (and true/false) as floats so a column filters and sorts as
    numbers whatever mix of ints and floats the runs were given; lists and dicts as JSON text."""
    if isinstance(value, (bool, int, float)):
        return float(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True, default=str)
    return value


def _flatten(summary: dict[str, Any], run_dir: str) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for key, value in summary.items():
        if key in AS_JSON:
            row[key] = json.dumps(value, sort_keys=True, default=str)
            if key == "hyperparameters" and isinstance(value, dict):
                row.update({f"hp/{name}": _hp_value(v) for name, v in value.items()})
        elif isinstance(value, dict):
            for sub, v in value.items():
                row[f"{key}/{sub}"] = json.dumps(v) if isinstance(v, (list, dict)) else v
        elif isinstance(value, list):
            row[key] = json.dumps(value)
        else:
            row[key] = value
    row.update(_config_facts(run_dir))
    row["run_dir"] = run_dir  # where it is now, not where it was written (roots get moved)
    return row


def _parse(run_dir: str) -> tuple[dict[str, Any] | None, str | None]:
    try:
        with open(f"{run_dir}/summary.json") as f:
            summary = json.loads(f.read())
    except OSError as exc:
        return None, f"summary.json unreadable ({exc.strerror or exc})"
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"summary.json is corrupt ({str(exc).split(':')[0]})"
    if not isinstance(summary, dict):
        return None, "summary.json is not a JSON object"
    missing = [k for k in REQUIRED if k not in summary]
    if missing:
        return None, f"summary.json lacks {', '.join(missing)} (not a bench run?)"
    return _flatten(canonical_summary(summary), run_dir), None


def storable(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` that parquet can store (see `_coerce`)."""
    return _coerce(frame.copy())


def _coerce(frame: pd.DataFrame) -> pd.DataFrame:
    """Give every object column one type so parquet can store it: all-numeric columns become
    floats, anything mixed becomes text."""
    for col in [c for c in frame.columns if pd.api.types.is_object_dtype(frame[c])]:
        values = frame[col].dropna()
        if values.map(lambda v: isinstance(v, str)).all():
            continue
        if values.map(lambda v: isinstance(v, (int, float, bool)) and not isinstance(v, str)).all():
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
        else:
            frame[col] = frame[col].map(lambda v: v if v is None or isinstance(v, str) else json.dumps(v, default=str))
    return frame


def _read_index(path: Path) -> pd.DataFrame | None:
    try:
        index = pd.read_parquet(path)
    except Exception:  # missing, half-written by an old version, foreign: rebuild it
        return None
    return index if "_dir" in index.columns else None


def _write_index(path: Path, frame: pd.DataFrame) -> None:
    """Atomic (temp + rename) so concurrent readers never see half a file; best effort only."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    except Exception:  # a read-only runs root still loads, just without the cache
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def load(root: str | Path, cache: bool = True) -> Runs:
    """Every finished run under `root` (one row each), plus what was skipped and why."""
    root = Path(root)
    skipped: list[Skipped] = []
    if not root.is_dir():
        return Runs(root, pd.DataFrame(columns=["run_id", *REQUIRED, "run_dir"]), skipped)
    dirs = scan.run_dirs(os.fspath(root), "", skipped)

    index = _read_index(root / INDEX) if cache else None
    known: dict[str, tuple[int, str, str]] = {}
    if index is not None:  # plain lists: per-row pandas access would cost seconds at 10,000 runs
        known = {d: (i, a, b) for i, (d, a, b) in enumerate(zip(
            index["_dir"].tolist(), index["_summary_stamp"].tolist(), index["_metrics_stamp"].tolist(), strict=True))}
    reused, fresh = [], []
    base = os.fspath(root)
    for name in dirs:
        summary_stamp = scan.stamp(f"{base}/{name}/summary.json")
        if summary_stamp is None:
            skipped.append(Skipped(str(root / name), scan.unfinished_reason(root / name)))
            continue
        metrics_stamp = scan.stamp(f"{base}/{name}/metrics.jsonl")
        hit = known.get(name)
        if hit is not None and hit[1] == summary_stamp and hit[2] == metrics_stamp:
            reused.append(hit[0])
            continue
        run_dir = f"{base}/{name}"
        row, reason = _parse(run_dir)
        if row is None:
            skipped.append(Skipped(run_dir, reason))
            continue
        row.update(_dir=name, _summary_stamp=summary_stamp, _metrics_stamp=metrics_stamp,
                   curve_problem=scan.metrics_problem(run_dir))
        fresh.append(row)

    parts = [] if index is None else [index.iloc[reused]]
    if fresh:
        parts.append(_coerce(pd.DataFrame.from_records(fresh)))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=["_dir", *STAMPS, *REQUIRED])
    if cache and (fresh or index is None or len(reused) != len(index)):
        _write_index(root / INDEX, storable(table))

    if "curve_problem" in table:
        bad = table[table["curve_problem"].notna()]
        pairs = zip(bad["run_dir"].tolist(), bad["curve_problem"].tolist(), strict=True)
        skipped += [Skipped(str(d), p) for d, p in pairs]
    table = _dedupe(table.drop(columns=["_dir", *STAMPS]), skipped)
    return Runs(root, derive(table), skipped)


def _dedupe(table: pd.DataFrame, skipped: list[Skipped]) -> pd.DataFrame:
    """A forced re-run (`<run_id>-2`) repeats a (config, seed) cell: only the latest counts, or
    one seed would be counted twice."""
    if table.empty or "run_id" not in table:
        return table
    order = table.sort_values("finished_at" if "finished_at" in table else "run_dir")
    dup = order.duplicated("run_id", keep="last")
    latest = order.drop_duplicates("run_id", keep="last").set_index("run_id")["run_dir"]
    for run_id, run_dir in zip(order.loc[dup, "run_id"], order.loc[dup, "run_dir"], strict=True):
        kept = str(latest[run_id])
        # force=true writes `<run_id>-2` beside the first; the same run id under another root is
        # the same (config, seed) run again, e.g. the demo's and a check's: counted once either way
        why = ("superseded by a later run of the same config (force=true)" if Path(kept).parent == Path(run_dir).parent
               else f"the same config and seed as {kept}, which is counted instead")
        skipped.append(Skipped(str(run_dir), why))
    return order[~dup].sort_values("run_dir").reset_index(drop=True)


def setting_key(hyperparameters: str, schedule: Any) -> str:
    """One tuning trial = one distinct optimizer setting (hyperparameters + schedule)."""
    return f"{hyperparameters}|{schedule}"


def derive(table: pd.DataFrame) -> pd.DataFrame:
    """Columns every analysis needs: `value` (final task metric), `loss` (the same, oriented so
    lower is better, +inf when the run missed: diverged or failed), `setting` (the trial) and
    `benchmark` (the task, plus whatever distinguishes variants of it in this root)."""
    table = table.copy()
    for col in ("hyperparameters", "schedule", "seed", "target", "steps_to_target", "time_to_target_s"):
        if col not in table:
            table[col] = np.nan
    table["value"] = np.nan
    for metric in table["metric"].dropna().unique():
        col, rows = f"final/{metric}", table["metric"] == metric
        if col in table:
            table.loc[rows, "value"] = pd.to_numeric(table.loc[rows, col], errors="coerce")
    sign = np.where(table["mode"] == "max", -1.0, 1.0)
    usable = (table["status"] == "ok") & np.isfinite(table["value"])
    table["loss"] = np.where(usable, sign * table["value"], np.inf)
    # AlgoPerf convention: a run that never reached the target took infinitely long
    for col, out in (("steps_to_target", "steps_to_target_inf"), ("time_to_target_s", "time_to_target_inf")):
        raw = pd.to_numeric(table[col], errors="coerce")
        table[out] = np.where(usable & raw.notna(), raw, np.inf)
    table["setting"] = [setting_key(h, s) for h, s in zip(table["hyperparameters"], table["schedule"], strict=True)]
    table["benchmark"] = _benchmark_labels(table)
    return table


def _benchmark_labels(table: pd.DataFrame) -> list[str]:
    """`logreg` when a task has one variant here; `logreg[dataset=wine,budget=300]` when its runs
    differ in task settings or step budget, so unlike runs are never ranked together."""
    keys = [c for c in table.columns if c.startswith("task/") and c != "task/name"] + ["budget"]
    keys = [k for k in keys if k in table]
    labels = table["task"].astype(str).copy()
    for task, group in table.groupby("task"):
        # a setting a run lacks (one its variant does not read) is no part of its label
        varying = [k for k in keys if group[k].dropna().astype(str).nunique() > 1]
        if varying:
            names = [k.removeprefix("task/") for k in varying]
            parts = ([f"{n}={v}" for n, v in zip(names, row, strict=True) if not pd.isna(v)]
                     for row in group[varying].itertuples(index=False, name=None))
            labels[group.index] = [f"{task}[{','.join(p)}]" if p else str(task) for p in parts]
    return labels.tolist()
