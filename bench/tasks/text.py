"""Text for language-model tasks: tokenizers, a memory-mapped token cache, a seeded train/val split.

- Tokenizers: `byte` (default: 256 symbols, nothing to download, every text encodes),
  `tiktoken:<encoding>` and `sentencepiece:<model file>` when those packages are installed.
- Corpus: a text file, or every non-hidden file under a directory (sorted, newline-joined).
- Cache: the token array is written once, atomically, next to the corpus (or under
  `$BENCH_DATA/tokens` when that directory is read-only) with the corpus fingerprint (paths,
  sizes, mtimes) and tokenizer in its name, then memory-mapped: a changed corpus gets a new
  cache, concurrent runs never read a half-written one, and a 1 GB corpus costs no RAM.
- Split: the stream is cut into chunks of `CHUNK_WINDOWS` training windows; a seeded
  `val_fraction` of the chunks is held out. Training windows start anywhere inside a training
  chunk, so no window straddles the split.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench import BenchError
from bench.tasks.base import seeded_generator
from bench.tasks.download import data_root

CHUNK_WINDOWS = 8


class ByteTokenizer:
    name, vocab_size = "byte", 256

    def encode(self, raw: bytes) -> np.ndarray:
        return np.frombuffer(raw, dtype=np.uint8)

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids).decode("utf-8", errors="replace")


class TiktokenTokenizer:
    def __init__(self, encoding: str):
        import tiktoken

        self.enc = tiktoken.get_encoding(encoding)
        self.name, self.vocab_size = f"tiktoken-{encoding}", self.enc.n_vocab

    def encode(self, raw: bytes) -> np.ndarray:
        return np.asarray(self.enc.encode_ordinary(raw.decode("utf-8", errors="replace")), dtype=np.int64)

    def decode(self, ids) -> str:
        return self.enc.decode([int(i) for i in ids])


class SentencePieceTokenizer:
    def __init__(self, model_file: str):
        import sentencepiece

        path = Path(model_file).expanduser()
        if not path.is_file():
            raise BenchError(f"sentencepiece model {path} not found; set task.tokenizer=sentencepiece:<file.model>")
        self.sp = sentencepiece.SentencePieceProcessor(model_file=str(path))
        digest = hashlib.sha1(path.read_bytes()).hexdigest()[:8]
        self.name, self.vocab_size = f"sentencepiece-{path.stem}-{digest}", self.sp.get_piece_size()

    def encode(self, raw: bytes) -> np.ndarray:
        return np.asarray(self.sp.encode(raw.decode("utf-8", errors="replace")), dtype=np.int64)

    def decode(self, ids) -> str:
        return self.sp.decode([int(i) for i in ids])


def get_tokenizer(spec: str):
    kind, _, arg = spec.partition(":")
    if kind == "byte" and not arg:
        return ByteTokenizer()
    makers = {"tiktoken": (TiktokenTokenizer, "tiktoken:gpt2"), "sentencepiece": (SentencePieceTokenizer, "sentencepiece:tok.model")}
    if kind not in makers or not arg:
        raise BenchError(f"unknown task.tokenizer {spec!r}; use byte, tiktoken:<encoding> or sentencepiece:<model file>")
    maker, example = makers[kind]
    try:
        return maker(arg)
    except ImportError as exc:
        raise BenchError(f"task.tokenizer={spec} needs `pip install {kind}` (or use task.tokenizer=byte)") from exc
    except (KeyError, ValueError) as exc:  # tiktoken: unknown encoding
        raise BenchError(f"task.tokenizer={spec}: {exc}; e.g. task.tokenizer={example}") from exc


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype(np.uint8 if vocab_size <= 256 else np.uint16 if vocab_size <= 65536 else np.uint32)


def corpus_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                         p.relative_to(path).parts))
    if not files:
        raise BenchError(f"no text files under {path}; set task.data= to a text file or a directory of them")
    return files


def writable(folder: Path) -> bool:
    """Whether we may add files to `folder`. A directory without any write permission bit is
    read-only by intent (shared data), even for root, whom `os.access` lets write anywhere."""
    return os.access(folder, os.W_OK) and bool(folder.stat().st_mode & 0o222)


def _cache_path(path: Path, files: list[Path], tokenizer, cache_dir: str | None) -> Path:
    stats = [(str(f.relative_to(path) if f != path else f.name), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    fingerprint = hashlib.sha1(repr((stats, tokenizer.name)).encode()).hexdigest()[:12]
    suffix = token_dtype(tokenizer.vocab_size).name
    home = path if path.is_dir() else path.parent
    stem = path.name if path.is_file() else "corpus"
    if cache_dir is None and not writable(home):
        cache_dir = str(data_root() / "tokens")
    if cache_dir is not None:
        home = Path(cache_dir).expanduser()
        stem = f"{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}-{path.name}"
    return home / f".{stem}.{tokenizer.name}.{fingerprint}.{suffix}"


def _stale_caches(cache: Path):
    """Caches of earlier versions of the same corpus: same name up to the fingerprint."""
    prefix = cache.name.rsplit(".", 2)[0] + "."
    return [p for p in cache.parent.iterdir() if p.name.startswith(prefix) and p != cache]


def load_tokens(data: str, tokenizer, cache_dir: str | None = None) -> tuple[np.ndarray, Path]:
    """The corpus at `data` as a read-only memory-mapped token array, built on first use."""
    path = Path(data).expanduser()
    files = corpus_files(path)
    cache = _cache_path(path, files, tokenizer, cache_dir)
    dtype = token_dtype(tokenizer.vocab_size)
    if not cache.exists():
        parts = [tokenizer.encode(f.read_bytes()) for f in files]
        newline = tokenizer.encode(b"\n")
        joined = np.concatenate([x for p in parts for x in (p, newline)][:-1]).astype(dtype)
        cache.parent.mkdir(parents=True, exist_ok=True)
        for stale in _stale_caches(cache):
            stale.unlink(missing_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=".tmp-tokens-")
        with os.fdopen(fd, "wb") as f:
            f.write(joined.tobytes())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; others sharing the corpus may read the cache
        os.replace(tmp, cache)
    if cache.stat().st_size == 0:
        raise BenchError(f"{path} holds no text")
    return np.memmap(cache, dtype=dtype, mode="r"), cache


def synthetic_text(n_bytes: int, seed: int) -> bytes:
    """Deterministic English-looking prose from a 300-word invented vocabulary with Zipf
    frequencies: learnable structure (spelling, spacing, sentences) for tests and throughput runs."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("etaoinshrdlucmfwypvbgk"))
    words = ["".join(rng.choice(letters, size=rng.integers(2, 9))) for _ in range(300)]
    weights = 1.0 / np.arange(1, len(words) + 1)
    picks = rng.choice(len(words), size=n_bytes // 4 + 16, p=weights / weights.sum())
    out, length = [], 0
    for i, w in enumerate(picks):
        word = words[w].capitalize() if i % 9 == 0 else words[w]
        word += ".\n" if i % 9 == 8 else " "
        out.append(word)
        length += len(word)
        if length >= n_bytes:
            break
    return "".join(out).encode()[:n_bytes]


class Split:
    """Chunked, seeded train/val split of a token stream for windows of `seq_len + 1` tokens."""

    def __init__(self, tokens: np.ndarray, seq_len: int, val_fraction: float, split_seed: int):
        self.tokens, self.window = tokens, seq_len + 1
        self.chunk = CHUNK_WINDOWS * self.window
        n_chunks = len(tokens) // self.chunk
        if n_chunks < 2:
            raise BenchError(f"corpus too small: {len(tokens)} tokens, need at least {2 * self.chunk} for "
                             f"task.seq_len={seq_len}; use more text or a shorter seq_len")
        n_val = min(n_chunks - 1, max(1, round(val_fraction * n_chunks)))
        order = torch.randperm(n_chunks, generator=seeded_generator(split_seed, 41)).numpy()
        self.val_chunks, self.train_chunks = np.sort(order[:n_val]), np.sort(order[n_val:])

    @property
    def train_tokens(self) -> int:
        return len(self.train_chunks) * self.chunk

    def train_batch(self, size: int, seed: int, step: int) -> torch.Tensor:
        """`size` windows at random positions inside training chunks; a function of (seed, step) only."""
        g = seeded_generator(seed, 23, step)
        chunks = self.train_chunks[torch.randint(len(self.train_chunks), (size,), generator=g).numpy()]
        offsets = torch.randint(self.chunk - self.window + 1, (size,), generator=g).numpy()
        return self._gather(chunks * self.chunk + offsets)

    def val_windows(self, max_windows: int) -> torch.Tensor:
        """Non-overlapping windows of the held-out chunks; at most `max_windows`, evenly spread."""
        starts = (self.val_chunks[:, None] * self.chunk + np.arange(CHUNK_WINDOWS) * self.window).ravel()
        if len(starts) > max_windows:
            starts = starts[np.linspace(0, len(starts) - 1, max_windows).round().astype(np.int64)]
        return self._gather(starts)

    def _gather(self, starts: np.ndarray) -> torch.Tensor:
        rows = np.asarray(self.tokens[starts[:, None] + np.arange(self.window)], dtype=np.int64)
        return torch.from_numpy(rows)
