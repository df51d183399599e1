"""Tasks: a model, an infinite seeded batch stream, a loss and an evaluation (see base.Task).

Whether the data of one of bench's own tasks are on this machine is answered here as well, from
file names alone: a task module imports torch (seconds), and `bench list tasks` asks for every
task. These checks are the same as the classes' `data_present` (tests/test_startup.py holds them
to it); a task class from anywhere else is asked itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


def _cifar(node: Any) -> bool:
    if node.get("synthetic", 0) > 0:
        return True
    from bench.tasks.download import data_root

    data_dir = node.get("data_dir")
    path = Path(data_dir).expanduser() if data_dir else data_root()
    path = path / "cifar-10-batches-py" if (path / "cifar-10-batches-py").is_dir() else path
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    return all((path / name).is_file() for name in names)


def _fashion(node: Any) -> bool:
    folder = Path(str(node.get("data_dir") or "/usr/share/datasets/fashion-mnist")).expanduser()
    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return all((folder / stem).is_file() or (folder / f"{stem}.gz").is_file() for stem in stems)


def _corpus(node: Any) -> bool:
    if node.get("synthetic", 0) > 0:
        return True
    from bench.tasks.download import SOURCES, data_root

    data = node.get("data")
    return (Path(data).expanduser() if data else data_root() / SOURCES["shakespeare"].target).exists()


def _sklearn(node: Any) -> bool:
    """The bundled data ship with scikit-learn (found, not imported); `separable` is generated."""
    from bench.tasks import bundled

    return node.get("dataset", "breast_cancer") == "separable" or bundled.available()


#: bench's tasks that read data files, by `_target_`; every other `bench.tasks.*` class reads none
DATA_CHECKS: dict[str, Callable[[Any], bool]] = {
    "bench.tasks.cifar.Cifar10": _cifar,
    "bench.tasks.fashion.FashionMNIST": _fashion,
    "bench.tasks.llama.LanguageModel": _corpus,
    "bench.tasks.logreg.LogReg": _sklearn,
}


def data_present(node: Any) -> bool | None:
    """Whether the data a task node reads are here; None when it reads no data files. Imports the
    task class (and with it torch) only for a class outside bench.tasks."""
    target = str(node.get("_target_", ""))
    if target in DATA_CHECKS:
        return DATA_CHECKS[target](node)
    if target.startswith("bench.tasks."):
        return None
    from hydra.utils import get_class

    present = getattr(get_class(target), "data_present", None)
    return None if present is None else bool(present(node))
