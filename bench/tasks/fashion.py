"""Fashion-MNIST with a small CNN: the real image task that runs offline, on CPU, in minutes.

Data: the four IDX files of the original release, gzipped or plain, as Debian's
`dataset-fashion-mnist` installs them under /usr/share/datasets/fashion-mnist. The 60k training
images train, the 10k test images are the validation set (`val/*`), as in the data set's own
benchmark. Everything sits on the device as uint8; batches are gathered and normalised there.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bench import BenchError
from bench.tasks.base import Task, epoch_batches

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {"x": "train-images-idx3-ubyte", "y": "train-labels-idx1-ubyte",
         "x_test": "t10k-images-idx3-ubyte", "y_test": "t10k-labels-idx1-ubyte"}
# IDX element types (third magic byte) -> big-endian numpy dtypes
IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# mean and std of the 60k training pixels (in [0, 1])
MEAN, STD = 0.2860, 0.3530


def read_idx(path: Path) -> np.ndarray:
    """An IDX file: magic (two zero bytes, element type, number of dims), big-endian uint32 dims,
    then the elements in row-major order."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_TYPES:
        raise BenchError(f"{path} is not an IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)) * dtype.itemsize:
        raise BenchError(f"{path}: header says {dims} but the file holds {len(body)} bytes of data")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def read_fashion_mnist(data_dir: str) -> dict[str, torch.Tensor]:
    folder = Path(data_dir).expanduser()
    paths = {key: find_file(folder, stem) for key, stem in FILES.items()}
    if any(p is None for p in paths.values()):
        raise BenchError(f"Fashion-MNIST not found in {folder}: install it with `apt-get install "
                         f"dataset-fashion-mnist` or set task.data_dir= to a directory with {FILES['x']}[.gz] "
                         "and the other three IDX files")
    out = {key: torch.from_numpy(read_idx(p).copy()) for key, p in paths.items()}
    for split in ("", "_test"):
        if len(out["x" + split]) != len(out["y" + split]):
            raise BenchError(f"{folder}: {len(out['x' + split])} images but {len(out['y' + split])} labels")
    return {k: (v.long() if k.startswith("y") else v) for k, v in out.items()}


class SmallCNN(nn.Module):
    """Two conv-BN-ReLU-maxpool stages and a two-layer head: about 0.4M parameters at width 32,
    ~0.91 test accuracy after two epochs."""

    def __init__(self, width: int = 32, classes: int = 10):
        super().__init__()

        def stage(cin: int, cout: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.features = nn.Sequential(stage(1, width), stage(width, 2 * width))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 7 * 7, 128), nn.ReLU(), nn.Linear(128, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class FashionMNIST(Task):
    metric = "val/acc"
    mode = "max"

    def __init__(self, data_dir: str = DEFAULT_DIR, width: int = 32, subset: int = 0, val_subset: int = 0,
                 eval_batch_size: int = 2000, seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 128):
        super().__init__(seed=seed, device=device, batch_size=batch_size)
        data = read_fashion_mnist(data_dir)
        self.data_dir = str(Path(data_dir).expanduser())
        # the released files are already shuffled, so a prefix is a fair (and seed-independent) subset
        n, n_val = subset or len(data["y"]), val_subset or len(data["y_test"])
        self.x, self.y = data["x"][:n].to(self.device), data["y"][:n].to(self.device)
        self.x_test, self.y_test = data["x_test"][:n_val].to(self.device), data["y_test"][:n_val].to(self.device)
        self.width, self.eval_batch_size = width, eval_batch_size

    @classmethod
    def data_present(cls, node) -> bool:
        folder = Path(str(node.get("data_dir") or DEFAULT_DIR)).expanduser()
        return all(find_file(folder, stem) is not None for stem in FILES.values())

    @staticmethod
    def _normalise(x: torch.Tensor) -> torch.Tensor:
        return ((x.float() / 255 - MEAN) / STD).unsqueeze(1)

    def model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        return SmallCNN(self.width).to(self.device)

    def batches(self, start: int = 0):
        for idx in epoch_batches(len(self.y), self.batch_size, self.seed, start):
            idx = idx.to(self.device)
            yield self._normalise(self.x[idx]), self.y[idx]

    def loss(self, model, batch):
        x, y = batch
        return F.cross_entropy(model(x), y)

    @torch.no_grad()
    def evaluate(self, model):
        total_loss, correct = 0.0, 0
        for i in range(0, len(self.y_test), self.eval_batch_size):
            logits = model(self._normalise(self.x_test[i : i + self.eval_batch_size])).float()
            y = self.y_test[i : i + self.eval_batch_size]
            total_loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
        return {"val/loss": total_loss / len(self.y_test), "val/acc": correct / len(self.y_test)}

    def describe(self):
        return {"data": self.data_dir, "train_images": len(self.y), "test_images": len(self.y_test)}
