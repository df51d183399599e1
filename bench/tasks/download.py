"""Where downloaded data sets live, and `bench data <name>`: fetch, verify, unpack.

Data that cannot come from a package manager is fetched once into the data root
(`$BENCH_DATA`, default `~/.cache/bench`), verified, and unpacked there; tasks look for it
in the same place unless a path is given in the task config. Nothing is ever fetched during
a run: a task with missing data stops with one line naming the command that fetches it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench import BenchError


def data_root() -> Path:
    return Path(os.environ.get("BENCH_DATA") or Path.home() / ".cache" / "bench").expanduser()


@dataclass(frozen=True)
class Source:
    url: str
    target: str  # what ends up in the data root: a directory (archives) or a file name
    md5: str | None = None  # checksum of the downloaded file, when the publisher states one
    size: int | None = None  # exact byte count, the check we have when no checksum is published
    archive: bool = False


SOURCES = {
    # https://www.cs.toronto.edu/~kriz/cifar.html publishes this md5 next to the link
    "cifar10": Source("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-batches-py",
                      md5="c58f30108f718f92721af3b95e74349a", archive=True),
    # the char-rnn "tiny shakespeare" text (40,000 lines); no published checksum, so the size is checked
    "shakespeare": Source("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                          "shakespeare.txt", size=1_115_394),
}
#: data sets a system package provides: `bench data` points there instead of downloading
PACKAGED = {"fashion_mnist": "apt-get install dataset-fashion-mnist (files land in /usr/share/datasets/fashion-mnist)"}


def _download(url: str, dest: Path) -> str:
    """Stream `url` into `dest`, returning the md5 of what was written."""
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
    except OSError as exc:  # URLError, timeouts and disk errors are all OSError
        raise BenchError(f"cannot download {url} ({getattr(exc, 'reason', exc)}); on a machine without "
                         f"network, copy the file from one that has it into {dest.parent}") from exc
    return digest.hexdigest()


def _unpack(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tar:
        for member in tar.getmembers():
            # refuse absolute paths, `..` and links: the archive must only add files under `into`
            if member.name.startswith("/") or ".." in Path(member.name).parts or member.issym() or member.islnk():
                raise BenchError(f"refusing to unpack {archive.name}: unsafe member {member.name!r}")
        tar.extractall(into)


def fetch(name: str, root: Path | None = None, url: str | None = None) -> Path:
    """Download data set `name` into `root` (default: the data root) and return its path.
    An existing copy is kept. `url` replaces the official address (a mirror, or a local file:// copy)."""
    if name in PACKAGED:
        raise BenchError(f"{name} comes from a system package: {PACKAGED[name]}")
    if name not in SOURCES:
        raise BenchError(f"unknown data set {name!r}; choose one of: {', '.join(sorted(SOURCES) + sorted(PACKAGED))}")
    source = SOURCES[name]
    root = Path(root or data_root()).expanduser()
    final = root / source.target
    if final.exists():
        return final
    root.mkdir(parents=True, exist_ok=True)
    url = url or source.url
    with tempfile.TemporaryDirectory(dir=root, prefix=f".{name}-") as tmp:
        download = Path(tmp) / Path(url).name
        md5 = _download(url, download)
        if source.md5 and md5 != source.md5:
            raise BenchError(f"{name}: checksum mismatch for {url} (md5 {md5}, expected {source.md5}); "
                             "the download is corrupt or not the official file")
        if source.size is not None and download.stat().st_size != source.size:
            raise BenchError(f"{name}: {url} has {download.stat().st_size} bytes, expected {source.size}")
        if source.archive:
            unpacked = Path(tmp) / "unpacked"
            _unpack(download, unpacked)
            found = unpacked / source.target
            if not found.is_dir():
                raise BenchError(f"{name}: the archive from {url} has no {source.target}/ directory")
            shutil.move(str(found), final)  # same file system: an atomic rename
        else:
            download.replace(final)
    return final
