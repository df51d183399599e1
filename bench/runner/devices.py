"""One GPU per trial when parallel trials share a multi-GPU node.

With `launcher=parallel` on a node with G GPUs, G worker processes run trials side by side. A
trial with `device=auto` claims a device slot: an exclusive flock on one lock file per GPU in a
per-machine directory, held until the run ends. The kernel drops the lock when the process dies,
so a crashed trial frees its GPU. Slots, not job numbers, decide the device: job k and job k+G
need not run at the same time, but two trials holding slots always do, so no GPU is shared.
"""

from __future__ import annotations

import fcntl
import os
import re
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf


class DeviceSlot:
    def __init__(self, device: str, fd: int):
        self.device, self._fd = device, fd

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
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())  # for people asking "who is on GPU 3?"
    return fd


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
                return DeviceSlot(device, fd)
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(poll_s)


def visible_gpus() -> list[tuple[str, str]]:
    out = []
    for i in range(torch.cuda.device_count()):
        uuid = getattr(torch.cuda.get_device_properties(i), "uuid", None)
        out.append((f"cuda:{i}", str(uuid) if uuid is not None else f"cuda{i}"))
    return out


def place(requested: str, distributed: bool) -> tuple[str, DeviceSlot | None]:
    """The device for one run: a claimed GPU slot when `device=auto` finds several GPUs (and the
    run is not itself spread over them by DDP); otherwise the request as given."""
    if requested != "auto" or distributed or torch.cuda.device_count() < 2:
        return requested, None
    slot = claim(visible_gpus(), lock_directory())
    return slot.device, slot


def parallel_jobs() -> int:
    """Workers for `launcher=parallel`: one per GPU when there are GPUs, else one per CPU core."""
    return torch.cuda.device_count() or os.cpu_count() or 1


if not OmegaConf.has_resolver("bench.jobs"):
    OmegaConf.register_new_resolver("bench.jobs", parallel_jobs)
