"""Device slots for parallel trials on one node: k trials per GPU, or one per CPU core.

With `launcher=parallel` on a node with G GPUs, G x k worker processes run trials side by side,
k = `distributed.trials_per_gpu` (default 1; small tasks leave a GPU mostly idle, so several
share one). A trial with `device=auto` claims a slot: an exclusive flock on one lock file per
(GPU, slot) in a per-machine directory, held until the run ends. Slots are handed out slot 0 of
every GPU first, so trials spread over the GPUs before they double up. The kernel drops the lock
when the process dies, so a crashed trial frees its slot. Slots, not job numbers, decide the
device: job k and job k+G need not run at the same time, but two trials holding slots always do.
Without GPUs the same mechanism gives one trial per CPU core: the trial's process is pinned to
its core and uses one torch thread.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

# torch is imported where it is used: importing this module registers `${bench.jobs:}` for
# launcher=parallel, before Hydra composes, and must stay as cheap as `bench --help`.


class DeviceSlot:
    def __init__(self, device: str, fd: int, name: str = ""):
        self.device, self._fd, self.name = device, fd, name

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def lock_directory() -> Path:
    """Per machine and user: every sweep on this node shares it, whatever its runs root."""
    path = Path(tempfile.gettempdir()) / f"bench-device-slots-{os.getuid()}"
    path.mkdir(exist_ok=True)
    return path


def _try_lock(path: Path) -> int | None:
    from bench.runner.rundir import try_lock  # the one flock-and-pid helper

    return try_lock(path)


def claim(devices: list[tuple[str, str]], lock_dir: Path, timeout_s: float | None = None,
          poll_s: float = 0.2) -> DeviceSlot | None:
    """The first free device of `devices` ((device, identity) pairs), waiting while all are
    taken; None after `timeout_s`. The identity (a GPU's UUID) names the lock, so that processes
    with different CUDA_VISIBLE_DEVICES masks still agree on which physical GPU is taken."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        for device, identity in devices:
            fd = _try_lock(lock_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', identity)}.lock")
            if fd is not None:
                return DeviceSlot(device, fd, identity)
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


def gpu_slots(gpus: list[tuple[str, str]], per_device: int) -> list[tuple[str, str]]:
    """(device, lock name) for every (GPU, slot), slot 0 of every GPU first."""
    return [(device, identity if k == 0 else f"{identity}-slot{k}") for k in range(per_device)
            for device, identity in gpus]


def _cpu_cores() -> list[tuple[str, str]]:
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    return [("cpu", f"cpu-core{c}") for c in cores]


def _pin_to_core(lock_name: str) -> None:
    import torch

    core = int(lock_name.rsplit("core", 1)[1])
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)


def visible_gpus() -> list[tuple[str, str]]:
    import torch

    out = []
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        out.append((f"cuda:{i}", str(uuid) if uuid is not None else f"cuda{i}"))
    return out


def place(requested: str, distributed: bool, per_device: int | None = None) -> tuple[str, DeviceSlot | None]:
    """The device for one run: a claimed slot when `device=auto` and trials run side by side
    (`per_device` is launcher=parallel's trials per GPU; None outside it) or on a multi-GPU node,
    unless the run is itself spread over the GPUs by DDP; otherwise the request as given."""
    if requested != "auto" or distributed:
        return requested, None
    gpus = visible_gpus()
    if gpus and (len(gpus) > 1 or (per_device or 1) > 1):
        slot = claim(gpu_slots(gpus, per_device or 1), lock_directory())
        return slot.device, slot
    if not gpus and per_device is not None:  # launcher=parallel on CPUs: one trial per core
        cores = _cpu_cores()
        slot = claim(cores, lock_directory())
        _pin_to_core(slot.name)
        return slot.device, slot
    return requested, None


def parallel_jobs(per_device: int = 1) -> int:
    """Workers for `launcher=parallel`: trials per GPU x GPUs when there are GPUs, else one per
    CPU core."""
    import torch

    per_device = int(per_device)
    if per_device < 1:
        from bench import BenchError

        raise BenchError(f"distributed.trials_per_gpu must be an integer >= 1, got {per_device}")
    return torch.cuda.device_count() * per_device or len(_cpu_cores())


if not OmegaConf.has_resolver("bench.jobs"):
    OmegaConf.register_new_resolver("bench.jobs", parallel_jobs)
