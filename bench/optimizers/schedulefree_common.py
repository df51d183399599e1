"""What Schedule-Free SGD and AdamW share (Defazio et al. 2024, "The Road Less Scheduled"):
the averaging weights and the train/eval switch.

Three sequences live in two buffers: z (the base iterate, in state), x (the weighted average of z,
what is evaluated) and y = (1 - beta) z + beta x (where gradients are taken, held in the parameter
during training). `eval()` moves the parameter from y to x and `train()` back, so evaluation sees x
without an extra buffer; the runner calls them because the class declares `has_eval_mode`.

Averaging weight of step k (paper Sec. 4, "warmup and weighting"): c_{k+1} = w_k / sum_i w_i with
w_k = (k+1)^r * lr_max^weight_lr_power, lr_max the largest (warmed-up) lr seen so far.
"""

from __future__ import annotations

import torch

from bench.optimizers.elementwise import ElementwiseOptimizer


class ScheduleFreeBase(ElementwiseOptimizer):
    has_eval_mode = True

    def __init__(self, params, defaults: dict, compile):
        # Starts in train mode: the parameter holds y, which equals x = z before the first step.
        defaults.update(k=0, train_mode=True, weight_sum=0.0, lr_max=-1.0)
        self._now: dict[int, dict] = {}
        super().__init__(params, defaults, compile)

    def init_state(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        state = super().init_state(p)  # subclasses list "z" first in state_names; it starts at p
        state["z"] = p.detach().clone(memory_format=torch.preserve_format)
        return state

    def _beta(self, group: dict) -> float:
        raise NotImplementedError  # the interpolation weight between x and z (momentum / beta1)

    def begin_group(self, group: dict) -> None:
        if not group["train_mode"]:
            raise RuntimeError(f"{type(self).__name__}.step() called in eval mode; call optimizer.train() first")
        k = group["k"]
        warm = group["warmup_steps"]
        lr = group["lr"] * ((k + 1) / warm if k < warm else 1.0)
        group["lr_max"] = max(lr, group["lr_max"])
        weight = (k + 1) ** group["r"] * group["lr_max"] ** group["weight_lr_power"]
        group["weight_sum"] += weight
        ckp1 = weight / group["weight_sum"] if group["weight_sum"] > 0 else 0.0
        self._now[id(group)] = dict(lr=lr, ckp1=ckp1, k=k + 1)
        group["k"] = k + 1

    def _swap(self, to_train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == to_train:
                continue
            beta = self._beta(group)
            weight = 1 - beta if to_train else 1 - 1 / beta  # x -> y, or y -> x
            for p in group["params"]:
                if "z" in self.state[p]:
                    p.data.lerp_(self.state[p]["z"], weight)
            group["train_mode"] = to_train

    @torch.no_grad()
    def eval(self) -> None:
        self._swap(to_train=False)

    @torch.no_grad()
    def train(self) -> None:
        self._swap(to_train=True)
