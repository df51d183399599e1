"""Config → objects → one run → a run directory. `execute(cfg)` is the whole story; the
`@hydra.main` entry point wraps it for single runs and multiruns alike, and `bench tune` calls it
directly for many trials in one process.

A run directory is claimed with a lock, so parallel workers sharing a runs root never run the
same configuration twice; a finished run (ok or diverged) is skipped, an interrupted one resumes
from its checkpoint, one that died without a checkpoint starts over, and one that failed is
retried: its failure is recorded (a sweep counts it as a miss) but never taken as done.

How a failure ends `bench run`: a constructor that rejects the settings (ValueError/TypeError)
is bad input, reported before anything is written (exit 2); a crash while training is recorded
as a failed run (exit 1). In a sweep both are that configuration's result and the sweep goes on.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from bench import BenchError, schema
from bench.config import CONF_DIR, constructor_kwargs, resolve_target, run_id
from bench.runner import devices, rundir, sweepers  # devices registers ${bench.jobs:} for launcher=parallel
from bench.runner.build import Rejected, autocast_dtype, build_run, resolve_device
from bench.runner.validate import validate

# torch and everything that trains are imported where a run is built, not here: deciding that a
# run is `already done` (validate, compose the run id, read its summary) must not pay seconds of
# torch start-up (docs/BENCHMARKS.md, Start-up).
if TYPE_CHECKING:
    import torch

    from bench.runner.distributed import World


def peak_memory_bytes(device: torch.device) -> int:
    """This run's peak (reset when it starts; see runner/clock.py)."""
    from bench.runner.clock import peak_memory_bytes as peak

    return peak(device)


def _hydra_overrides() -> list[str] | None:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None


#: a single run that preflight composed: (its command's arguments, config, run directory, summary
#: when it has finished); `run_command` runs that config rather than composing it again
_checked: tuple[tuple[str, ...], DictConfig, Path, dict[str, Any] | None] | None = None


def finished_summary(cfg: DictConfig, args: list[str] | None = None) -> dict[str, Any] | None:
    """The summary of cfg's run when it has finished (ok or diverged) and force=true was not
    given: the run is `already done`. Reads one file and needs no torch, so the answer is quick.
    Preflight asks too, before it imports the classes of a run that will not be built; given the
    arguments of a single run, the config is remembered, so that `run_command` runs it (or answers
    `already done`) without Hydra composing the same config again."""
    global _checked
    run_dir = Path(cfg.runs_root) / run_id(cfg)
    try:
        done = None if cfg.get("force") else rundir.read_summary(run_dir)
    except OSError:  # runs_root is a file, unreadable, ...: `execute` says so in one line
        done = None
    done = done if rundir.is_finished(done) else None
    if args is not None:  # a later answer for the same arguments replaces an earlier one
        _checked = (tuple(args), cfg, run_dir, done)
    return done


def execute(cfg: DictConfig, overrides: list[str] | None = None, sweep: bool = True) -> dict[str, Any]:
    """Run one configuration into its run directory and return the summary.

    A finished run with the same semantic config is not repeated (status "skipped"); a failed
    one is retried. `overrides` (the command's Hydra overrides; read from Hydra when omitted) are
    needed only to start a `distributed.nproc=N` run under torchrun. `sweep`: settings that a
    constructor rejects are this configuration's result, recorded as a failed run; a single run
    (sweep=False) raises BenchError instead, before anything is written."""
    validate(cfg)
    rid = run_id(cfg)
    root = rundir.ensure_root(Path(cfg.runs_root))
    existing = root / rid
    done = finished_summary(cfg)
    if done is not None:
        print(f"already done: {existing}  (force=true runs it again into a new directory)")
        return {**done, "status": "skipped", "run_dir": str(existing)}
    from bench.runner import distributed

    if distributed.should_launch(cfg):
        return distributed.launch(cfg, overrides if overrides is not None else _hydra_overrides(), existing)

    world = distributed.init_world(cfg.device)
    requested, slot = devices.place(world.device(cfg.device), distributed=world.size > 1,
                                    per_device=cfg.distributed.get("trials_per_gpu"))  # launcher=parallel
    try:
        return _execute(cfg, rid, root, world, resolve_device(requested), sweep)
    finally:
        if slot is not None:
            slot.release()
        world.close()


def _claim(cfg: DictConfig, root: Path, rid: str) -> tuple[rundir.RunLock | None, dict[str, Any]]:
    """Pick and lock this run's directory (rank 0 only)."""
    existing = root / rid
    if cfg.force and rundir.is_finished(rundir.read_summary(existing)):
        run_dir = rundir.fresh_directory(root, rid)
    else:
        existing.mkdir(exist_ok=True)
        run_dir = existing
    lock = rundir.RunLock(run_dir)
    if not lock.acquire():
        return None, {"action": "busy", "run_dir": str(run_dir)}
    # Another worker may have finished it between our first look and the lock.
    done = rundir.read_summary(run_dir)
    if rundir.is_finished(done) and not (cfg.force and run_dir != existing):
        lock.release()
        return None, {"action": "done", "run_dir": str(run_dir), "summary": done}
    # An earlier attempt's failure: this attempt replaces it; until it ends, nothing claims a result.
    (run_dir / rundir.SUMMARY).unlink(missing_ok=True)
    return lock, {"action": "run", "run_dir": str(run_dir)}


def _execute(cfg: DictConfig, rid: str, root: Path, world: World, device: torch.device,
             sweep: bool) -> dict[str, Any]:
    # Build everything before touching the runs root, so bad input leaves no trace. In a sweep,
    # any other exception (a constructor rejecting a sampled hyperparameter) is this
    # configuration's result: it is recorded below as a failed run, and the sweep goes on.
    from bench.runner.checkpoint import seed_everything

    seed_everything(cfg.seed)
    built, build_error = None, None
    try:
        built = build_run(cfg, device, world)
    except BenchError:
        raise
    except Exception as exc:
        if os.environ.get("BENCH_DEBUG"):
            raise
        if isinstance(exc, Rejected) and not sweep:
            raise BenchError(str(exc)) from exc
        build_error = exc.error if isinstance(exc, Rejected) else f"{type(exc).__name__}: {exc}"

    lock, claim = _claim(cfg, root, rid) if world.is_main else (None, None)
    claim = world.share(claim)
    run_dir = Path(claim["run_dir"])
    if claim["action"] == "busy":
        print(f"running elsewhere: {run_dir}  (another process holds its lock; skipped)")
        return {"status": "skipped", "run_dir": str(run_dir)}
    if claim["action"] == "done":
        print(f"already done: {run_dir}")
        return {**claim["summary"], "status": "skipped", "run_dir": str(run_dir)}
    try:
        if build_error is not None:
            return _record_build_failure(cfg, rid, run_dir, device, build_error, world.is_main, sweep)
        return _run(cfg, rid, run_dir, world, device, sweep, *built)
    finally:
        if lock is not None:
            lock.release()


def _header(cfg: DictConfig, rid: str, metric: str, mode: str, optimum) -> dict[str, Any]:
    tune = cfg.get("tune") or {}
    return {
        "run_id": rid, "task": cfg.task.name, "optimizer": cfg.optimizer.name, "seed": cfg.seed,
        "metric": metric, "mode": mode, "target": cfg.task.get("target"), "optimum": optimum,
        "hyperparameters": dict(constructor_kwargs(cfg.optimizer)),
        "schedule": cfg.schedule._target_.rsplit(".", 1)[-1], "batch_size": cfg.batch_size,
        # `bench tune` provenance: which sweep, phase (search | seeds), study and trial ran this;
        # looks: how many looks a seeds=auto sweep planned, so the leaderboard tests at alpha/looks
        "sweep": tune.get("sweep"), "phase": tune.get("phase"), "study": tune.get("study"),
        "trial": tune.get("trial"), "looks": tune.get("looks"), "search": tune.get("search"),
    }


def _say_failed(run_dir: Path, error: str, sweep: bool) -> None:
    """One line on stderr. A sweep's line names the run; a single run's is the command's error."""
    if sweep:
        print(f"failed: {run_dir}: {error}", file=sys.stderr)
    else:
        print(f"error: run failed: {error} (recorded in {run_dir}; the same command retries it, "
              "BENCH_DEBUG=1 shows the traceback)", file=sys.stderr)


def _record_build_failure(cfg, rid: str, run_dir: Path, device, error: str, write: bool, sweep: bool) -> dict:
    task_cls = resolve_target(cfg.task, "task")
    summary = {**_header(cfg, rid, task_cls.metric, task_cls.mode, getattr(task_cls, "optimum", None)),
               "status": "failed", "error": error, "steps": 0, "env": rundir.environment(device),
               "started_at": time.time(), "finished_at": time.time(), "run_dir": str(run_dir)}
    if write:
        rundir.write_config(run_dir / rundir.CONFIG, OmegaConf.to_container(cfg, resolve=True))
        rundir.write_json_atomic(run_dir / rundir.SUMMARY, summary)
        _say_failed(run_dir, error, sweep)
    return summary


def _run(cfg, rid, run_dir: Path, world: World, device, sweep: bool, task, model, optimizer, caps, scheduler,
         schedule) -> dict:
    from bench.optimizers import implementation, state_bytes
    from bench.runner.checkpoint import Checkpointer, seed_everything
    from bench.runner.interrupts import Interrupts
    from bench.runner.loop import LoopSettings, train
    from bench.runner.probes import build_probes
    from bench.runner.sinks import make_sinks

    probes = build_probes(cfg.get("probe"), task, cfg.seed)  # before config.yaml: bad probe settings leave no run
    checkpointer = Checkpointer(run_dir, rid, model, optimizer, scheduler, writer=world.is_main)
    resume = checkpointer.load() if world.is_main else None
    if world.share(resume is not None) and not world.is_main:
        resume = checkpointer.load()
    eval_every = cfg.eval_every or max(1, cfg.steps // 10)
    settings = LoopSettings(
        steps=cfg.steps, eval_every=eval_every, log_every=cfg.log_every or max(1, cfg.steps // 50),
        target=cfg.task.get("target"), grad_clip=cfg.grad_clip, autocast_dtype=autocast_dtype(cfg.precision, device),
        checkpoint_every=cfg.get("checkpoint_every") or 0,
        mean_over_ranks=world.mean if world.size > 1 else None, schedule=schedule,
    )
    sinks: list = []
    if world.is_main:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        rundir.write_config(run_dir / rundir.CONFIG, resolved)
        # an earlier attempt's curve: all of it, or what it logged after the checkpoint
        rundir.trim_metrics(run_dir / rundir.METRICS, resume["step"] if resume else None)
        sinks = make_sinks(cfg.logger.sinks, run_dir, rid, cfg.steps, cfg.progress, cfg.logger, resolved)
    from bench.runner.clock import reset_peak_memory

    reset_peak_memory(device)  # peak_mem_bytes is this run's, not the process's so far
    summary: dict[str, Any] = {**_header(cfg, rid, task.metric, task.mode, task.optimum),
                               "implementation": implementation(optimizer), "started_at": time.time(),
                               # one-time kernel compilation in the constructor, off the training clock
                               "compile_time_s": getattr(optimizer, "compile_time_s", 0.0)}
    if world.size > 1:
        summary["world_size"] = world.size
    interrupts = Interrupts(immediate=world.size == 1, agree=world.any if world.size > 1 else None)
    # Training-time draws (dropout, noise) start from a known state whatever ran before: lazy
    # imports while building (scikit-learn draws from python's `random`) would otherwise make the
    # first run in a process differ from the next. Salted, so they do not replay the init draws.
    seed_everything(cfg.seed + 1_000_003)
    try:
        with interrupts:
            outcome = train(task, model, optimizer, scheduler, caps, settings, sinks, device,
                            checkpoint=checkpointer, resume=resume, stop=interrupts,
                            probes=probes)
        summary.update(asdict(outcome))
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, keeping the last checkpoint
        summary.update(status="interrupted")
        raise
    except Exception as exc:  # a failing trial is a result (a miss); the sweep goes on, a re-run retries it
        if os.environ.get("BENCH_DEBUG"):
            raise
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        if world.is_main:
            _say_failed(run_dir, summary["error"], sweep)
    finally:
        summary.update(
            optimizer_state_bytes=state_bytes(optimizer), peak_mem_bytes=peak_memory_bytes(device),
            n_params=sum(p.numel() for p in model.parameters()), task_info=task.describe(),
            env=rundir.environment(device), finished_at=time.time(), run_dir=str(run_dir),
        )
        for sink in sinks:
            sink.finish(summary)
        status = summary.get("status")
        if status in rundir.RESULTS and world.is_main:
            rundir.write_json_atomic(run_dir / rundir.SUMMARY, summary)
        if status in rundir.RESULTS:
            # a failed run keeps its last checkpoint: the retry resumes from it
            checkpointer.discard(keep_checkpoint=status == "failed")
        else:
            checkpointer.mark_interrupted(summary.get("interrupted_at"), interrupts.name)
    if summary["status"] == "interrupted":
        if world.is_main:
            print(f"interrupted: {run_dir} at step {summary['interrupted_at']} (checkpoint saved; run the same "
                  f"command again to resume)", file=sys.stderr)
        interrupts.deliver()
        return summary
    if summary["status"] == "failed":
        return summary  # said above
    best = summary.get("best")
    shown = f"{task.metric}={best:.4g}" if isinstance(best, float) and math.isfinite(best) else ""
    if world.is_main:
        print(f"{summary['status']}: {run_dir}  {shown}")
    return summary


def _multirun() -> bool:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


#: statuses of the runs this process ran for `bench run`: a single run's, or a multirun's as
#: collected from its jobs' markers once the multirun ends (`sweepers.collect_job_statuses`)
_statuses: list[str] = []
schema.register()  # before @hydra.main composes config.yaml, whose defaults name it


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_entry(cfg: DictConfig) -> float:
    """The task function: runs the config and returns its objective (for Hydra's sweepers)."""
    multirun = _multirun()
    try:
        summary = execute(cfg, sweep=multirun)
    except BenchError as exc:
        # SystemExit passes through Hydra's error reporting untouched: one line, exit code 2.
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("BENCH_DEBUG"):
            raise
        sys.exit(2)
    status = summary.get("status", "?")
    if multirun:
        sweepers.leave_job_status(status)
    else:
        _statuses.append(status)
    return sweepers.objective(summary, sweepers.sweeper_direction())


def run_command() -> int:
    """`bench run` (sys.argv holds its arguments): 0 when every run finished or was done already
    (a diverged run is a result), 1 when one failed, whichever launcher ran a multirun's jobs. A
    failed run is recorded, not done: the same command retries it."""
    global _checked
    _statuses.clear()
    checked, _checked = _checked, None
    args = tuple(sys.argv[1:])
    # only a plain single run: flags (-m, --cfg, --config-dir, ...) and Hydra's own settings need
    # Hydra's own handling
    plain = not any(a.startswith(("-", "hydra.", "+hydra.", "hydra/")) for a in args)
    if checked is not None and checked[0] == args and plain:
        _, cfg, run_dir, done = checked
        if done is not None:
            rundir.ensure_root(run_dir.parent)
            print(f"already done: {run_dir}  (force=true runs it again into a new directory)")
            return 0
        summary = execute(cfg, overrides=list(args), sweep=False)  # bad input: BenchError, one line
        return 1 if summary.get("status") == "failed" else 0
    hydra_entry()
    failed = _statuses.count("failed")
    if failed and len(_statuses) > 1:
        print(f"error: {failed} of {len(_statuses)} runs failed (each said why above; status failed in its "
              "summary.json); run the same command again to retry them", file=sys.stderr)
    return 1 if failed else 0
