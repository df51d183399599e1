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


# Peak memory of one run. On CUDA the allocator's peak, reset when the run starts. On CPU the
# process's resident-set high-water mark (VmHWM), which Linux resets when "5" is written to
# /proc/self/clear_refs: so a run in an in-process sweep does not inherit the peak of the runs
# before it. Where that file cannot be written (not Linux, a locked-down kernel), the figure is
# the process-wide peak (ru_maxrss) and `reset_peak_memory` returns False.

def reset_peak_memory(device: torch.device) -> bool:
    """Start a per-run peak; returns whether the figure read afterwards is this run's own."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_memory_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB; process-wide
