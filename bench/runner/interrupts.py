"""Stop signals become "checkpoint at the next step boundary, then stop".

Parameters are half-updated while `optimizer.step()` runs, so a signal must never end the loop
mid-step. The handler only records the signal and pulls `due` (the step at which the loop next
leaves its hot path) down to 0; the loop compares `step >= due` after every step anyway, so
catching signals costs the hot path nothing.

Handled: SIGINT (Ctrl-C), SIGTERM (kill, scancel, preemption), SIGUSR1 (SLURM `--signal`), and
submitit's preemption signal (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise) when a
submitit job has installed a handler for it. After the checkpoint and the run's bookkeeping,
`deliver()` does what the signal would have done without us: submitit's handler requeues the
job, a default handler ends the process. A second Ctrl-C stops at once, without a checkpoint.

Outside the training loop (start-up, building, between the runs of a sweep) nothing is half
done, so a stop signal ends the command at once: Ctrl-C raises KeyboardInterrupt as usual, and
`outside_training()` makes SIGTERM and SIGUSR1 raise `Stopped`, which the command turns into one
line and exit code 128 + the signal.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Any, Callable

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR1")


class Stopped(BaseException):
    """A stop signal outside the training loop. A BaseException, like KeyboardInterrupt, so that
    nothing that records a failing run as a result catches it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name


def _stop(signum: int, frame) -> None:
    raise Stopped(signum)


@contextlib.contextmanager
def outside_training():
    """SIGTERM and SIGUSR1 raise `Stopped` in this block (where nobody else handles them), so
    that they end a command promptly, with a message, wherever it is. The training loop's
    `Interrupts` takes over while it runs and hands back on exit."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for name in STOP_SIGNALS[1:]:  # SIGINT raises KeyboardInterrupt already
            sig = getattr(signal, name)
            if signal.getsignal(sig) is signal.SIG_DFL:
                previous[sig] = signal.signal(sig, _stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _preemption_signal() -> int | None:
    sig = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)
    return sig if sig is not None and sig not in [getattr(signal, s) for s in STOP_SIGNALS] else None


class Interrupts:
    """Use as a context manager around the training loop (handlers are restored on exit).

    `immediate=False` (DDP): the handler does not pull `due` down; ranks agree on stopping at the
    next scheduled event instead (see `requested`), so that all of them stop at the same step.
    """

    def __init__(self, immediate: bool = True, agree: Callable[[bool], bool] | None = None):
        self.due = 0  # the loop sets it to its next event step
        self.signum: int | None = None
        self.immediate = immediate
        self._agree = agree
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is not threading.main_thread():
            return self  # signal handlers can only be set from the main thread
        for name in STOP_SIGNALS:
            sig = getattr(signal, name)
            if signal.getsignal(sig) is not signal.SIG_IGN:  # e.g. SIGINT in a background job: leave it so
                self._previous[sig] = signal.signal(sig, self._handle)
        preempt = _preemption_signal()
        if preempt is not None and callable(signal.getsignal(preempt)):
            self._previous[preempt] = signal.signal(preempt, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum: int, frame) -> None:
        if signum == signal.SIGINT and self.signum == signal.SIGINT:
            raise KeyboardInterrupt  # Ctrl-C twice: the user does not want to wait
        self.signum = signum
        if self.immediate:
            self.due = 0

    def schedule(self, next_event: int) -> None:
        """Called by the loop after each event. If a signal slipped in between the loop's check
        and this assignment, keep `due` at 0 so that it is not lost."""
        self.due = next_event
        if self.signum is not None and self.immediate:
            self.due = 0

    def requested(self) -> bool:
        """Whether to stop now. Under DDP every rank calls this at the same step and they agree
        (any rank signalled → all stop)."""
        mine = self.signum is not None
        return self._agree(mine) if self._agree is not None else mine

    @property
    def name(self) -> str | None:
        return signal.Signals(self.signum).name if self.signum is not None else None

    def deliver(self) -> None:
        """Re-deliver the signal to whoever handled it before us (call after `__exit__`)."""
        if self.signum is None:
            return
        previous = self._previous.get(self.signum, signal.SIG_DFL)
        # `_stop` stands in for the default action: the run has already said why it stopped
        if callable(previous) and previous not in (signal.default_int_handler, _stop):
            previous(self.signum, None)  # e.g. submitit: requeue the job and exit
            return
        if self.signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + self.signum)
