"""Slow, obviously-correct twins of our optimizers, written line by line from the papers' equations.

They exist only for the parity tests, where no trusted package implements the same algorithm (or
where the package disagrees with the paper: see docs/OPTIMIZERS.md). Each twin keeps its state in
plain attributes, recomputes everything out of place, and favours the paper's notation over speed.
"""

from __future__ import annotations

import math

import torch

from bench.optimizers import evaluate_closure


class Twin(torch.optim.Optimizer):
    """Out-of-place update per parameter: `update(p, g, state, group) -> new p`."""

    def update(self, p: torch.Tensor, g: torch.Tensor, state: dict, group: dict) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    state = self.state[p]
                    state["t"] = state.get("t", 0) + 1
                    p.copy_(self.update(p.detach().clone(), p.grad.clone(), state, group))
        return loss


def cautious_mask(u: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """phi = 1[u * g > 0], scaled by d / (nnz(phi) + 1) (Liang et al. 2024, Algorithm 1)."""
    phi = (u * g > 0).double()
    return phi * (phi.numel() / (phi.sum() + 1))


def adam_moments(state: dict, g: torch.Tensor, b1: float, b2: float) -> tuple[torch.Tensor, torch.Tensor]:
    """m_t = b1 m + (1 - b1) g,  v_t = b2 v + (1 - b2) g^2 (Kingma & Ba 2015), stored back in state."""
    m = b1 * state.get("m", torch.zeros_like(g)) + (1 - b1) * g
    v = b2 * state.get("v", torch.zeros_like(g)) + (1 - b2) * g * g
    state["m"], state["v"] = m, v
    return m, v


class CautiousAdamW(Twin):
    """C-AdamW (Liang et al. 2024, Alg. 1 on AdamW): u = m_hat / (sqrt(v_hat) + eps), masked."""

    def __init__(self, params, lr, betas, eps, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def update(self, p, g, state, group):
        (b1, b2), t = group["betas"], state["t"]
        m, v = adam_moments(state, g, b1, b2)
        u = (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + group["eps"])
        u = u * cautious_mask(u, g)
        return p - group["lr"] * group["weight_decay"] * p - group["lr"] * u


class NAdamW(Twin):
    """NAdamW as in the AlgoPerf baseline: Nesterov look-ahead m_bar = b1 m_t + (1 - b1) g_t."""

    def __init__(self, params, lr, betas, eps, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def update(self, p, g, state, group):
        (b1, b2), t = group["betas"], state["t"]
        m, v = adam_moments(state, g, b1, b2)
        m_bar = (b1 * m + (1 - b1) * g) / (1 - b1**t)
        u = m_bar / (torch.sqrt(v / (1 - b2**t)) + group["eps"])
        return p - group["lr"] * (u + group["weight_decay"] * p)


class AdEMAMix(Twin):
    """AdEMAMix (Pagliardini et al. 2024, Alg. 1) with its alpha and beta3 schedulers (Sec. 3)."""

    def __init__(self, params, lr, betas, alpha, t_alpha, t_beta3, eps, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, alpha=alpha, t_alpha=t_alpha, t_beta3=t_beta3, eps=eps,
                                      weight_decay=weight_decay))

    def update(self, p, g, state, group):
        (b1, b2, b3_final), t = group["betas"], state["t"]
        alpha = min(t * group["alpha"] / group["t_alpha"], group["alpha"])
        frac = t / group["t_beta3"]
        ln1, ln3 = math.log(b1), math.log(b3_final)
        b3 = min(math.exp(ln1 * ln3 / ((1 - frac) * ln3 + frac * ln1)), b3_final)
        m1, v = adam_moments(state, g, b1, b2)
        m2 = b3 * state.get("m2", torch.zeros_like(g)) + (1 - b3) * g
        state["m2"] = m2
        u = (m1 / (1 - b1**t) + alpha * m2) / (torch.sqrt(v / (1 - b2**t)) + group["eps"])
        return p - group["lr"] * (u + group["weight_decay"] * p)


class Lamb(Twin):
    """LAMB (You et al. 2020, Alg. 2) with phi = identity; ratio 1 when a norm is zero."""

    def __init__(self, params, lr, betas, eps, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def update(self, p, g, state, group):
        (b1, b2), t = group["betas"], state["t"]
        m, v = adam_moments(state, g, b1, b2)
        r = (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + group["eps"]) + group["weight_decay"] * p
        ratio = p.norm() / r.norm() if p.norm() > 0 and r.norm() > 0 else 1.0
        return p - group["lr"] * ratio * r


class AdamSN(Twin):
    """Adam with Subset-Norm (Nguyen & Nguyen 2024): v per subset of k consecutive coordinates."""

    def __init__(self, params, lr, betas, eps, weight_decay, k_of):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))
        self.k_of = k_of  # parameter -> subset size

    def update(self, p, g, state, group):
        (b1, b2), t, k = group["betas"], state["t"], self.k_of(p)
        p = p * (1 - group["lr"] * group["weight_decay"])
        m = b1 * state.get("m", torch.zeros_like(g)) + (1 - b1) * g
        subset_sq_norms = torch.stack([(s * s).sum() for s in g.flatten().split(k)])
        v = b2 * state.get("v", torch.zeros_like(subset_sq_norms)) + (1 - b2) * subset_sq_norms
        state["m"], state["v"] = m, v
        step = group["lr"] * math.sqrt(1 - b2**t) / (1 - b1**t)
        denom = (torch.sqrt(v) + group["eps"]).repeat_interleave(k).view_as(p)
        return p - step * m / denom


class SWAN(Twin):
    """SWAN (Ma et al. 2024): GradNorm, then GradWhitening with an exact (pseudo-)inverse square root
    from an eigendecomposition; non-matrices take AdamW (Loshchilov & Hutter 2019) steps."""

    def __init__(self, params, lr, eps, weight_decay, adamw_lr, adamw_betas, adamw_eps, adamw_weight_decay):
        super().__init__(params, dict(lr=lr, eps=eps, weight_decay=weight_decay, adamw_lr=adamw_lr,
                                      adamw_betas=adamw_betas, adamw_eps=adamw_eps,
                                      adamw_weight_decay=adamw_weight_decay))

    def update(self, p, g, state, group):
        if p.dim() != 2:
            (b1, b2), t, lr = group["adamw_betas"], state["t"], group["adamw_lr"]
            m, v = adam_moments(state, g, b1, b2)
            u = (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + group["adamw_eps"])
            return p - lr * (u + group["adamw_weight_decay"] * p)
        n = g.shape[1]
        mean = g.sum(dim=1, keepdim=True) / n
        std = torch.sqrt(((g - mean) ** 2).sum(dim=1, keepdim=True) / n)
        g_norm = (g - mean) / (std + group["eps"])
        lam, q = torch.linalg.eigh(g_norm @ g_norm.T)
        keep = lam > 1e-10 * lam.max()
        inv_sqrt = q[:, keep] @ torch.diag(lam[keep] ** -0.5) @ q[:, keep].T
        w = inv_sqrt @ g_norm
        w = w * (g_norm.norm() / w.norm())
        return p - group["lr"] * (w + group["weight_decay"] * p)


class AMSGrad(Twin):
    """AMSGrad (Reddi et al. 2018, Alg. 2: v_hat = max(v_hat, v_t)) in the Adam form that torch and
    Keras use: both moments bias-corrected, eps added to sqrt(v_hat_t / (1 - b2^t)), L2 decay in g."""

    def __init__(self, params, lr, betas, eps, weight_decay):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    def update(self, p, g, state, group):
        (b1, b2), t = group["betas"], state["t"]
        g = g + group["weight_decay"] * p
        m, v = adam_moments(state, g, b1, b2)
        v_hat = torch.maximum(state.get("v_hat", torch.zeros_like(v)), v)
        state["v_hat"] = v_hat
        return p - group["lr"] * (m / (1 - b1**t)) / (torch.sqrt(v_hat / (1 - b2**t)) + group["eps"])


class SPS(torch.optim.Optimizer):
    """SPS_max (Loizou et al. 2021, eq. 5) with a known f*: gamma = min((f - f*)^+ / (c ||g||^2), gamma_b),
    the squared norm over all parameters at once."""

    needs_closure = True

    def __init__(self, params, optimum, gamma_b, c):
        super().__init__(params, dict(gamma_b=gamma_b, c=c))
        self.optimum = optimum

    @torch.no_grad()
    def step(self, closure=None):
        loss = evaluate_closure(closure)
        ps = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        norm_sq = sum((p.grad * p.grad).sum() for p in ps)
        group = self.param_groups[0]
        gamma = min(max(loss.item() - self.optimum, 0.0) / (group["c"] * norm_sq.item()), group["gamma_b"])
        for p in ps:
            p.copy_(p - gamma * p.grad)
        return loss


class Adam(Twin):
    """Adam (Kingma & Ba 2015, Alg. 1) with L2 decay in g, or AdamW (Loshchilov & Hutter 2019, Alg. 2)
    with the decay lr * lambda * theta taken from the parameter before the step."""

    def __init__(self, params, lr, betas, eps, weight_decay, decoupled):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decoupled=decoupled))

    def update(self, p, g, state, group):
        (b1, b2), t, lr, wd = group["betas"], state["t"], group["lr"], group["weight_decay"]
        if group["decoupled"]:
            p = p - lr * wd * p
        else:
            g = g + wd * p
        m, v = adam_moments(state, g, b1, b2)
        return p - lr * (m / (1 - b1**t)) / (torch.sqrt(v / (1 - b2**t)) + group["eps"])


class Adagrad(Twin):
    """Adagrad (Duchi et al. 2011, diagonal form): s_t = s_0 + sum g^2, step lr_t g / (sqrt(s_t) + eps),
    with torch's extras: L2 decay in g and lr_t = lr / (1 + (t - 1) lr_decay)."""

    def __init__(self, params, lr, lr_decay, weight_decay, initial_accumulator_value, eps):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value, eps=eps))

    def update(self, p, g, state, group):
        g = g + group["weight_decay"] * p
        s = state.get("s", torch.full_like(g, group["initial_accumulator_value"])) + g * g
        state["s"] = s
        lr_t = group["lr"] / (1 + (state["t"] - 1) * group["lr_decay"])
        return p - lr_t * g / (torch.sqrt(s) + group["eps"])


def rms(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt((x * x).mean())


class Adafactor(Twin):
    """Adafactor (Shazeer & Stern 2018, Alg. 4-5) without momentum, in torch.optim.Adafactor's form:
    beta2_t = 1 - t^c; a matrix keeps row and column sums of g^2 (V = R C / 1^T R), a vector a full v;
    U = g / max(sqrt(V), eps1) (torch clamps where the paper adds eps1 to g^2), clipped to RMS d;
    step max(eps2, RMS(theta)) * min(lr, 1 / sqrt(t)) (torch caps the relative step at lr where the
    paper fixes 1e-2); decoupled decay theta (1 - lr lambda) before the step."""

    def __init__(self, params, lr, beta2_decay, eps1, eps2, d, weight_decay):
        super().__init__(params, dict(lr=lr, beta2_decay=beta2_decay, eps1=eps1, eps2=eps2, d=d,
                                      weight_decay=weight_decay))

    def update(self, p, g, state, group):
        t, lr = state["t"], group["lr"]
        beta2 = 1 - t ** group["beta2_decay"]
        alpha = max(group["eps2"], rms(p).item()) * min(lr, 1 / math.sqrt(t))
        p = p * (1 - lr * group["weight_decay"])
        if g.dim() == 2:
            r = beta2 * state.get("r", torch.zeros(g.shape[0], dtype=g.dtype)) + (1 - beta2) * (g * g).sum(1)
            c = beta2 * state.get("c", torch.zeros(g.shape[1], dtype=g.dtype)) + (1 - beta2) * (g * g).sum(0)
            state["r"], state["c"] = r, c
            v = torch.outer(r, c) / r.sum()
        else:
            v = beta2 * state.get("v", torch.zeros_like(g)) + (1 - beta2) * g * g
            state["v"] = v
        u = g / torch.clamp(torch.sqrt(v), min=group["eps1"])
        u = u / max(1.0, rms(u).item() / group["d"])
        return p - alpha * u
