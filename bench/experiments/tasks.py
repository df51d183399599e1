"""A small fully connected network on a subset of an image data set: the setting of the
edge-of-stability study (Cohen et al., 2021, ran tanh MLPs on a 5k CIFAR-10 subset with
full-batch GD and squared loss). scikit-learn's bundled 8×8 digits keep one full-batch step to milliseconds on a CPU, so the
sharpness probe can run often enough to see it hover at 2/η; `dataset: fashion_mnist` (28×28,
Debian's dataset-fashion-mnist) is the larger variant for GPUs.

Experiments name it in their yaml (`task: {_target_: bench.experiments.tasks.SmallMLP, ...}`);
it follows the ordinary Task contract, so the runner, run directories and results store treat it
like any other task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bench import BenchError
from bench.tasks.base import Task, epoch_batches, seeded_generator

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "gelu": nn.GELU}
LOSSES = ("mse", "ce")
#: metrics the task can be ranked on, and their direction
METRICS = {"val/acc": "max", "val/loss": "min", "train/loss": "min"}


def load(dataset: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(features as float rows, labels) of a whole data set."""
    if dataset == "digits":
        from bench.tasks import bundled

        x, y = bundled.load("digits")
        return x.float(), y
    if dataset == "fashion_mnist":
        from bench.tasks.fashion import DEFAULT_DIR, read_fashion_mnist

        data = read_fashion_mnist(DEFAULT_DIR)
        return data["x"].flatten(1).float() / 255, data["y"]
    raise BenchError(f"unknown task.dataset {dataset!r}; choose digits or fashion_mnist")


class SmallMLP(Task):
    metric = "val/acc"
    mode = "max"

    @classmethod
    def data_present(cls, node) -> bool:
        from bench.tasks import DATA_CHECKS

        dataset = node.get("dataset", "digits")
        check = DATA_CHECKS["bench.tasks.fashion.FashionMNIST" if dataset == "fashion_mnist" else "bench.tasks.logreg.LogReg"]
        return check({"dataset": dataset})

    def __init__(self, dataset: str = "digits", n_train: int = 1000, width: int = 128, depth: int = 2,
                 activation: str = "tanh", loss: str = "mse", metric: str = "val/acc", **base):
        super().__init__(**base)
        if metric not in METRICS:
            raise BenchError(f"unknown task.metric {metric!r}; choose one of: {', '.join(METRICS)}")
        self.metric, self.mode = metric, METRICS[metric]
        if activation not in ACTIVATIONS:
            raise BenchError(f"unknown task.activation {activation!r}; choose one of: {', '.join(ACTIVATIONS)}")
        if loss not in LOSSES:
            raise BenchError(f"unknown task.loss {loss!r}; choose one of: {', '.join(LOSSES)}")
        x, y = load(dataset)
        if not 0 < n_train < len(y):
            raise BenchError(f"task.n_train must be between 1 and {len(y) - 1}, got {n_train!r}")
        # a fixed split (not the run seed), so seeds vary the initialisation only
        perm = torch.randperm(len(y), generator=seeded_generator(0, 7))
        train, val = perm[:n_train], perm[n_train:]
        mean, std = x[train].mean(0), x[train].std(0)
        # Pixels that are blank in every training image are centred only: dividing by a ~0 std
        # would blow up any validation image where they are not.
        x = (x - mean) / torch.where(std > 1e-6, std, torch.ones_like(std))
        self.x, self.y = x[train].to(self.device), y[train].to(self.device)
        self.xv, self.yv = x[val].to(self.device), y[val].to(self.device)
        self.dataset, self.width, self.depth, self.activation, self.loss_kind = dataset, width, depth, activation, loss

    def model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        layers, fan_in = [], self.x.shape[1]
        for _ in range(self.depth):
            layers += [nn.Linear(fan_in, self.width), ACTIVATIONS[self.activation]()]
            fan_in = self.width
        layers.append(nn.Linear(fan_in, 10))
        return nn.Sequential(*layers).to(self.device)

    def batches(self, start: int = 0):
        for idx in epoch_batches(len(self.y), self.batch_size, self.seed, start):
            yield self.x[idx], self.y[idx]

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.loss_kind == "mse":  # ½‖f(x) − onehot(y)‖², averaged over examples, as in Cohen et al.
            return 0.5 * (logits - F.one_hot(y, logits.shape[1]).to(logits.dtype)).pow(2).sum(1).mean()
        return F.cross_entropy(logits, y)

    def loss(self, model, batch):
        x, y = batch
        return self._loss(model(x), y)

    @torch.no_grad()
    def evaluate(self, model):
        logits, logits_v = model(self.x), model(self.xv)
        return {
            "train/loss": self._loss(logits, self.y).item(),
            "train/acc": (logits.argmax(1) == self.y).float().mean().item(),
            "val/loss": self._loss(logits_v, self.yv).item(),
            "val/acc": (logits_v.argmax(1) == self.yv).float().mean().item(),
        }

    def describe(self):
        return {"data": self.dataset, "train": len(self.y), "val": len(self.yv),
                "width": self.width, "depth": self.depth, "activation": self.activation, "loss": self.loss_kind}


class SeparableLogistic(Task):
    """Unregularised binary logistic regression on linearly separable data (the large-step-size
    GD setting of Wu, Bartlett, Telgarsky & Yu, 2024): the loss has no minimiser, GD's iterates
    grow without bound towards the max-margin direction, and the question is how fast they first
    separate the training set. Ranked on `train/err` (fraction misclassified) with target 0, so
    `steps_to_target` in summary.json is the number of steps to zero training error.

    Data: bench.tasks.logreg's `separable` generator (Gaussian points pushed `margin` away from a
    random hyperplane through the origin), drawn from the run seed, so seeds are data sets. Float64
    throughout: at large step sizes the loss falls below float32's resolution within a few steps.
    """

    metric = "train/err"
    mode = "min"

    def __init__(self, n: int = 1000, dim: int = 10, margin: float = 0.02, val_fraction: float = 0.2, **base):
        super().__init__(**base)
        from bench.tasks.logreg import separable

        x, y = separable(n, dim, margin, seeded_generator(self.seed, 22))[:2]
        n_val = round(n * val_fraction)
        self.x, self.y = x[n_val:].to(self.device), y[n_val:].to(self.device)
        self.xv, self.yv = x[:n_val].to(self.device), y[:n_val].to(self.device)
        self.margin = margin

    def model(self) -> nn.Module:
        m = nn.Linear(self.x.shape[1], 1).double()
        nn.init.zeros_(m.weight)  # the theory's start; also makes runs differ only by their data
        nn.init.zeros_(m.bias)
        return m.to(self.device)

    def batches(self, start: int = 0):
        for idx in epoch_batches(len(self.y), self.batch_size, self.seed, start):
            yield self.x[idx], self.y[idx]

    def loss(self, model, batch):
        x, y = batch
        return F.binary_cross_entropy_with_logits(model(x)[:, 0], y.double())

    @torch.no_grad()
    def evaluate(self, model):
        z, zv = model(self.x)[:, 0], model(self.xv)[:, 0]
        signed = torch.where(self.y > 0, z, -z)  # > 0 exactly when the example is classified right
        norm = float(model.weight.norm())
        return {
            "train/loss": F.binary_cross_entropy_with_logits(z, self.y.double()).item(),
            "train/err": (signed <= 0).double().mean().item(),
            # the normalised margin min_i y_i (w·x_i + b)/‖w‖: positive once the data are separated
            "train/margin": float(signed.min()) / norm if norm > 0 else 0.0,
            "val/acc": ((zv > 0).long() == self.yv).double().mean().item(),
        }

    def describe(self):
        return {"data": "separable Gaussian (bench.tasks.logreg.separable)", "train": len(self.y),
                "dim": self.x.shape[1], "margin": self.margin}
