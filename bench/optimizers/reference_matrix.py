"""Slow twins of the matrix and second-order optimizers (SOAP, Kron, Sophia, Adam-mini, Scion),
written from the papers' algorithm boxes for the parity tests (reference.py holds the element-wise
ones). Everything is dense linear algebra in the parameter's dtype, except where a package makes a
deliberate precision choice that changes its trajectory (a float32 QR or triangular solve); there the
twin makes the same choice and says so, so that the rest of the algorithm can be compared to 1e-6.
"""

from __future__ import annotations

import numpy as np
import torch

from bench.optimizers.reference import Twin

TINY_BF16 = torch.finfo(torch.bfloat16).tiny  # the package's eps in the preconditioner step


class SOAP(Twin):
    """SOAP (Vyas et al. 2024, Algorithm 3 with the eigenbasis refresh of Algorithm 4): Adam run in
    the eigenbasis of Shampoo's factors L = E[G G^T], R = E[G^T G].

    Step 1 only accumulates L, R and takes their eigenvectors. Then, with s = t - 1:
      G' = Q_L^T G Q_R;  M = b1 M + (1 - b1) G;  V = b2 V + (1 - b2) G'^2
      p = (p - lr sqrt(1 - b2^s) / (1 - b1^s) Q_L [(Q_L^T M Q_R) / (sqrt(V) + eps)] Q_R^T) (1 - lr wd)
      L, R updated with G; every f steps Q <- QR(L Q) after sorting Q's columns (and V) by the
      estimated eigenvalues diag(Q^T L Q). The authors' code takes that QR in float32; so does the twin.
    Vectors take the same steps with Q = I (Adam, first step skipped)."""

    def __init__(self, params, lr, betas, shampoo_beta, eps, weight_decay, precondition_frequency):
        super().__init__(params, dict(lr=lr, betas=betas, shampoo_beta=shampoo_beta, eps=eps,
                                      weight_decay=weight_decay, f=precondition_frequency))

    def update(self, p, g, state, group):
        (b1, b2), bs, t = group["betas"], group["shampoo_beta"], state["t"]
        matrix = p.dim() == 2
        if t == 1:
            state["m"], state["v"] = torch.zeros_like(g), torch.zeros_like(g)
            if matrix:
                state["L"], state["R"] = self._statistics(torch.zeros_like(g @ g.T), torch.zeros_like(g.T @ g), g, bs)
                state["QL"], state["QR"] = (torch.linalg.eigh(state[k] + 1e-30 * torch.eye(len(state[k]), dtype=g.dtype))[1].flip(1) for k in ("L", "R"))
            return p
        s = t - 1
        ql, qr = (state["QL"], state["QR"]) if matrix else (None, None)
        rotate = (lambda x: ql.T @ x @ qr) if matrix else (lambda x: x)
        unrotate = (lambda x: ql @ x @ qr.T) if matrix else (lambda x: x)
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * rotate(g) ** 2
        direction = unrotate(rotate(state["m"]) / (state["v"].sqrt() + group["eps"]))
        p = (p - group["lr"] * (1 - b2**s) ** 0.5 / (1 - b1**s) * direction) * (1 - group["lr"] * group["weight_decay"])
        if matrix:
            state["L"], state["R"] = self._statistics(state["L"], state["R"], g, bs)
            if s % group["f"] == 0:
                state["QL"] = self._refresh(state, "L", state["QL"], dim=0)
                state["QR"] = self._refresh(state, "R", state["QR"], dim=1)
        return p

    @staticmethod
    def _statistics(left, right, g, bs):
        """L <- bs L + (1 - bs) G G^T, R likewise, rounded exactly as the authors' code rounds them: a
        small layer's G G^T is rank-deficient, and the eigenvectors eigh picks inside its null space
        (which then steer the Adam statistics) follow the last bit of L."""
        return (torch.lerp(left, torch.tensordot(g, g, dims=[[1], [1]]), 1 - bs),
                torch.lerp(right, torch.tensordot(g, g, dims=[[0], [0]]), 1 - bs))

    @staticmethod
    def _refresh(state, factor, q, dim):
        power = state[factor] @ q
        order = torch.argsort((q * power).sum(dim=0), descending=True)
        state["v"] = state["v"].index_select(dim, order)
        return torch.linalg.qr(power[:, order].float())[0].to(q.dtype)


class SophiaH(torch.optim.Optimizer):
    """Sophia with the Hutchinson estimator (Liu et al. 2024, Algorithm 3 with Algorithm 1's estimator):
    every k steps h = b2 h + (1 - b2) u * (H u), u ~ N(0, I); each step
      p = p (1 - lr wd);  m = b1 m + (1 - b1) g;  p = p - lr clip(m / max(h, eps), rho)
    (the paper writes lr' clip(m / max(gamma h, eps'), 1), the same step with lr' = lr rho, gamma = rho,
    eps' = rho eps). Probes are drawn per parameter in order from the global generator."""

    needs_hvp = True

    def __init__(self, params, lr, betas, rho, weight_decay, k, eps):
        super().__init__(params, dict(lr=lr, betas=betas, rho=rho, weight_decay=weight_decay, k=k, eps=eps))
        self.t = 0

    @torch.no_grad()
    def step(self, closure=None):
        self.t += 1
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        if (self.t - 1) % self.param_groups[0]["k"] == 0:
            probes = [torch.randn_like(p) for p in params]
            with torch.enable_grad():
                hvps = torch.autograd.grad([p.grad for p in params], params, grad_outputs=probes)
            for p, u, hu in zip(params, probes, hvps, strict=True):
                b2 = self._group(p)["betas"][1]
                state = self.state[p]
                state["h"] = b2 * state.get("h", torch.zeros_like(p)) + (1 - b2) * u * hu
        for p in params:
            group, state = self._group(p), self.state[p]
            b1 = group["betas"][0]
            state["m"] = b1 * state.get("m", torch.zeros_like(p)) + (1 - b1) * p.grad
            h = state.get("h", torch.zeros_like(p))
            ratio = (state["m"] / torch.clamp(h, min=group["eps"])).clamp(-group["rho"], group["rho"])
            p.copy_(p * (1 - group["lr"] * group["weight_decay"]) - group["lr"] * ratio)

    def _group(self, p):
        return next(g for g in self.param_groups if any(q is p for q in g["params"]))


def spectral_norm_lower_bound(a: torch.Tensor) -> torch.Tensor:
    """Li's cheap lower bound on ||A||_2 (psgd_torch): scale by max|A|, then one power step from the
    largest column (or row, whichever has the larger norm)."""
    top = a.abs().max()
    a = a / top if top > 0 else a
    col_sq, row_sq = (a * a).sum(dim=0), (a * a).sum(dim=1)
    if col_sq.max() > row_sq.max():
        x = a[:, col_sq.argmax()] @ a
        return top * torch.linalg.vector_norm((x / torch.linalg.vector_norm(x)) @ a.T)
    x = a @ a[row_sq.argmax(), :]
    return top * torch.linalg.vector_norm(a.T @ (x / torch.linalg.vector_norm(x)))


class Kron(Twin):
    """PSGD Kron (Li 2018, "Preconditioner on matrix Lie group for SGD", as in Li's psgd_torch and
    kron_torch): P = (Q2^T Q2) kron (Q1^T Q1) for a matrix, Q1, Q2 upper triangular from I; P = Q^2
    (diagonal) for a vector. Each step, m = mu m + (1 - mu) g, m_hat = m / (1 - mu^t), and when the
    preconditioner updates (every 1/prob steps) with a probe V ~ N(0, I) (global generator):
      A = Q1 m_hat Q2^T,  B = Q1^-T V Q2^-1       (the triangular solves in float32, as the package does)
      Q1 <- Q1 - lr_p triu(A A^T - B B^T) Q1 / lb(A A^T + B B^T)   (Q2 likewise with A^T A, B^T B)
    where lb is Li's lower bound on the spectral norm (a vector uses max|.| and no triu). Then
      u = P m_hat, u *= min(1, 1.1 / rms(u)), p = p - lr (u + wd p)   (decay on matrices only)
    With probability balance_prob (one numpy draw per step, as the package) the factors of a matrix
    are rescaled to equal max-norms first, which leaves P unchanged."""

    def __init__(self, params, lr, momentum, weight_decay, update_probability, balance_prob, precondition_lr=0.1):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay, prob=update_probability,
                                      balance_prob=balance_prob, lr_p=precondition_lr))
        self.counter, self.refresh, self.balance = 0, False, False

    def step(self, closure=None):
        self.counter += 1
        self.refresh = self.counter >= 1 / self.param_groups[0]["prob"]
        self.counter = 0 if self.refresh else self.counter
        self.balance = np.random.random() < self.param_groups[0]["balance_prob"] and self.refresh
        return super().step(closure)

    def update(self, p, g, state, group):
        mu, t = group["momentum"], state["t"]
        matrix = p.dim() == 2
        if t == 1:
            state["m"] = torch.zeros_like(g)
            state["Q"] = [torch.eye(n, dtype=g.dtype) for n in g.shape] if matrix else [torch.ones_like(g)]
        state["m"] = mu * state["m"] + (1 - mu) * g
        m_hat = state["m"] / (1 - mu**t)
        qs = state["Q"]
        if matrix and self.balance:
            norms = torch.stack([q.abs().max() for q in qs])
            qs = [q * (norms.prod() ** 0.5 / n) for q, n in zip(qs, norms, strict=True)]
        if self.refresh:
            v = torch.randn_like(m_hat)
            qs = self._refresh_matrix(qs, m_hat, v, group["lr_p"]) if matrix else self._refresh_vector(qs, m_hat, v,
                                                                                                     group["lr_p"])
        state["Q"] = qs
        u = qs[0].T @ qs[0] @ m_hat @ qs[1].T @ qs[1] if matrix else qs[0] ** 2 * m_hat
        u = u * torch.clamp(1.1 / (u.square().mean().sqrt() + 1e-6), max=1.0)
        if matrix:
            u = u + group["weight_decay"] * p
        return p - group["lr"] * u

    @staticmethod
    def _refresh_matrix(qs, g, v, lr_p):
        q1, q2 = qs
        a = q1 @ g @ q2.T

        def right_solve(x, q):  # x q^-1, in float32 as the package computes it
            return torch.linalg.solve_triangular(q.float(), x.float(), upper=True, left=False).to(x.dtype)

        b = right_solve(right_solve(v.T, q1).T, q2)
        new = []
        for q, (t1, t2) in zip(qs, [(a @ a.T, b @ b.T), (a.T @ a, b.T @ b)], strict=True):
            step = torch.triu(lr_p * (t1 - t2)) / (spectral_norm_lower_bound(t1 + t2) + TINY_BF16)
            new.append(q - step @ q)
        return new

    @staticmethod
    def _refresh_vector(qs, g, v, lr_p):
        q = qs[0]
        a, b = q * g, v / q
        t1, t2 = a * a, b * b
        return [q - lr_p * (t1 - t2) * q / ((t1 + t2).abs().max() + TINY_BF16)]


class AdamMini(Twin):
    """Adam-mini (Zhang et al. 2025, Algorithm 1 with the final partition): one second moment per
    block, the mean of g^2 over it; blocks = each entry for `adam` tensors, each group of `rows`
    rows (1: output neurons) for other matrices, the whole tensor for vectors."""

    def __init__(self, params, lr, betas, eps, weight_decay, rows_of):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, rows_of=rows_of))

    def update(self, p, g, state, group):
        (b1, b2), t, rows = group["betas"], state["t"], group["rows_of"](p)
        state["m"] = b1 * state.get("m", torch.zeros_like(g)) + (1 - b1) * g
        mean_sq = torch.empty_like(g)
        if rows == "adam":
            mean_sq = g * g
        elif p.dim() < 2:
            mean_sq[:] = (g * g).sum() / g.numel()
        else:
            for start in range(0, g.shape[0], rows):
                block = g[start:start + rows]
                mean_sq[start:start + rows] = (block * block).sum() / block.numel()
        state["v"] = b2 * state.get("v", torch.zeros_like(g)) + (1 - b2) * mean_sq
        u = (state["m"] / (1 - b1**t)) / (torch.sqrt(state["v"] / (1 - b2**t)) + group["eps"])
        return p * (1 - group["lr"] * group["weight_decay"]) - group["lr"] * u


class Scion(Twin):
    """Scion (Pethick et al. 2025, Algorithms 1-2 with Table 2's norms): d = (1 - a) d + a g;
    unconstrained p = p (1 - lr wd) - lr rho lmo(d), constrained p = (1 - lr) p - lr rho lmo(d), where
    lmo is U V^T sqrt(d_out / d_in) for `spectral`, sign(d) / d_in for `sign`, d / rms(d) for `rms`.
    The orthogonaliser is the one Scion and Muon use (`orthogonalise`, quintic Newton-Schulz in
    bfloat16), passed in so that the rest is compared to float64 precision; like pytorch-optimizer,
    the twin multiplies its bfloat16 output by the scale and radius in bfloat16."""

    def __init__(self, params, lr, momentum, weight_decay, constraint, role_of, radius_of, orthogonalise):
        super().__init__(params, dict(lr=lr, a=momentum, weight_decay=weight_decay, constraint=constraint,
                                      role_of=role_of, radius_of=radius_of, orthogonalise=orthogonalise))

    def update(self, p, g, state, group):
        state["d"] = (1 - group["a"]) * state.get("d", torch.zeros_like(g)) + group["a"] * g
        d, role = state["d"], group["role_of"](p)
        radius = group["radius_of"](p)
        if role == "spectral":  # the package scales the bfloat16 U V^T in bfloat16, then adds it in p's dtype
            direction = group["orthogonalise"](d) * (d.shape[0] / d.shape[1]) ** 0.5 * radius
        elif role == "sign":
            direction = torch.sign(d) / d.shape[1] * radius
        else:
            direction = d / (torch.sqrt((d * d).mean()) + 1e-8) * radius
        step = group["lr"] * direction.to(p.dtype)
        if group["constraint"]:
            return (1 - group["lr"]) * p - step
        return p * (1 - group["lr"] * group["weight_decay"]) - step
