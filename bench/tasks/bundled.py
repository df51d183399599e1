"""scikit-learn's bundled classification sets (breast_cancer, digits, wine, iris), read straight
from the CSV files scikit-learn ships, without importing scikit-learn.

Why: `import sklearn.datasets` pulls in scipy.stats and pandas and costs over a second per run,
more than a whole tiny logistic-regression run trains. The files are located through the package's
import spec (which does not import it) and parsed as scikit-learn's `load_*` functions parse them;
tests/test_logreg.py checks the arrays are identical to `load_<name>(return_X_y=True)`.
"""

from __future__ import annotations

import csv
import gzip
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from bench import BenchError

if TYPE_CHECKING:  # torch is imported by load() only: available() answers `bench list` without it
    import torch

#: dataset -> (file, whether its first line is a "n_samples,n_features,class names..." header)
FILES = {"breast_cancer": ("breast_cancer.csv", True), "wine": ("wine_data.csv", True),
         "iris": ("iris.csv", True), "digits": ("digits.csv.gz", False)}


def data_dir() -> Path | None:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"


def available() -> bool:
    folder = data_dir()
    return folder is not None and all((folder / name).is_file() for name, _ in FILES.values())


def load(dataset: str) -> tuple["torch.Tensor", "torch.Tensor"]:
    """(x float64 (n, d), y int64 (n,)) exactly as scikit-learn's `load_<dataset>` returns them."""
    name, has_header = FILES[dataset]
    folder = data_dir()
    if folder is None or not (folder / name).is_file():
        raise BenchError(f"scikit-learn's bundled {dataset} data is missing; install it with "
                         "`pip install scikit-learn`")
    import torch

    opener = gzip.open if name.endswith(".gz") else open
    with opener(folder / name, "rt", newline="") as f:
        rows = list(csv.reader(f))
    if has_header:
        n_samples, n_features = int(rows[0][0]), int(rows[0][1])
        rows = rows[1:]
        if len(rows) != n_samples or any(len(r) != n_features + 1 for r in rows):
            raise BenchError(f"scikit-learn's {name} does not have the {n_samples} x {n_features} shape its "
                             "header states; reinstall scikit-learn")
    table = torch.tensor([[float(v) for v in r] for r in rows if r], dtype=torch.float64)
    return table[:, :-1].contiguous(), table[:, -1].to(torch.int64)
