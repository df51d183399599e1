"""A stopwatch that only runs while the model trains; evaluation and logging are off the clock.

On CUDA, work is asynchronous: the clock synchronises the device whenever it is read or paused,
so the seconds it reports are work done, not work queued.
"""

from __future__ import annotations

import time

import torch


class Clock:
    def __init__(self, device: torch.device):
        self._sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
        self.elapsed = 0.0
        self._started: float | None = None

    def start(self) -> None:
        self._sync()
        self._started = time.perf_counter()

    def stop(self) -> float:
        self._sync()
        if self._started is not None:
            self.elapsed += time.perf_counter() - self._started
            self._started = None
        return self.elapsed

    def read(self) -> float:
        """Elapsed seconds, including the running interval (synchronises the device)."""
        if self._started is None:
            return self.elapsed
        self._sync()
        return self.elapsed + time.perf_counter() - self._started
