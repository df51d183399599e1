"""Tasks for the DDP tests, imported by the torchrun workers (the tests put this folder on
PYTHONPATH): logreg whose rank given by BENCH_TEST_RANK does something at the training loss call
given by BENCH_TEST_CALL (call 1 is the warm-up, call k + 1 computes step k)."""

import os
import signal

import torch

from bench.tasks.logreg import LogReg


class _Trigger(LogReg):
    calls = 0

    def loss(self, model, batch):
        if torch.is_grad_enabled() and os.environ.get("RANK") == os.environ.get("BENCH_TEST_RANK"):
            type(self).calls += 1
            if type(self).calls == int(os.environ.get("BENCH_TEST_CALL", "0")):
                self.trigger()
        return super().loss(model, batch)


class CrashingLogReg(_Trigger):
    def trigger(self):
        raise RuntimeError("rank crashed on purpose")


class PreemptedLogReg(_Trigger):
    def trigger(self):
        os.killpg(0, signal.SIGTERM)  # as a scheduler does: every process of the job, launcher included
