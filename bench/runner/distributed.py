"""One run on N processes with DistributedDataParallel.

    torchrun --nproc_per_node=4 -m bench run task=cifar10 optimizer=lion
    bench run task=cifar10 optimizer=lion distributed.nproc=4      # starts torchrun itself

Every rank builds the same task, model and optimizer from the same seed and holds whole parameters
(so optimizers that need whole matrices, Muon, Shampoo and SWAN, step as on one device). The
task's global batch is split across ranks (`ShardedTask`); its loss runs through torch's
DistributedDataParallel around `TaskLoss`, a module whose forward is the task's loss, so DDP's
bucketed, overlapped all-reduce averages every gradient the loss produces, including those of
parameters the loss reads directly (logreg's penalty, the synthetic functions). Each update
equals the single-process update on the whole batch (a mean loss over equal shards is the mean of
the shards' means). NCCL between GPUs, gloo on CPUs. Only rank 0 writes the run directory; the
logged loss is the mean over ranks.
Under a submitit job with several tasks per node, the rank comes from submitit's environment.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist
from omegaconf import DictConfig

from bench import BenchError


@dataclass
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    ddp: bool = False  # a process group exists (started by torchrun, even with one process)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, value_on_main: Any) -> Any:
        """Rank 0's value, on every rank (rank 0's decisions: skip, resume, which directory)."""
        if self.size == 1:
            return value_on_main
        box = [value_on_main if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        reduced = tensor.detach().clone()
        dist.all_reduce(reduced)
        return reduced / self.size

    def any(self, flag: bool) -> bool:
        value = torch.tensor([1.0 if flag else 0.0], device=self._device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())

    def device(self, requested: str) -> str:
        """Each rank on its own GPU when there are GPUs; all on the CPU otherwise."""
        if self.ddp and requested in ("auto", "cuda") and torch.cuda.is_available():
            return f"cuda:{self.local_rank}"
        return requested

    def close(self) -> None:
        """Nothing to do per run: the process group lives until the process exits (see
        `init_world`), so the runs of a multirun under torchrun (`-m bench run -m ...`) share it;
        a group destroyed and initialised again on torchrun's store hangs."""

    @property
    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def _from_submitit() -> None:
    """A submitit job with several tasks: export the variables torchrun would have set."""
    try:
        import submitit

        env = submitit.JobEnvironment()
    except Exception:  # not inside a submitit job
        return
    if env.num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)


def init_world(device: str) -> World:
    """The process group this process belongs to (a world of one outside torchrun)."""
    if "WORLD_SIZE" not in os.environ and "SUBMITIT_EXECUTOR" in os.environ:
        _from_submitit()
    if "WORLD_SIZE" not in os.environ:
        return World()
    # under torchrun even a world of one runs DDP (`torchrun --nproc_per_node=1`: a 1-GPU NCCL check)
    world = World(rank=int(os.environ["RANK"]), size=int(os.environ["WORLD_SIZE"]),
                  local_rank=int(os.environ.get("LOCAL_RANK", "0")), ddp=True)
    use_cuda = world.device(device).startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
        atexit.register(dist.destroy_process_group)
    return world


def should_launch(cfg: DictConfig) -> bool:
    return int(cfg.distributed.nproc) > 1 and "WORLD_SIZE" not in os.environ


def launch(cfg: DictConfig, overrides: list[str] | None, run_dir: Path) -> dict[str, Any]:
    """`distributed.nproc=N`: run this same command under torchrun and return rank 0's summary."""
    if overrides is None:
        raise BenchError("distributed.nproc needs the run's overrides; start it with "
                         "`torchrun --nproc_per_node=N -m bench run ...` instead")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           f"--nproc_per_node={int(cfg.distributed.nproc)}", "-m", "bench", "run", *overrides]
    print(f"distributed: {' '.join(cmd[2:])}", flush=True)
    code = subprocess.run(cmd).returncode
    from bench.runner.rundir import read_summary  # here to keep this module free of run-dir logic

    summary = read_summary(run_dir)
    if summary is None:
        return {"status": "failed", "error": f"torchrun exited with code {code} and wrote no summary",
                "run_dir": str(run_dir)}
    return {**summary, "run_dir": str(run_dir)}


def _shard(batch: Any, rank: int, size: int) -> Any:
    if isinstance(batch, torch.Tensor) and batch.dim() > 0:
        if batch.shape[0] % size:
            raise BenchError(f"a batch of {batch.shape[0]} rows does not split evenly over {size} ranks; "
                             f"choose batch_size divisible by {size}")
        return batch.chunk(size)[rank]
    if isinstance(batch, (tuple, list)):
        return type(batch)(_shard(b, rank, size) for b in batch)
    if isinstance(batch, dict):
        return {k: _shard(v, rank, size) for k, v in batch.items()}
    return batch


class TaskLoss(torch.nn.Module):
    """The module DDP wraps: forward(batch) is the task's loss of the model on that batch."""

    def __init__(self, task, model: torch.nn.Module):
        super().__init__()
        self.model, self._loss = model, task.loss

    def forward(self, batch: Any) -> torch.Tensor:
        return self._loss(self.model, batch)


class ShardedTask:
    """A task whose batches are this rank's slice of the global batch and whose loss goes through
    DDP (`wrap`, once the model exists); everything else is the wrapped task's. Every rank
    evaluates rank 0's model, so all reach the same decisions (diverged, target reached) at the
    same step."""

    def __init__(self, task, world: World):
        self._task, self._world = task, world
        self._ddp: torch.nn.parallel.DistributedDataParallel | None = None

    def __getattr__(self, name: str):
        return getattr(self._task, name)

    @property
    def unwrapped(self):
        """The task itself: what measurements of the model (probes) use, on the global batch."""
        return self._task

    def wrap(self, model: torch.nn.Module, device: torch.device) -> None:
        """DDP around this model's loss; it starts every rank from rank 0's parameters and buffers."""
        ids = [device.index if device.index is not None else torch.cuda.current_device()] \
            if device.type == "cuda" else None
        self._ddp = torch.nn.parallel.DistributedDataParallel(TaskLoss(self._task, model), device_ids=ids)

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        if self._ddp is None or model is not self._ddp.module.model:  # not the trained model: no sync
            return self._task.loss(model, batch)
        return self._ddp(batch)

    def no_sync(self):
        """Backward passes inside accumulate gradients locally (no all-reduce): the warm-up,
        whose gradients are discarded. A task's own gradient accumulation (LLaMA's `grad_accum`)
        back-propagates its first micro-batches inside the loss, that is inside DDP's forward,
        where DDP's reducer does not yet expect gradients: they accumulate locally as under
        no_sync, and the last micro-batch's backward all-reduces the sum (tested equal to one
        process)."""
        return self._ddp.no_sync()

    def batches(self, start: int = 0) -> Iterator[Any]:
        for batch in self._task.batches(start):
            yield _shard(batch, self._world.rank, self._world.size)

    def items_per_batch(self, batch: Any) -> int:
        return self._task.items_per_batch(batch) * self._world.size

    def evaluate(self, model: torch.nn.Module) -> dict[str, float]:
        with torch.no_grad():
            for buffer in model.buffers():  # e.g. BatchNorm statistics, which ranks gather apart
                dist.broadcast(buffer, src=0)
        return self._task.evaluate(model)


def shard_task(task, world: World):
    return ShardedTask(task, world) if world.ddp else task


def wrap_model(task, model: torch.nn.Module, device: torch.device) -> None:
    """Put the trained model's loss under DDP (a sharded task only; one process needs nothing)."""
    if isinstance(task, ShardedTask):
        task.wrap(model, device)
