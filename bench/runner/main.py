"""Config → objects → one run → a run directory. `execute(cfg)` is the whole story; the
`@hydra.main` entry point wraps it for single runs and multiruns alike, and `bench tune` calls it
directly for many trials in one process.

A run directory is claimed with a lock, so parallel workers sharing a runs root never run the
same configuration twice; a finished run is skipped, an interrupted one resumes from its
checkpoint, one that died without a checkpoint starts over.
"""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.config import CONF_DIR, check_arguments, constructor_kwargs, resolve_target, run_id
from bench.optimizers import build_optimizer, implementation, state_bytes
from bench.runner import devices, distributed, rundir
from bench.runner.checkpoint import Checkpointer, seed_everything
from bench.runner.distributed import World
from bench.runner.interrupts import Interrupts
from bench.runner.loop import LoopSettings, train
from bench.runner.probes import build_probes
from bench.runner.sinks import make_sinks
from bench.runner.validate import validate


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchError(f"device={name} but no CUDA device is available; use device=cpu or device=auto")
    try:
        return torch.device(name)
    except RuntimeError as exc:
        raise BenchError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from exc


def build_task(cfg: DictConfig, device: torch.device):
    cls = resolve_target(cfg.task, "task")
    kwargs = constructor_kwargs(cfg.task)
    kwargs.update(seed=cfg.seed, device=device, batch_size=cfg.batch_size)
    check_arguments(cls, kwargs, "task", cfg.task.name)
    return cls(**kwargs)


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    if precision in ("fp32", "auto"):
        return None
    raise BenchError(f"unknown precision {precision!r}; use auto, fp32 or bf16")


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB; process-wide


def _hydra_overrides() -> list[str] | None:
    from hydra.core.hydra_config import HydraConfig

    return list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else None


def execute(cfg: DictConfig, overrides: list[str] | None = None) -> dict[str, Any]:
    """Run one configuration into its run directory and return the summary.

    A finished run with the same semantic config is not repeated (status "skipped"). `overrides`
    (the command's Hydra overrides; read from Hydra when omitted) are needed only to start a
    `distributed.nproc=N` run under torchrun."""
    validate(cfg)
    rid = run_id(cfg)
    root = rundir.ensure_root(Path(cfg.runs_root))
    existing = root / rid
    done = rundir.read_summary(existing)
    if done is not None and done.get("status") in rundir.FINISHED and not cfg.force:
        print(f"already done: {existing}  (force=true runs it again into a new directory)")
        return {**done, "status": "skipped", "run_dir": str(existing)}
    if distributed.should_launch(cfg):
        return distributed.launch(cfg, overrides if overrides is not None else _hydra_overrides(), existing)

    world = distributed.init_world(cfg.device)
    requested, slot = devices.place(world.device(cfg.device), distributed=world.size > 1)
    try:
        return _execute(cfg, rid, root, world, resolve_device(requested))
    finally:
        if slot is not None:
            slot.release()
        world.close()


def _build(cfg: DictConfig, device: torch.device, world: World):
    task = distributed.shard_task(build_task(cfg, device), world)
    model = task.model()
    distributed.sync_gradients(model, world)
    optimizer, caps = build_optimizer(cfg.optimizer, model)
    if world.size > 1 and caps.needs_hvp:
        raise BenchError(f"optimizer {cfg.optimizer.name} needs Hessian-vector products, which distributed runs "
                         "do not support here; run it on one device")
    schedule = instantiate(cfg.schedule)
    total = int(cfg.steps)  # read once: a config lookup (an interpolation) costs more than a logreg step
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s, total))
    return task, model, optimizer, caps, scheduler


def _claim(cfg: DictConfig, root: Path, rid: str) -> tuple[rundir.RunLock | None, dict[str, Any]]:
    """Pick and lock this run's directory (rank 0 only)."""
    existing = root / rid
    if cfg.force and rundir.read_summary(existing) is not None:
        run_dir = rundir.fresh_directory(root, rid)
    else:
        existing.mkdir(exist_ok=True)
        run_dir = existing
    lock = rundir.RunLock(run_dir)
    if not lock.acquire():
        return None, {"action": "busy", "run_dir": str(run_dir)}
    # Another worker may have finished it between our first look and the lock.
    done = rundir.read_summary(run_dir)
    if done is not None and done.get("status") in rundir.FINISHED and not (cfg.force and run_dir != existing):
        lock.release()
        return None, {"action": "done", "run_dir": str(run_dir), "summary": done}
    return lock, {"action": "run", "run_dir": str(run_dir)}


def _execute(cfg: DictConfig, rid: str, root: Path, world: World, device: torch.device) -> dict[str, Any]:
    # Build everything before touching the runs root, so bad input leaves no trace. Any other
    # exception (a constructor rejecting a sampled hyperparameter) is this configuration's
    # result: it is recorded below as a failed run, and a sweep goes on.
    seed_everything(cfg.seed)
    built, build_error = None, None
    try:
        built = _build(cfg, device, world)
    except BenchError:
        raise
    except Exception as exc:
        if os.environ.get("BENCH_DEBUG"):
            raise
        build_error = f"{type(exc).__name__}: {exc}"

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
            return _record_build_failure(cfg, rid, run_dir, device, build_error, write=world.is_main)
        return _run(cfg, rid, run_dir, world, device, *built)
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
        "trial": tune.get("trial"), "looks": tune.get("looks"),
    }


def _record_build_failure(cfg, rid: str, run_dir: Path, device, error: str, write: bool) -> dict[str, Any]:
    task_cls = resolve_target(cfg.task, "task")
    summary = {**_header(cfg, rid, task_cls.metric, task_cls.mode, getattr(task_cls, "optimum", None)),
               "status": "failed", "error": error, "steps": 0, "env": rundir.environment(device),
               "started_at": time.time(), "finished_at": time.time(), "run_dir": str(run_dir)}
    if write:
        rundir.write_config(run_dir / "config.yaml", OmegaConf.to_container(cfg, resolve=True))
        rundir.write_json_atomic(run_dir / "summary.json", summary)
        print(f"failed: {run_dir}: {error}", file=sys.stderr)
    return summary


def _run(cfg, rid, run_dir: Path, world: World, device, task, model, optimizer, caps, scheduler) -> dict:
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
        mean_over_ranks=world.mean if world.size > 1 else None,
    )
    sinks: list = []
    if world.is_main:
        resolved = OmegaConf.to_container(cfg, resolve=True)
        rundir.write_config(run_dir / "config.yaml", resolved)
        # an earlier attempt's curve: all of it, or what it logged after the checkpoint
        rundir.trim_metrics(run_dir / "metrics.jsonl", resume["step"] if resume else None)
        sinks = make_sinks(cfg.logger.sinks, run_dir, rid, cfg.steps, cfg.progress, cfg.logger, resolved)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
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
    except Exception as exc:  # a failing trial is a result; the sweep goes on
        if os.environ.get("BENCH_DEBUG"):
            raise
        summary.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        print(f"failed: {run_dir}: {summary['error']}", file=sys.stderr)
    finally:
        summary.update(
            optimizer_state_bytes=state_bytes(optimizer), peak_mem_bytes=peak_memory_bytes(device),
            n_params=sum(p.numel() for p in model.parameters()), task_info=task.describe(),
            env=rundir.environment(device), finished_at=time.time(), run_dir=str(run_dir),
        )
        for sink in sinks:
            sink.finish(summary)
        if summary.get("status") in rundir.FINISHED:
            if world.is_main:
                rundir.write_json_atomic(run_dir / "summary.json", summary)
            checkpointer.discard()
        else:
            checkpointer.mark_interrupted(summary.get("interrupted_at"), interrupts.name)
    if summary["status"] == "interrupted":
        if world.is_main:
            print(f"interrupted: {run_dir} at step {summary['interrupted_at']} (checkpoint saved; run the same "
                  f"command again to resume)", file=sys.stderr)
        interrupts.deliver()
        return summary
    best = summary.get("best")
    shown = f"{task.metric}={best:.4g}" if isinstance(best, float) and math.isfinite(best) else ""
    if world.is_main:
        print(f"{summary['status']}: {run_dir}  {shown}")
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def hydra_entry(cfg: DictConfig) -> dict[str, Any]:
    try:
        return execute(cfg)
    except BenchError as exc:
        # SystemExit passes through Hydra's error reporting untouched: one line, exit code 2.
        print(f"error: {exc}", file=sys.stderr)
        if os.environ.get("BENCH_DEBUG"):
            raise
        sys.exit(2)
