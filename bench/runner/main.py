"""Config → objects → one run → a run directory. `execute(cfg)` is the whole story; the
`@hydra.main` entry point wraps it for single runs and multiruns alike."""

from __future__ import annotations

import math
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from bench import BenchError
from bench.config import CONF_DIR, check_arguments, constructor_kwargs, resolve_target, run_id
from bench.optimizers import build_optimizer, implementation, state_bytes
from bench.runner import rundir
from bench.runner.loop import LoopSettings, train
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
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def execute(cfg: DictConfig) -> dict[str, Any]:
    """Run one configuration into its run directory and return the summary.

    A finished run with the same semantic config is not repeated (status "skipped")."""
    validate(cfg)
    rid = run_id(cfg)
    root = rundir.ensure_root(Path(cfg.runs_root))
    existing = root / rid
    done = rundir.read_summary(existing)
    if done is not None and done.get("status") in rundir.FINISHED and not cfg.force:
        print(f"already done: {existing}  (force=true runs it again into a new directory)")
        return {**done, "status": "skipped", "run_dir": str(existing)}

    # Build everything before touching the runs root, so bad input leaves no trace.
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    task = build_task(cfg, device)
    model = task.model()
    optimizer, caps = build_optimizer(cfg.optimizer, model)
    schedule = instantiate(cfg.schedule)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s, cfg.steps))
    eval_every = cfg.eval_every or max(1, cfg.steps // 10)
    settings = LoopSettings(
        steps=cfg.steps, eval_every=eval_every, log_every=cfg.log_every or max(1, cfg.steps // 50),
        target=cfg.task.get("target"), grad_clip=cfg.grad_clip, autocast_dtype=autocast_dtype(cfg.precision, device),
    )

    if cfg.force and done is not None:
        run_dir = rundir.fresh_directory(root, rid)
    else:
        existing.mkdir(exist_ok=True)
        run_dir = existing
    lock = rundir.RunLock(run_dir)
    if not lock.acquire():
        print(f"running elsewhere: {run_dir}  (another process holds its lock; skipped)")
        return {"status": "skipped", "run_dir": str(run_dir)}
    try:
        return _run_locked(cfg, rid, run_dir, device, task, model, optimizer, caps, scheduler, settings)
    finally:
        lock.release()


def _run_locked(cfg, rid, run_dir: Path, device, task, model, optimizer, caps, scheduler, settings) -> dict:
    resolved = OmegaConf.to_container(cfg, resolve=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / "metrics.jsonl").unlink(missing_ok=True)  # an unfinished earlier attempt's curve
    sinks = make_sinks(cfg.logger.sinks, run_dir, rid, cfg.steps, cfg.progress, cfg.logger, resolved)
    summary: dict[str, Any] = {
        "run_id": rid, "task": cfg.task.name, "optimizer": cfg.optimizer.name, "seed": cfg.seed,
        "metric": task.metric, "mode": task.mode, "target": settings.target, "optimum": task.optimum,
        "hyperparameters": {k: v for k, v in constructor_kwargs(cfg.optimizer).items()},
        "schedule": cfg.schedule._target_.rsplit(".", 1)[-1], "batch_size": cfg.batch_size,
        "implementation": implementation(optimizer), "started_at": time.time(),
    }
    try:
        outcome = train(task, model, optimizer, scheduler, caps, settings, sinks, device)
        summary.update(outcome.__dict__)
    except KeyboardInterrupt:
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
        if summary.get("status") != "interrupted":
            rundir.write_json_atomic(run_dir / "summary.json", summary)
    best = summary.get("best")
    shown = f"{task.metric}={best:.4g}" if isinstance(best, float) and math.isfinite(best) else ""
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
