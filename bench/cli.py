"""The `bench` command. `bench run` forwards its arguments to Hydra; the other commands read
run directories or the config tree."""

from __future__ import annotations

import sys
from typing import List, Optional

import typer

from bench.cli_errors import fail, guarded
from bench.config import BASELINE

app = typer.Typer(
    help="Benchmark optimizers honestly: equal tuning budgets, timed runs, leaderboards with confidence intervals.\n\n"
    "Start with `bench list optimizers`, then `bench run optimizer=lion task=logreg`.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)

RUN_HELP = """Train one configuration, or a sweep with -m, into runs/<run_id>/.

Arguments are Hydra overrides (see `bench list` for the choices):

\b
  bench run optimizer=lion task=logreg              one run
  bench run optimizer=adamw optimizer.lr=3e-4 steps=500 seed=1
  bench run task=rosenbrock task.dim=100 schedule=cosine
  bench run -m optimizer=adamw,lion seed=0,1,2      a sweep (Hydra multirun)
  bench run --cfg job optimizer=lion                print the composed config
  bench run -cd DIR optimizer=mine                  your DIR/optimizer/mine.yaml (--config-dir)

A class overridden without a name (optimizer._target_=torch.optim.NAdam) is stored under its
lower-cased class name (nadam). A sweep is checked whole before its first run.

A finished configuration (ok or diverged) is skipped (`already done: <dir>`); force=true re-runs
it into a new directory. A failed one is retried. Exit code: 0 when every run finished, 1 when one
failed, 2 on bad input (including settings an optimizer or task rejects), 130/143 when stopped. Top-level keys: steps, batch_size, eval_every, log_every, seed, device (auto|cpu|cuda),
precision (auto|fp32|bf16), grad_clip, runs_root, force, progress (auto|bar|lines|off).
"""


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, help=RUN_HELP)
def run(ctx: typer.Context) -> None:
    from bench.runner.interrupts import Stopped, outside_training

    args = list(ctx.args)
    try:
        with outside_training():  # SIGTERM/SIGUSR1 end start-up promptly too, not only training
            from bench.runner.preflight import preflight

            # a foreign _target_ gets a name override, so its runs are not stored under the yaml's name
            extra = guarded(preflight, args, derive_names=True)
            from bench.runner.main import run_command

            sys.argv = ["bench"] + args + extra
            code = guarded(run_command)
    except Stopped as exc:
        typer.echo(f"interrupted ({exc.name})", err=True)
        raise typer.Exit(128 + exc.signum) from None
    if code:  # a run failed: it said why in one line
        raise typer.Exit(code)


from bench.sweep import TUNE_HELP  # noqa: E402  (plain text; importing it costs nothing)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True}, help=TUNE_HELP)
def tune(ctx: typer.Context) -> None:
    from bench.sweep.tune import tune as run_tune

    code = guarded(run_tune, list(ctx.args))
    if code:
        raise typer.Exit(code)


@app.command("list")
def list_options(
    what: str = typer.Argument("optimizers", help="optimizers | tasks | schedules | loggers"),
) -> None:
    """List the choices of a config group, each with its one-line description."""
    from bench.listing import list_command

    guarded(list_command, what)


@app.command(short_help="Run a small real sweep (about two minutes, no downloads): leaderboard, plots, report.")
def demo(
    out: str = typer.Option("runs/demo", "--out", "-o", help="folder for runs/, plots/ and report.html"),
) -> None:
    """The whole product on a small real sweep, about two minutes on 2 CPU cores, no downloads:
    4 optimizers (SGD, Adam, AdamW, Lion) tuned with the same budget of 8 quasi-random trials on
    logistic regression and Rosenbrock, the best point re-run over 6 fresh seeds (enough for exact
    verdicts among 4 optimizers and 95% median intervals); then the leaderboard,
    <out>/plots and <out>/report.html. Re-running reuses finished runs; the run directories
    are in <out>/runs for `bench leaderboard --runs runs/demo/runs`."""
    from pathlib import Path

    from bench.demo import run_demo

    guarded(run_demo, Path(out))


@app.command()
def data(
    name: str = typer.Argument(..., help="cifar10 | shakespeare (fashion_mnist: names its system package)"),
    root: Optional[str] = typer.Option(None, help="where to put it (default: $BENCH_DATA, else ~/.cache/bench)"),
    url: Optional[str] = typer.Option(None, help="fetch from this address instead (a mirror or a file:// copy)"),
) -> None:
    """Download a data set once, verify it, and unpack it where its task looks by default."""
    from bench.tasks.download import fetch

    path = guarded(fetch, name, root, url)
    typer.echo(f"{name}: {path}")


RESULTS_EPILOG = """\b
Filters: task=NAME[,NAME] optimizer=NAME[,NAME] (or --task/--optimizer). Directories that are
not finished runs (running, crashed, corrupt, foreign) are listed once on stderr and skipped."""


@app.command(epilog=RESULTS_EPILOG, short_help="Per-task leaderboards: exact tests over seeds, Holm-controlled verdicts, intervals.")
def leaderboard(
    filters: Optional[List[str]] = typer.Argument(None, help="task=NAME / optimizer=NAME filters"),
    runs: str = typer.Option("runs", "--runs", "-r", help="runs root to read (runs_root of `bench run`)"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="only these tasks (comma-separated)"),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", "-o", help="only these optimizers (comma-separated)"),
    baseline: str = typer.Option(BASELINE, "--baseline", "-b", help="optimizer every other one is compared with"),
    fmt: str = typer.Option("table", "--format", "-f", help="table (rich) | md | csv | json (csv/json: raw numbers)"),
    measure: str = typer.Option("time", "--measure", help="time-to-target for the profile score: time | steps"),
    wide: bool = typer.Option(False, "--wide", help="table: every column, however wide (by default it fits the "
                                                    "terminal and says which columns it left out)"),
) -> None:
    """Per-task leaderboards, reality-check style: each optimizer at its tuned best, with trials
    used, n, and medians with distribution-free 95% intervals (from 6 seeds). Verdicts against the
    baseline (better / worse / not significant) come from an exact rank test over seeds, one Holm
    family per table, with the adjusted p, the effect size and the difference n can detect. Rows
    with too few seeds are listed unranked as `n too small`, with the command that adds seeds.

    \b
      bench leaderboard                             every task under ./runs
      bench leaderboard task=logreg --baseline sgd
      bench leaderboard --runs runs/demo/runs --format md > LEADERBOARD.md
      bench leaderboard --format json | jq '.leaderboard[0]'
    """
    from bench.results.commands import parse_filters, show_leaderboard

    tasks, optimizers = guarded(parse_filters, filters, task, optimizer)
    guarded(show_leaderboard, runs, tasks, optimizers, baseline, fmt, measure,
            explicit_baseline=baseline != BASELINE, wide=wide)


@app.command(epilog=RESULTS_EPILOG, short_help="Learning curves, LR sensitivity, performance profiles, tuning-budget curves.")
def plot(
    filters: Optional[List[str]] = typer.Argument(None, help="task=NAME / optimizer=NAME filters"),
    runs: str = typer.Option("runs", "--runs", "-r", help="runs root to read"),
    out: str = typer.Option("plots", "--out", help="directory for the PNG and SVG files (created if only that last "
                                                   "folder is missing; files of the same name are replaced)"),
    kind: Optional[List[str]] = typer.Option(None, "--kind", "-k",
                                             help="curves | lr | profile | budget | resources | all (repeatable)"),
    x: str = typer.Option("step", "--x", help="learning-curve x axis: step | time | items"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="only these tasks (comma-separated)"),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", "-o", help="only these optimizers"),
    measure: str = typer.Option("time", "--measure", help="performance profile on time | steps to target"),
) -> None:
    """Write figures as PNG and SVG, one colour per optimizer throughout: learning curves (median
    and 95% band over seeds), LR sensitivity (diverged marked), performance profile, tuning-budget
    curves, memory and step-time bars.

    \b
      bench plot                                    all kinds, into ./plots
      bench plot --kind curves --x time task=logreg
      bench plot --kind profile --kind budget --out figs --runs runs/demo/runs
    """
    from bench.results.commands import parse_filters, plot_command

    tasks, optimizers = guarded(parse_filters, filters, task, optimizer)
    kinds = [k.strip() for value in kind or [] for k in value.split(",") if k.strip()]
    guarded(plot_command, runs, tasks, optimizers, out, kinds, x, measure)


@app.command(epilog=RESULTS_EPILOG, short_help="One self-contained HTML report: leaderboards, figures, run metadata.")
def report(
    filters: Optional[List[str]] = typer.Argument(None, help="task=NAME / optimizer=NAME filters"),
    runs: str = typer.Option("runs", "--runs", "-r", help="runs root to read"),
    out: str = typer.Option("report.html", "--out", help="HTML file to write, in an existing directory; an earlier "
                                                         "bench report there is replaced, any other file only with --force"),
    force: bool = typer.Option(False, "--force", help="overwrite --out even if it is not a bench report"),
    baseline: str = typer.Option(BASELINE, "--baseline", "-b", help="optimizer every other one is compared with"),
    x: str = typer.Option("step", "--x", help="learning-curve x axis: step | time | items"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="only these tasks (comma-separated)"),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", "-o", help="only these optimizers"),
    measure: str = typer.Option("time", "--measure", help="performance profile on time | steps to target"),
) -> None:
    """Write one self-contained HTML report (opens offline; images inline): leaderboards, the
    across-task table, every figure, run metadata, skipped directories, and the commands that
    produced it all.

    \b
      bench report                                  ./runs → ./report.html
      bench report --runs runs/demo/runs --out runs/demo/report.html
      bench report task=logreg --baseline sgd --x time
    """
    from bench.results.commands import parse_filters, report_command

    tasks, optimizers = guarded(parse_filters, filters, task, optimizer)
    # the report records the command that produced it, rebuilt from what was parsed
    argv = ["bench", "report", *(filters or []), "--runs", runs, "--out", out]
    for flag, value, default in (("--baseline", baseline, BASELINE), ("--x", x, "step"), ("--task", task, None),
                                 ("--optimizer", optimizer, None), ("--measure", measure, "time")):
        if value != default:
            argv += [flag, value]
    guarded(report_command, runs, tasks, optimizers, out, baseline, x, measure,
            explicit_baseline=baseline != BASELINE, argv=argv, force=force)


@app.command(epilog=RESULTS_EPILOG, short_help="The results table (one row per run) as CSV or parquet.")
def export(
    filters: Optional[List[str]] = typer.Argument(None, help="task=NAME / optimizer=NAME filters"),
    runs: str = typer.Option("runs", "--runs", "-r", help="runs root to read"),
    out: str = typer.Option("-", "--out", help="file to write; - for CSV on stdout"),
    fmt: Optional[str] = typer.Option(None, "--format", "-f", help="csv | parquet (default: from the --out suffix)"),
    force: bool = typer.Option(False, "--force", help="overwrite --out if it exists"),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="only these tasks (comma-separated)"),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", "-o", help="only these optimizers"),
) -> None:
    """Write the results table, one row per finished run: run_id, task, optimizer, seed, status,
    metric, value, loss, steps/time to target, one hp/<name> column per hyperparameter, one
    task/<name> column per task setting the run's task reads, and the rest of summary.json
    (columns: README, "Results as a table").

    \b
      bench export --runs runs/demo/runs --out runs.parquet
      bench export task=logreg --format csv --out - | head
      bench export --out runs.csv --force             replace an earlier export
    """
    from bench.results.commands import parse_filters
    from bench.results.export import export_command

    tasks, optimizers = guarded(parse_filters, filters, task, optimizer)
    guarded(export_command, runs, tasks, optimizers, fmt, out, force)


@app.command(short_help="Regression gate for CI: a small sweep vs a committed baseline.")
def check(
    sweep: str = typer.Argument("ci", help="check sweep: a name in bench/conf/check, or a path to a yaml file"),
    baseline: Optional[str] = typer.Option(None, "--baseline", "-b",
                                           help="baseline JSON (default: <sweep>_baseline.json beside the sweep yaml)"),
    runs: Optional[str] = typer.Option(None, "--runs", "-r", help="read finished runs from this root instead of running"),
    runs_root: Optional[str] = typer.Option(None, "--runs-root",
                                            help="where the sweep's runs go (default: runs/check/<sweep>-<code hash>)"),
    update: bool = typer.Option(False, "--update", help="write the baseline from these results instead of failing"),
    threads: int = typer.Option(1, "--threads", help="torch threads per run (1: results do not depend on the machine)"),
    fmt: str = typer.Option("table", "--format", "-f", help="table | md | json"),
) -> None:
    """Regression gate for CI: run a small sweep in this process (or read finished runs) and
    compare each task/optimizer cell with a committed baseline — final metric and steps-to-target
    over seeds, each by a one-sided exact rank test, Holm-adjusted across the whole gate at a
    stated family-wise false-alarm rate (`alpha:` in the sweep, 5% by default), plus a practical
    floor on the change (the rule, the regression size it can detect and bit-identical cells are
    printed)
    Exit 0 when every cell holds, 1 when one regressed (table), 2 on bad input.

    \b
      bench check                   the ci sweep against its committed baseline
      bench check ci --update       accept the current results as the new baseline
      bench check mine.yaml -f md   markdown, e.g. >> "$GITHUB_STEP_SUMMARY"
      bench check ci --runs DIR     judge finished runs made elsewhere
    """
    from bench.results.check import render
    from bench.sweep.check_sweep import check as run_check

    if fmt not in ("table", "md", "json"):
        fail(f"unknown --format {fmt!r}; use table, md or json")
    if threads < 1:
        fail(f"--threads must be >= 1, got {threads}")
    result = guarded(run_check, sweep, baseline, runs, runs_root, update, threads,
                     log=lambda line: typer.echo(line, err=True))
    text = render(result, fmt)
    if text is not None:
        typer.echo(text)
    if update:
        typer.echo(f"wrote {result.baseline_path}", err=True)
    raise typer.Exit(result.exit_code)


from bench.perf.cli import perf_app  # noqa: E402  (typer only; the work is imported lazily)

app.add_typer(perf_app, name="perf")


@app.command(short_help="Reproduce a claim from the optimizer literature with one command.")
def experiment(
    args: Optional[List[str]] = typer.Argument(None, help="NAME (or experiment=NAME); scale=... is also accepted"),
    scale: str = typer.Option("cpu", "--scale", "-s", help="cpu (this machine, < 15 min) | gpu (real sizes) | test (seconds)"),
    runs: Optional[str] = typer.Option(None, "--runs", "-r", help="runs root (default: runs/experiments/<name>-<scale>)"),
    write_docs: bool = typer.Option(False, "--write-docs",
                                    help="write the section into the tracked docs/CLAIMS.md and its figures into "
                                    "docs/claims/ instead of the runs root (not at --scale test)"),
    docs: Optional[str] = typer.Option(None, "--docs", help="write CLAIMS.md and claims/*.png into this folder "
                                       "(default: the runs root; docs with --write-docs)"),
    analyse_only: bool = typer.Option(False, "--analyse-only", help="skip the sweep; analyse the runs already there"),
) -> None:
    """Reproduce a claim from the literature with one command: run its sweep (finished runs are
    reused), then write its figures and a verdict with n and 95% CIs into a CLAIMS.md — the runs
    root's, unless --write-docs asks for the tracked docs/CLAIMS.md (the command printed under
    each of its sections). Without a name, list the experiments.

    \b
      bench experiment                              list them
      bench experiment edge_of_stability            the CPU preset (< 15 min on 2 cores)
      bench experiment edge_of_stability --write-docs   the same, into docs/CLAIMS.md
      bench experiment lion_memory --scale test     seconds; writes under its runs root only
      bench experiment schedule_free --scale gpu    real sizes, for a GPU
    """
    from bench.experiments.command import experiment_command

    experiment_command(args or [], scale, runs, write_docs, docs, analyse_only)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
