"""Prodigy (Mishchenko & Defazio 2024, "Prodigy: An Expeditiously Adaptive Parameter-Free Learner",
Algorithm 4, Adam form): Adam whose lr is multiplied by an estimate d of the distance to the
solution, grown from d0 as evidence accumulates. Written to match the authors' `prodigyopt`.

    lr_t = lr * d * [sqrt(1 - beta2^t) / (1 - beta1^t) if use_bias_correction]
    r = beta3 r + (d/d0) lr_t <g, x0 - x>;  s = beta3 s + (d/d0) lr_t g    (beta3 = sqrt(beta2))
    d_hat = d_coef * r / ||s||_1;  d = max(d, d_hat), growth limited to growth_rate per step
    m = beta1 m + (1 - beta1) d g;  v = beta2 v + (1 - beta2) d^2 g^2
    x = x (1 - weight_decay lr_t) - lr_t m / (sqrt(v) + d eps)

r and ||s||_1 run over every parameter, so all groups share one d (kept in each group for
state_dict). The paper's (1 - beta3) factors cancel in r / ||s||_1 and the code omits them; so do we.
The two sums come back to the host together, one sync per step. State: x0, s, m, v (16 B/param).
"""

from __future__ import annotations

import math

import torch

from bench.optimizers import evaluate_closure


class Prodigy(torch.optim.Optimizer):
    implementation = "foreach"

    def __init__(self, params, lr: float = 1.0, betas: tuple[float, float] = (0.9, 0.999),
                 beta3: float | None = None, eps: float = 1e-8, weight_decay: float = 0.0, d0: float = 1e-6,
                 d_coef: float = 1.0, growth_rate: float = math.inf, use_bias_correction: bool = False,
                 safeguard_warmup: bool = False):
        if lr <= 0 or d0 <= 0 or eps <= 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid Prodigy hyperparameters: lr={lr}, betas={betas}, d0={d0}, eps={eps}")
        super().__init__(params, dict(lr=lr, betas=tuple(betas), beta3=beta3, eps=eps, weight_decay=weight_decay,
                                      d=d0, d0=d0, d_max=d0, d_numerator=0.0, d_coef=d_coef,
                                      growth_rate=growth_rate, use_bias_correction=use_bias_correction,
                                      safeguard_warmup=safeguard_warmup, k=0))

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        first = self.param_groups[0]
        beta1, beta2 = first["betas"]
        beta3 = first["beta3"] if first["beta3"] is not None else math.sqrt(beta2)
        d, d0, k = first["d"], first["d0"], first["k"]
        lr = max(group["lr"] for group in self.param_groups)
        bias = math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1)) if first["use_bias_correction"] else 1.0
        dlr = d * lr * bias
        s_scale = (d / d0) * (d if first["safeguard_warmup"] else dlr)

        live = [(group, p) for group in self.param_groups for p in group["params"] if p.grad is not None]
        numerator, denominator = [], []
        for _, p in live:
            state = self.state[p]
            if not state:
                state.update(x0=p.detach().clone(), s=torch.zeros_like(p), exp_avg=torch.zeros_like(p),
                             exp_avg_sq=torch.zeros_like(p))
            g = p.grad
            # <g, x0 - x> at the current point, before anything moves
            numerator.append((d / d0) * dlr * torch.dot(g.flatten(), (state["x0"] - p).flatten()))
            state["exp_avg"].mul_(beta1).add_(g, alpha=d * (1 - beta1))
            state["exp_avg_sq"].mul_(beta2).addcmul_(g, g, value=d * d * (1 - beta2))
            state["s"].mul_(beta3).add_(g, alpha=s_scale)
            denominator.append(state["s"].abs().sum())
        if not live:
            return loss
        delta, d_denom = torch.stack([torch.stack(numerator).sum(), torch.stack(denominator).sum()]).tolist()
        if d_denom == 0:  # no gradient signal yet: nothing to estimate, no step (as prodigyopt)
            return loss
        d_numerator = first["d_numerator"] * beta3 + delta
        d_hat = first["d_coef"] * d_numerator / d_denom
        d_max = max(first["d_max"], d_hat)
        d_new = min(d_max, (max(d, d_hat) if d == d0 else d) * first["growth_rate"])
        for group in self.param_groups:
            group.update(d=d_new, d_max=d_max, d_numerator=d_numerator, k=k + 1)
        for group, p in live:
            state = self.state[p]
            if group["weight_decay"]:
                p.mul_(1 - group["weight_decay"] * dlr)
            # the step uses the old d (it built m and v); eps scales with the new one, as in prodigyopt
            p.addcdiv_(state["exp_avg"], state["exp_avg_sq"].sqrt().add_(d_new * group["eps"]), value=-dlr)
        return loss
