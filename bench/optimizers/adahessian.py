"""AdaHessian (Yao et al. 2021, "ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning",
Algorithm 1): Adam whose second moment tracks a Hutchinson estimate of the Hessian diagonal.

    D = z * (H z),  z Rademacher                         E[D] = diag(H); one Hessian-vector product
    D = mean over the kernel's spatial dims of |D|       conv kernels only (Sec. 3.3, spatial averaging)
    m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) D^2
    p = p - lr (m / (1 - beta1^t) / ((v / (1 - beta2^t))^(k/2) + eps) + weight_decay p)

H z needs the graph of g, so the class declares `needs_hvp` and the runner calls
backward(create_graph=True). z comes from a private generator seeded by `seed`, so the training
data's random stream is untouched (seed=None draws from torch's global generator instead).
`update_period` > 1 reuses D between estimates. State: m, v, D: 12 bytes per fp32 parameter.
"""

from __future__ import annotations

import torch

from bench.optimizers import evaluate_closure


class AdaHessian(torch.optim.Optimizer):
    needs_hvp = True
    implementation = "loop"

    def __init__(self, params, lr: float = 0.15, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-4,
                 weight_decay: float = 0.0, hessian_power: float = 1.0, update_period: int = 1,
                 seed: int | None = 0):
        if lr <= 0 or eps < 0 or not 0 < hessian_power <= 1 or update_period < 1:
            raise ValueError(f"invalid AdaHessian hyperparameters: lr={lr}, eps={eps}, "
                             f"hessian_power={hessian_power}, update_period={update_period}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      hessian_power=hessian_power))
        self.update_period = update_period
        self.seed = seed
        self._generators: dict[torch.device, torch.Generator] = {}
        self._steps = 0

    def _rademacher(self, p: torch.Tensor) -> torch.Tensor:
        gen = None
        if self.seed is not None:
            if p.device not in self._generators:
                self._generators[p.device] = torch.Generator(p.device).manual_seed(self.seed)
            gen = self._generators[p.device]
        return torch.randint(0, 2, p.shape, generator=gen, device=p.device).to(p.dtype) * 2 - 1

    def _hessian_diagonal(self, params: list[torch.Tensor]) -> None:
        grads = [p.grad for p in params]
        if not all(g.requires_grad for g in grads):
            raise RuntimeError("AdaHessian needs loss.backward(create_graph=True) (the needs_hvp capability)")
        zs = [self._rademacher(p) for p in params]
        with torch.enable_grad():
            hzs = torch.autograd.grad(grads, params, grad_outputs=zs)
        for p, z, hz in zip(params, zs, hzs, strict=True):
            d = z * hz
            if d.dim() == 4:  # conv kernel: one curvature value per (out, in) channel pair
                d = d.abs().mean(dim=(2, 3), keepdim=True).expand_as(d)
            self.state[p]["hessian"] = d.detach().clone()

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if self._steps % self.update_period == 0:
            self._hessian_diagonal(params)
        self._steps += 1
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if "exp_avg" not in state:
                    state.update(step=0, exp_avg=torch.zeros_like(p), exp_hessian_diag_sq=torch.zeros_like(p))
                state["step"] += 1
                t = state["step"]
                g = p.grad.detach()
                state["exp_avg"].lerp_(g, 1 - beta1)
                d = state["hessian"]
                state["exp_hessian_diag_sq"].mul_(beta2).addcmul_(d, d, value=1 - beta2)
                denom = (state["exp_hessian_diag_sq"] / (1 - beta2**t)).pow(group["hessian_power"] / 2)
                p.mul_(1 - group["lr"] * group["weight_decay"])
                p.addcdiv_(state["exp_avg"], denom.add_(group["eps"]), value=-group["lr"] / (1 - beta1**t))
        return loss

    def state_dict(self) -> dict:
        out = super().state_dict()
        out["hutchinson"] = dict(steps=self._steps,
                                 generators={str(k): g.get_state() for k, g in self._generators.items()})
        return out

    def load_state_dict(self, state_dict: dict) -> None:
        extra = state_dict.get("hutchinson", {})
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "hutchinson"})
        self._steps = extra.get("steps", 0)
        for device, rng_state in extra.get("generators", {}).items():
            device = torch.device(device)
            self._generators[device] = torch.Generator(device)
            self._generators[device].set_state(rng_state)
