"""A private random stream for package optimizers that draw from the global generators (Kron's
probes and numpy balancing coin, Sophia-H's Hutchinson probes).

Drawing from the global stream would make the optimizer's steps depend on everything else that draws
from it (data order, dropout) and make a resumed run differ from an uninterrupted one. The mixin runs
each `step` with the global torch (CPU and the parameters' CUDA devices) and numpy states swapped for
the optimizer's own, seeded by `seed`, and stores them in `state_dict()`. seed=None keeps the global
stream (the parity tests use it to feed both sides the same draws).
"""

from __future__ import annotations

import numpy as np
import torch

KEY = "private_rng"


class PrivateRandom:
    def _init_rng(self, seed: int | None) -> None:
        self.seed = seed
        self._rng = None if seed is None else self._fresh(seed)

    def _devices(self) -> list[int]:
        return sorted({p.device.index or 0 for g in self.param_groups for p in g["params"] if p.is_cuda})

    def _fresh(self, seed: int) -> dict:
        with torch.random.fork_rng(devices=self._devices()):
            torch.manual_seed(seed)
            torch_states = self._read_torch()
        return {"torch": torch_states, "numpy": np.random.RandomState(seed).get_state()}

    def _read_torch(self) -> dict:
        states = {"cpu": torch.get_rng_state()}
        states.update({f"cuda:{d}": torch.cuda.get_rng_state(d) for d in self._devices()})
        return states

    @torch.no_grad()
    def step(self, closure=None):
        if self._rng is None:
            return super().step(closure)
        saved_numpy = np.random.get_state()
        with torch.random.fork_rng(devices=self._devices()):
            torch.set_rng_state(self._rng["torch"]["cpu"])
            for name, state in self._rng["torch"].items():
                if name != "cpu":
                    torch.cuda.set_rng_state(state, int(name.split(":")[1]))
            np.random.set_state(self._rng["numpy"])
            try:
                loss = super().step(closure)
            finally:
                self._rng = {"torch": self._read_torch(), "numpy": np.random.get_state()}
                np.random.set_state(saved_numpy)
        return loss

    def state_dict(self) -> dict:
        out = super().state_dict()
        if self._rng is not None:
            out[KEY] = self._rng
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        if KEY in state_dict:
            self._rng = state_dict[KEY]
        super().load_state_dict({k: v for k, v in state_dict.items() if k != KEY})
