"""L2-regularised logistic regression, binary and multinomial, with a known optimum f*.

The objective (what `train/loss` reports and f* minimises), over the n training examples:

    F(W, b) = (1/n) Σ_i CE(W x_i + b, y_i) + (l2/2) ||W||²        (the bias b is not regularised)

CE is the logistic loss with a single logit when there are two classes, and the softmax
cross-entropy with one logit per class otherwise: the same parametrisations as scikit-learn's
LogisticRegression, whose optimum is the same point when C = 1 / (n · l2).

Data: scikit-learn's bundled breast_cancer (binary), digits, wine and iris (multinomial),
standardised with the training split's mean and standard deviation; or `separable`: n Gaussian
points in `dim` dimensions pushed at least `margin` away from a random hyperplane through the
origin (not standardised, which would change the margin). The train/val split (and the separable
data) come from `split_seed`, which defaults to the run's seed.

f* is computed once per problem instance in float64 by Newton's method and cached on disk under
$BENCH_CACHE (default ~/.cache/bench), keyed by a hash of the training data and l2.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from bench import BenchError
from bench.tasks import bundled
from bench.tasks.base import Task, epoch_batches, seeded_generator

DATASETS = ("breast_cancer", "digits", "wine", "iris", "separable")
# Salts for independent streams: the split, the separable data, the minibatch order.
_SPLIT, _DATA, _ORDER = 21, 22, 23
#: Part of the cache key: change it if the objective's definition ever changes.
OBJECTIVE_VERSION = "mean-ce+l2/2|W|^2,bias-free,v1"
#: f* is certified to this relative accuracy (Newton decrement / 2 bounds F − f* near the optimum).
RELATIVE_ACCURACY = 1e-10


def objective(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor, l2: float) -> torch.Tensor:
    """F(W, b) on (x, y); `weight` has one row per logit (one row for binary problems)."""
    logits = x @ weight.T + bias
    if weight.shape[0] == 1:
        ce = F.binary_cross_entropy_with_logits(logits[:, 0], y.to(logits.dtype))
    else:
        ce = F.cross_entropy(logits, y)
    return ce + 0.5 * l2 * weight.pow(2).sum()


def load_data(dataset: str, split_seed: int, val_fraction: float, n: int, dim: int, margin: float):
    """(x_train, y_train, x_val, y_val) as float64 / int64 CPU tensors."""
    if dataset == "separable":
        x, y, _ = separable(n, dim, margin, seeded_generator(split_seed, _DATA))
    else:
        x, y = bundled.load(dataset)
    perm = torch.randperm(len(y), generator=seeded_generator(split_seed, _SPLIT))
    n_val = round(len(y) * val_fraction)
    if not 0 < n_val < len(y):
        raise BenchError(f"task.val_fraction={val_fraction} leaves no validation or no training examples "
                         f"({len(y)} in all); use a value in (0, 1) such as 0.2")
    val, train = perm[:n_val], perm[n_val:]
    if dataset != "separable":
        mean, std = x[train].mean(0), x[train].std(0)
        # Constant features (blank digits pixels) are centred only: dividing by ~0 would blow up
        # any validation example where the pixel happens to be non-zero.
        x = (x - mean) / torch.where(std > 1e-12, std, torch.ones_like(std))
    return x[train], y[train], x[val], y[val]


def separable(n: int, dim: int, margin: float, generator: torch.Generator):
    """(x, y, w): n points from N(0, I), labelled by their side of the hyperplane w·x = 0 for a
    random unit normal w, then each moved `margin` further from it, so that every point is at
    distance >= margin from the hyperplane."""
    w = torch.randn(dim, generator=generator, dtype=torch.float64)
    w /= w.norm()
    x = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    side = torch.where(x @ w >= 0, 1.0, -1.0).to(torch.float64)
    x += margin * side[:, None] * w
    return x, (side > 0).to(torch.int64), w


def newton_optimum(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, max_iter: int = 200) -> dict:
    """Minimise F in float64 by damped Newton steps; return f*, the final gradient norm and the
    Newton decrement λ² = gᵀH⁺g, which certifies F − f* ≈ λ²/2 <= RELATIVE_ACCURACY · f*.

    With K > 2 softmax logits, adding a constant to every bias changes nothing, so H is singular
    along that direction (the gradient has no component there): steps act on the other directions."""
    x, y = x.double(), y.long()
    n, p = x.shape
    outputs = 1 if classes == 2 else classes
    xa = torch.cat([x, torch.ones(n, 1, dtype=x.dtype, device=x.device)], 1)  # bias as a last feature
    reg = torch.ones(p + 1, dtype=x.dtype, device=x.device)
    reg[-1] = 0.0  # the bias is not regularised
    theta = torch.zeros(outputs, p + 1, dtype=x.dtype, device=x.device)  # row k: (W_k, b_k)

    def value(t):
        return objective(t[:, :-1], t[:, -1], x, y, l2)

    def gradient_and_hessian(t):
        logits = xa @ t.T
        if outputs == 1:
            prob = torch.sigmoid(logits)
            residual = prob - y[:, None].to(x.dtype)
            curvature = (prob * (1 - prob))[:, :, None]  # (n, 1, 1)
        else:
            prob = torch.softmax(logits, 1)
            residual = prob - F.one_hot(y, outputs).to(x.dtype)
            curvature = torch.diag_embed(prob) - prob[:, :, None] * prob[:, None, :]  # (n, K, K)
        grad = residual.T @ xa / n + l2 * t * reg
        # Block (k, l) of the data Hessian is xaᵀ diag(curvature[:, k, l]) xa / n, and block (l, k)
        # equals it: compute the k <= l blocks in one matrix product and mirror them.
        rows, cols = torch.triu_indices(outputs, outputs)
        weighted = curvature[:, rows, cols, None] * xa[:, None, :]  # (n, blocks, p + 1)
        blocks = (weighted.reshape(n, -1).T @ xa / n).reshape(len(rows), p + 1, p + 1)
        hess = xa.new_zeros(outputs, p + 1, outputs, p + 1)
        hess[rows, :, cols, :] = blocks
        hess[cols, :, rows, :] = blocks
        hess = hess.reshape(outputs * (p + 1), outputs * (p + 1)) + torch.diag(l2 * reg.repeat(outputs))
        return grad.reshape(-1), hess

    # H's null direction (multinomial only): the same shift on every bias. Adding s·vvᵀ makes H
    # invertible without changing H⁻¹g, because g is orthogonal to v.
    null = torch.zeros(outputs, p + 1, dtype=x.dtype, device=x.device)
    if outputs > 1:
        null[:, -1] = 1 / outputs**0.5
    null = null.reshape(-1, 1)

    def newton_step(t):
        """(g, H⁺g, gᵀH⁺g) at t."""
        grad, hess = gradient_and_hessian(t)
        step = torch.linalg.solve(hess + hess.diagonal().mean() * (null @ null.T), grad)
        return grad, step.reshape(t.shape), float(grad @ step)

    f = float(value(theta))
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        _, step, decrement = newton_step(theta)
        if decrement / 2 <= 1e-3 * RELATIVE_ACCURACY * f:
            # Deep in the quadratic region: one full step polishes the last digits; a line search
            # here would only compare values that differ by rounding.
            theta = theta - step
            f = float(value(theta))
            break
        # Backtracking (Armijo) keeps far-from-optimum steps, e.g. on separable data with small l2, safe.
        size = 1.0
        while float(value(theta - size * step)) > f - 0.25 * size * decrement and size > 1e-10:
            size /= 2
        theta = theta - size * step
        f = float(value(theta))
    grad, _, final_decrement = newton_step(theta)
    if not final_decrement / 2 <= RELATIVE_ACCURACY * f:
        raise RuntimeError(f"logreg f* did not converge in {max_iter} Newton steps "
                           f"(decrement/2 = {final_decrement / 2:.3g}, f = {f:.12g})")
    return {"optimum": f, "gradient_norm": float(grad.norm()), "newton_decrement": final_decrement,
            "iterations": iterations}


def cache_dir() -> Path:
    return Path(os.environ.get("BENCH_CACHE") or Path.home() / ".cache" / "bench").expanduser() / "logreg"


def cached_optimum(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, label: str) -> tuple[dict, bool]:
    """(solver record, whether it came from the cache). The key hashes the exact training data,
    so a different split, standardisation or data set version can never reuse a stale f*."""
    digest = hashlib.sha256()
    for part in (OBJECTIVE_VERSION, repr(float(l2)), str(classes), str(tuple(x.shape))):
        digest.update(part.encode())
    digest.update(x.double().contiguous().cpu().numpy().tobytes())
    digest.update(y.long().contiguous().cpu().numpy().tobytes())
    path = cache_dir() / f"{label}-{digest.hexdigest()[:20]}.json"
    try:
        record = json.loads(path.read_text())
        if isinstance(record.get("optimum"), float):
            return record, True
    except (OSError, ValueError):
        pass
    record = newton_optimum(x, y, classes, l2)
    try:  # the cache is an optimisation: a read-only home directory only costs recomputing
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({**record, "dataset": label, "l2": l2, "n_train": len(y)}, indent=1))
        os.replace(tmp, path)  # atomic: concurrent sweeps never read half a file
    except OSError:
        pass
    return record, False


class LogReg(Task):
    """See the module docstring for the objective and data. Ranked on `train/subopt` = F − f*, the
    suboptimality of the training objective (`val/loss` and `val/acc` are the held-out metrics)."""

    metric = "train/subopt"
    mode = "min"

    def __init__(self, dataset: str = "breast_cancer", l2: float = 1e-3, val_fraction: float = 0.2,
                 split_seed: int | None = None, n: int = 1000, dim: int = 20, margin: float = 0.1,
                 *, seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 0):
        super().__init__(seed=seed, device=device, batch_size=batch_size)
        if dataset not in DATASETS:
            raise BenchError(f"unknown task.dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
        if not (isinstance(l2, (int, float)) and l2 > 0):
            raise BenchError(f"task.l2 must be > 0 (it makes f* unique and finite), got {l2!r}; e.g. task.l2=1e-3")
        if dataset == "separable" and (n < 2 or dim < 1 or margin < 0):
            raise BenchError(f"separable data needs task.n >= 2, task.dim >= 1, task.margin >= 0; "
                             f"got n={n}, dim={dim}, margin={margin}")
        self.dataset, self.l2 = dataset, float(l2)
        self.split_seed = seed if split_seed is None else split_seed
        x, y, xv, yv = load_data(dataset, self.split_seed, val_fraction, n, dim, margin)
        self.classes = max(int(y.max()), int(yv.max())) + 1
        if int(torch.bincount(y, minlength=self.classes).min()) == 0:
            # The missing class's bias would run off to -inf: no finite f*.
            raise BenchError(f"the training split of {dataset} lacks a class; use a smaller task.val_fraction")
        label = dataset if dataset != "separable" else f"separable-n{n}-d{dim}-m{margin:g}"
        self.solver, self.cache_hit = cached_optimum(x, y, self.classes, self.l2, label)
        self.optimum = self.solver["optimum"]
        # float64 copies for evaluation (subopt down to 1e-10 needs them); float32 for training.
        self.x64, self.y, self.xv64, self.yv = (t.to(self.device) for t in (x, y, xv, yv))
        self.x, self.xv = self.x64.float(), self.xv64.float()

    @classmethod
    def data_present(cls, node) -> bool:
        """The bundled data ship with scikit-learn; `separable` is generated."""
        return node.get("dataset", "breast_cancer") == "separable" or bundled.available()

    def model(self) -> nn.Module:
        # Zero init: the objective is convex, so the start is a reference point, not luck.
        m = nn.Linear(self.x.shape[1], 1 if self.classes == 2 else self.classes)
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)
        return m.to(self.device)

    def batches(self, start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order_seed = self.seed * 1_000_003 + _ORDER  # minibatch order: its own stream, from the run seed
        for idx in epoch_batches(len(self.y), self.batch_size, order_seed, start):
            idx = idx.to(self.device)
            yield self.x[idx], self.y[idx]

    def loss(self, model: nn.Module, batch) -> torch.Tensor:
        x, y = batch
        # Suboptimality targets far below bf16 resolution: keep this tiny model in fp32.
        with torch.autocast(x.device.type, enabled=False):
            return objective(model.weight, model.bias, x, y, self.l2)

    @torch.no_grad()
    def evaluate(self, model: nn.Module) -> dict[str, float]:
        weight, bias = model.weight.double(), model.bias.double()
        train = objective(weight, bias, self.x64, self.y, self.l2).item()
        val_logits = self.xv64 @ weight.T + bias
        val_loss = objective(weight, bias, self.xv64, self.yv, 0.0).item()
        predicted = (val_logits[:, 0] > 0).long() if self.classes == 2 else val_logits.argmax(1)
        return {"train/loss": train, "val/loss": val_loss, "train/subopt": train - self.optimum,
                "val/acc": (predicted == self.yv).double().mean().item()}

    def describe(self) -> dict:
        return {"dataset": self.dataset, "n_train": len(self.y), "n_val": len(self.yv), "features": self.x.shape[1],
                "classes": self.classes, "l2": self.l2, "split_seed": self.split_seed, "optimum": self.optimum,
                "optimum_gradient_norm": self.solver["gradient_norm"], "optimum_cached": self.cache_hit}
