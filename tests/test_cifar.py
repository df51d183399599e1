"""CIFAR-10: the pickle reader on a generated directory in the real on-disk format, the on-device
augmentation, the ResNets, `bench data cifar10`, the missing-data error, a tiny end-to-end run."""

import dataclasses
import hashlib
import pickle
import tarfile
from collections import OrderedDict
from itertools import islice

import numpy as np
import pytest
import torch
from conftest import only_run, read_run
from omegaconf import OmegaConf

from bench import BenchError
from bench.tasks import download
from bench.tasks.cifar import TEST_FILE, TRAIN_FILES, Cifar10, crop_flip, read_batch, read_cifar10
from bench.tasks.resnet import build_resnet


def write_cifar_dir(path, per_batch=40, bytes_keys=True, protocol=2, seed=0):
    """A `cifar-10-batches-py` directory like the official one: per file a pickled dict with
    `data` (N x 3072 uint8, channel-major rows), `labels` (list of int), `batch_label`,
    `filenames`; bytes keys as the Python 2 originals have. Returns the arrays written."""
    rng = np.random.default_rng(seed)
    path.mkdir(parents=True, exist_ok=True)
    key = (lambda k: k.encode()) if bytes_keys else (lambda k: k)
    written = {}
    for name in TRAIN_FILES + (TEST_FILE,):
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        entry = {key("batch_label"): f"{name} of 5".encode(), key("labels"): labels, key("data"): data,
                 key("filenames"): [f"img_{i}.png".encode() for i in range(per_batch)]}
        with open(path / name, "wb") as f:
            pickle.dump(entry, f, protocol=protocol)
        written[name] = (data, labels)
    with open(path / "batches.meta", "wb") as f:
        pickle.dump({key("label_names"): [b"airplane", b"automobile"], key("num_vis"): 3072}, f, protocol=protocol)
    return written


@pytest.mark.parametrize("bytes_keys,protocol", [(True, 2), (False, pickle.HIGHEST_PROTOCOL)])
def test_reader_reads_the_real_format(tmp_path, bytes_keys, protocol):
    written = write_cifar_dir(tmp_path / "cifar-10-batches-py", bytes_keys=bytes_keys, protocol=protocol)
    # the parent directory is accepted too: the archive unpacks into cifar-10-batches-py/
    data = read_cifar10(str(tmp_path))
    assert data["x"].shape == (200, 3, 32, 32) and data["x"].dtype == torch.uint8
    assert data["x_test"].shape == (40, 3, 32, 32) and data["y"].dtype == torch.int64
    first, labels = written["data_batch_1"]
    # rows are 1024 red, then green, then blue values, each row-major over the 32 x 32 image
    assert torch.equal(data["x"][0, 1, 2, 3], torch.tensor(first[0, 1024 + 2 * 32 + 3]))
    assert data["y"][:40].tolist() == labels
    assert data["y_test"].tolist() == written[TEST_FILE][1]


def test_reader_refuses_unexpected_objects(tmp_path):
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({"data": np.zeros((1, 3072), np.uint8), "labels": OrderedDict()}, f)
    with pytest.raises(pickle.UnpicklingError, match="collections.OrderedDict"):
        read_batch(tmp_path / "data_batch_1")


def test_missing_data_is_one_line_naming_the_fix(bench_cli, runs_root, tmp_path):
    res = bench_cli("run", "task=cifar10", f"task.data_dir={tmp_path}", f"runs_root={runs_root}", "progress=off")
    assert res.code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: CIFAR-10 not found"), res.output
    assert "bench data cifar10" in lines[0] and "task.data_dir=" in lines[0]
    assert not runs_root.exists() or not any(runs_root.iterdir())


def test_data_present(tmp_path):
    node = OmegaConf.create({"data_dir": str(tmp_path), "synthetic": 0})
    assert not Cifar10.data_present(node)
    write_cifar_dir(tmp_path, per_batch=2)
    assert Cifar10.data_present(node)
    assert Cifar10.data_present(OmegaConf.create({"data_dir": str(tmp_path / "nowhere"), "synthetic": 8}))


def test_crop_flip_is_a_shifted_window_and_mirror():
    x = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    centre = torch.full((3,), 4)
    no, yes = torch.zeros(3, dtype=torch.bool), torch.ones(3, dtype=torch.bool)
    assert torch.equal(crop_flip(x, centre, centre, no).permute(0, 3, 1, 2), x)
    assert torch.equal(crop_flip(x, centre, centre, yes).permute(0, 3, 1, 2), x.flip(3))
    corner = crop_flip(x, torch.zeros(3, dtype=torch.long), torch.full((3,), 8), no).permute(0, 3, 1, 2)
    assert (corner[:, :, :4] == 0).all() and (corner[:, :, :, -4:] == 0).all()
    assert torch.equal(corner[:, :, 4:, :28], x[:, :, :28, 4:])


def test_batches_from_start_equal_skipping():
    task = Cifar10(synthetic=64, arch="resnet20", batch_size=16, seed=3)
    full = list(islice(task.batches(), 7))
    resumed = list(islice(task.batches(5), 2))
    for (xa, ya), (xb, yb) in zip(full[5:], resumed, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(full[0][0], full[1][0])
    assert full[0][0].shape == (16, 3, 32, 32) and full[0][0].dtype == torch.float32


@pytest.mark.parametrize("arch,params", [("resnet18", 11_173_962), ("resnet20", 269_722), ("resnet56", 853_018)])
def test_resnet_parameter_counts(arch, params):
    # the counts published for the CIFAR ResNet-18 and for He et al.'s option-A ResNet-20/56
    with torch.device("meta"):
        model = build_resnet(arch)
    assert sum(p.numel() for p in model.parameters()) == params


def test_tiny_run_on_real_format_directory(bench_cli, runs_root, tmp_path):
    write_cifar_dir(tmp_path / "c", per_batch=40)
    res = bench_cli("run", "task=cifar10_tiny", "task.synthetic=0", f"task.data_dir={tmp_path / 'c'}", "steps=4",
                    "eval_every=2", f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    summary, lines = read_run(only_run(runs_root))
    assert summary["status"] == "ok" and summary["steps"] == 4, summary
    assert summary["task_info"]["train_images"] == 200 and summary["n_params"] == 269_722
    evals = [x for x in lines if "val/acc" in x]
    assert [x["step"] for x in evals] == [0, 2, 4] and all(0 <= x["val/acc"] <= 1 for x in evals)


def _archive(tmp_path):
    write_cifar_dir(tmp_path / "src" / "cifar-10-batches-py", per_batch=2)
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return archive, hashlib.md5(archive.read_bytes()).hexdigest()


def test_fetch_checks_md5_then_unpacks(tmp_path, monkeypatch):
    archive, md5 = _archive(tmp_path)
    with pytest.raises(BenchError, match="checksum mismatch"):
        download.fetch("cifar10", tmp_path / "root", url=archive.as_uri())
    assert not (tmp_path / "root" / "cifar-10-batches-py").exists()
    monkeypatch.setitem(download.SOURCES, "cifar10", dataclasses.replace(download.SOURCES["cifar10"], md5=md5))
    got = download.fetch("cifar10", tmp_path / "root", url=archive.as_uri())
    assert got == tmp_path / "root" / "cifar-10-batches-py"
    assert read_cifar10(str(tmp_path / "root"))["x"].shape == (10, 3, 32, 32)
    assert [p.name for p in (tmp_path / "root").iterdir()] == ["cifar-10-batches-py"]  # no leftovers


def test_data_command(bench_cli, tmp_path):
    res = bench_cli("data", "cifar10", "--root", str(tmp_path), "--url", (tmp_path / "absent.tar.gz").as_uri())
    assert res.code == 2 and "cannot download" in res.stderr, res.output
    res = bench_cli("data", "fashion_mnist")
    assert res.code == 2 and "apt-get install dataset-fashion-mnist" in res.stderr
