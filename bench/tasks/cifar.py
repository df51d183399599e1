"""CIFAR-10 image classification with a ResNet, the whole data set resident on the device.

Data: the official python-pickle release (`cifar-10-batches-py`: data_batch_1..5, test_batch),
read by our own restricted unpickler; `bench data cifar10` fetches it. As in airbench, the
uint8 images live on the training device and augmentation (random crop with 4 pixels of zero
padding, horizontal flip) plus normalisation are a single gather on the device per batch, so
no data loader process can become the bottleneck.

`synthetic=N` replaces the files with N generated CIFAR-shaped images of 10 learnable classes:
the tiny configuration and throughput measurements use it; results on it are not CIFAR results.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench import BenchError
from bench.tasks.base import Task, epoch_batches, seeded_generator
from bench.tasks.download import data_root
from bench.tasks.resnet import ARCHS, build_resnet

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
FOLDER = "cifar-10-batches-py"
# per-channel mean and std of the 50k training images, the constants every CIFAR recipe uses
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
PAD = 4


class _ArraysOnly(pickle.Unpickler):
    """Unpickling runs arbitrary code; the CIFAR files only need numpy's array reconstruction."""

    # numpy 1.x pickles name numpy.core, numpy 2.x numpy._core; protocol 5 uses _frombuffer
    ALLOWED = {(f"{core}.{module}", name) for core in ("numpy.core", "numpy._core")
               for module, name in (("multiarray", "_reconstruct"), ("numeric", "_frombuffer"))}
    ALLOWED |= {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a CIFAR batch file")
        return super().find_class(module, name)


def read_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch file -> (uint8 images N x 3 x 32 x 32, int64 labels). The official files are
    Python 2 pickles (bytes keys); re-saved copies often have str keys: both are accepted."""
    with open(path, "rb") as f:
        raw = _ArraysOnly(f, encoding="bytes").load()
    entry = {(k.decode() if isinstance(k, bytes) else k): v for k, v in raw.items()}
    if "data" not in entry or "labels" not in entry:
        raise BenchError(f"{path} is not a CIFAR-10 batch (keys: {sorted(entry)})")
    data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    labels = np.asarray(entry["labels"], dtype=np.int64)
    if len(labels) != len(data):
        raise BenchError(f"{path}: {len(data)} images but {len(labels)} labels")
    return torch.from_numpy(data.copy()), torch.from_numpy(labels)


def resolve_dir(data_dir: str | None) -> Path:
    """The configured directory, or the data root; either may hold the files or `cifar-10-batches-py/`."""
    path = Path(data_dir).expanduser() if data_dir else data_root()
    return path / FOLDER if (path / FOLDER).is_dir() else path


def files_present(path: Path) -> bool:
    return all((path / name).is_file() for name in TRAIN_FILES + (TEST_FILE,))


def read_cifar10(data_dir: str | None) -> dict[str, torch.Tensor]:
    path = resolve_dir(data_dir)
    if not files_present(path):
        raise BenchError(f"CIFAR-10 not found in {path}: run `bench data cifar10` (downloads 163 MB) or set "
                         f"task.data_dir= to a directory with {', '.join(TRAIN_FILES[:1])}..5 and {TEST_FILE}")
    train = [read_batch(path / name) for name in TRAIN_FILES]
    x_test, y_test = read_batch(path / TEST_FILE)
    return {"x": torch.cat([x for x, _ in train]), "y": torch.cat([y for _, y in train]), "x_test": x_test,
            "y_test": y_test}


def synthetic_cifar(n: int, seed: int) -> dict[str, torch.Tensor]:
    """N train and N/5 test images: smooth per-class colour templates plus pixel noise."""
    g = seeded_generator(seed, 31)
    templates = F.interpolate(torch.randn(10, 3, 4, 4, generator=g), size=32, mode="bilinear")
    n_test = max(100, n // 5)
    labels = torch.randint(0, 10, (n + n_test,), generator=g)
    images = 128 + 50 * templates[labels] + 40 * torch.randn(n + n_test, 3, 32, 32, generator=g)
    images = images.clamp(0, 255).to(torch.uint8)
    return {"x": images[:n], "y": labels[:n], "x_test": images[n:], "y_test": labels[n:]}


def crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Random-crop a zero-padded uint8 batch and mirror where `flip`, as one gather.
    Mirroring is reading the crop's columns in reverse order. Returns B x 32 x 32 x C
    (channels last in memory)."""
    size = x.shape[-1]
    padded = F.pad(x, (PAD, PAD, PAD, PAD))
    offsets = torch.arange(size, device=x.device)
    rows = dy[:, None] + offsets
    cols = dx[:, None] + offsets
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(x.shape[0], device=x.device)[:, None, None]
    return padded[batch, :, rows[:, :, None], cols[:, None, :]]


class Cifar10(Task):
    metric = "val/acc"
    mode = "max"

    def __init__(self, data_dir: str | None = None, arch: str = "resnet18", label_smoothing: float = 0.0,
                 augment: bool = True, compile: bool = False, synthetic: int = 0, eval_batch_size: int = 1000,
                 seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 128):
        super().__init__(seed=seed, device=device, batch_size=batch_size)
        if arch not in ARCHS:
            raise BenchError(f"unknown task.arch {arch!r}; choose one of: {', '.join(ARCHS)}")
        self.arch, self.label_smoothing, self.augment, self.compile = arch, label_smoothing, augment, compile
        self.eval_batch_size = eval_batch_size
        if synthetic > 0:
            data, self.source = synthetic_cifar(synthetic, self.seed), f"synthetic ({synthetic} images)"
        else:
            data, self.source = read_cifar10(data_dir), str(resolve_dir(data_dir))
        self.x, self.y = data["x"].to(self.device), data["y"].to(self.device)
        self.x_test, self.y_test = data["x_test"].to(self.device), data["y_test"].to(self.device)
        self.mean = torch.tensor(MEAN, device=self.device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(STD, device=self.device).view(1, 3, 1, 1) * 255
        # channels_last lets cuDNN use tensor-core kernels for these convolutions; no gain on CPU
        self.memory_format = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format

    @classmethod
    def data_present(cls, node) -> bool:
        return node.get("synthetic", 0) > 0 or files_present(resolve_dir(node.get("data_dir")))

    def model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        net = build_resnet(self.arch).to(self.device, memory_format=self.memory_format)
        return torch.compile(net) if self.compile else net

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)

    def batches(self, start: int = 0):
        step = start
        for idx in epoch_batches(len(self.y), self.batch_size, self.seed, start):
            idx = idx.to(self.device)
            x = self.x[idx]
            if self.augment:
                # one generator per step: `batches(start)` reproduces the same crops without replaying
                g = seeded_generator(self.seed, 17, step)
                dy, dx = torch.randint(0, 2 * PAD + 1, (2, len(idx)), generator=g).to(self.device)
                flip = (torch.rand(len(idx), generator=g) < 0.5).to(self.device)
                x = crop_flip(x, dy, dx, flip).permute(0, 3, 1, 2)
            yield self._normalise(x), self.y[idx]
            step += 1

    def loss(self, model, batch):
        x, y = batch
        return F.cross_entropy(model(x), y, label_smoothing=self.label_smoothing)

    @torch.no_grad()
    def evaluate(self, model):
        total_loss, correct = 0.0, 0
        for i in range(0, len(self.y_test), self.eval_batch_size):
            x = self._normalise(self.x_test[i : i + self.eval_batch_size])
            y = self.y_test[i : i + self.eval_batch_size]
            logits = model(x).float()
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
        n = len(self.y_test)
        return {"val/loss": total_loss / n, "val/acc": correct / n}

    def describe(self):
        return {"data": self.source, "arch": self.arch, "train_images": len(self.y), "test_images": len(self.y_test)}
