"""L2-regularised logistic regression on scikit-learn's bundled data (minimal first version)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench import BenchError
from bench.tasks.base import Task, epoch_batches, seeded_generator

DATASETS = ("breast_cancer", "digits", "wine", "iris")


class LogReg(Task):
    metric = "val/loss"
    mode = "min"

    def __init__(self, dataset: str = "breast_cancer", l2: float = 1e-3, val_fraction: float = 0.2, **base):
        super().__init__(**base)
        if dataset not in DATASETS:
            raise BenchError(f"unknown task.dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
        import sklearn.datasets

        x, y = getattr(sklearn.datasets, f"load_{dataset}")(return_X_y=True)
        x = torch.tensor(x, dtype=torch.float32)
        y = torch.tensor(y, dtype=torch.long)
        perm = torch.randperm(len(y), generator=seeded_generator(self.seed, 7))
        n_val = int(len(y) * val_fraction)
        val, train = perm[:n_val], perm[n_val:]
        mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-8)
        x = (x - mean) / std
        self.x, self.y = x[train].to(self.device), y[train].to(self.device)
        self.xv, self.yv = x[val].to(self.device), y[val].to(self.device)
        self.classes = int(y.max()) + 1
        self.l2 = l2

    def model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        m = nn.Linear(self.x.shape[1], self.classes)
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)
        return m.to(self.device)

    def batches(self, start: int = 0):
        for idx in epoch_batches(len(self.y), self.batch_size, self.seed, start):
            yield self.x[idx], self.y[idx]

    def loss(self, model, batch):
        x, y = batch
        return F.cross_entropy(model(x), y) + 0.5 * self.l2 * model.weight.pow(2).sum()

    @torch.no_grad()
    def evaluate(self, model):
        logits = model(self.xv)
        return {
            "train/loss": self.loss(model, (self.x, self.y)).item(),
            "val/loss": F.cross_entropy(logits, self.yv).item(),
            "val/acc": (logits.argmax(1) == self.yv).float().mean().item(),
        }
