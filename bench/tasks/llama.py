"""A LLaMA-style decoder-only language model in plain torch, and the language-modelling task.

Architecture (Touvron et al. 2023): pre-norm RMSNorm, rotary position embeddings, SwiGLU MLP,
optional grouped-query attention (`n_kv_heads < n_heads`), no biases, causal
`F.scaled_dot_product_attention`, untied (or tied) input/output embeddings. Initialisation as
in the HF LLaMA code the GaLore/ReLoRA experiments train with: every linear and embedding
weight ~ N(0, 0.02^2), norm gains 1.

Presets: `tiny` (~1M parameters with the byte tokenizer, CPU tests), `small` (~10.8M), and the
60M/130M/350M shapes of the memory-efficient-optimizer papers (their names count a 32k
vocabulary; with the 256-symbol byte tokenizer they are 25M/86M/302M).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from bench import BenchError
from bench.tasks.base import Task
from bench.tasks.download import SOURCES, data_root
from bench.tasks.text import Split, get_tokenizer, load_tokens, synthetic_text, token_dtype

PRESETS = {
    "tiny": dict(d_model=128, n_layers=5, n_heads=4, ffn_dim=352),
    "small": dict(d_model=384, n_layers=6, n_heads=6, ffn_dim=1024),
    "60m": dict(d_model=512, n_layers=8, n_heads=8, ffn_dim=1376),
    "130m": dict(d_model=768, n_layers=12, n_heads=12, ffn_dim=2048),
    "350m": dict(d_model=1024, n_layers=24, n_heads=16, ffn_dim=2736),
}


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    ffn_dim: int
    max_seq_len: int
    n_kv_heads: int | None = None  # None: as many as query heads (no grouping)
    tie_embeddings: bool = False
    init_std: float = 0.02
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps, self.weight = eps, nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the mean square in fp32: in bf16 it loses the small activations the gain is meant to rescale
        xf = x.float()
        return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)).type_as(x) * self.weight


def rope_tables(head_dim: int, max_len: int, theta: float) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(max_len, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)  # the rotate-half layout of the HF implementation
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each (i, i + head_dim/2) pair of x (B, heads, T, head_dim) by position-dependent angles."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.cfg = cfg
        self.q = nn.Linear(cfg.d_model, cfg.n_heads * cfg.head_dim, bias=False)
        self.k = nn.Linear(cfg.d_model, cfg.kv_heads * cfg.head_dim, bias=False)
        self.v = nn.Linear(cfg.d_model, cfg.kv_heads * cfg.head_dim, bias=False)
        self.o = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        cfg = self.cfg
        q = self.q(x).view(b, t, cfg.n_heads, cfg.head_dim).transpose(1, 2)
        k = self.k(x).view(b, t, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
        v = self.v(x).view(b, t, cfg.kv_heads, cfg.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if cfg.kv_heads != cfg.n_heads:  # grouped-query attention: each k/v head serves a group of q heads
            k = k.repeat_interleave(cfg.n_heads // cfg.kv_heads, dim=1)
            v = v.repeat_interleave(cfg.n_heads // cfg.kv_heads, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, cfg.n_heads * cfg.head_dim))


class SwiGLU(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.gate = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.up = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.down = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        self.attn_norm, self.attn = RMSNorm(cfg.d_model, cfg.norm_eps), Attention(cfg)
        self.mlp_norm, self.mlp = RMSNorm(cfg.d_model, cfg.norm_eps), SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class Llama(nn.Module):
    def __init__(self, cfg: LlamaConfig):
        super().__init__()
        if cfg.d_model % cfg.n_heads or cfg.n_heads % cfg.kv_heads or cfg.head_dim % 2:
            raise ValueError(f"need d_model % n_heads == 0, n_heads % n_kv_heads == 0 and an even head_dim: {cfg}")
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        cos, sin = rope_tables(cfg.head_dim, cfg.max_seq_len, cfg.rope_theta)
        # not persistent: recomputable from the config, so checkpoints stay weights only
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, mean=0.0, std=cfg.init_std)
        if cfg.tie_embeddings:
            self.head.weight = self.embed.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.embed(idx)
        cos, sin = self.cos[:t], self.sin[:t]
        for block in self.blocks:
            x = block(x, cos, sin)
        return self.head(self.norm(x))

    def matmul_params(self) -> int:
        """Parameters that take part in a matmul for every token: all linear weights (the output
        head included, also when it shares the embedding); the embedding lookup is not a matmul."""
        return sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))


def flops_per_token(model: Llama, seq_len: int) -> int:
    """Training FLOPs per token, forward and backward (PaLM appendix B): 6 per matmul weight plus
    12 * layers * d_model * seq_len for the attention scores and their weighted sum."""
    cfg = model.cfg
    return 6 * model.matmul_params() + 12 * cfg.n_layers * cfg.d_model * seq_len


# dense bf16 tensor-core peaks (TFLOP/s) of common training GPUs; matched against the device name
# in order, so the PCIe H100 is found before the SXM one
PEAK_TFLOPS = (("H100 PCIe", 756.0), ("H100", 989.0), ("H200", 989.0), ("GH200", 989.0), ("A100", 312.0),
               ("L40S", 362.0), ("L4", 121.0), ("A10", 125.0))


def device_peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None  # CPUs publish no comparable figure: set task.peak_tflops to get an MFU
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in PEAK_TFLOPS if key in name), None)


class LanguageModel(Task):
    """Next-token prediction on a text corpus. Batches are (batch_size, seq_len + 1) token windows;
    `items_per_batch` counts predicted tokens.

    Gradient accumulation (`grad_accum=k`): the batch is split into k micro-batches inside
    `loss()`; the first k-1 are back-propagated there, and the last one's loss is returned (plus
    the others' values, detached) for the training loop's own `backward()`. Every micro-batch
    has the same number of tokens, so the gradient and the returned value equal those of the
    mean loss over the whole batch, with one micro-batch of activations alive at a time.
    Closure optimizers work unchanged (each closure call zeroes the gradients, then calls
    `loss()`); optimizers that take Hessian-vector products through `backward(create_graph=True)`
    only see the last micro-batch's graph, so use grad_accum=1 with them.

    Throughput (`train/tokens`, `train/tokens_per_s`, `train/mfu`), reported at each evaluation,
    counts the time between evaluations, so evaluation stays off it; the first evaluation (the
    training loop's step 0, after its warm-up step) restarts the count, so warm-up and compile
    time are off it too. A batch seen twice in a row (closure optimizers re-evaluating the loss)
    is counted once: MFU measures useful model FLOPs.
    """

    metric = "val/loss"
    mode = "min"

    def __init__(self, data: str | None = None, synthetic: int = 0, tokenizer: str = "byte", preset: str = "small",
                 d_model: int | None = None, n_layers: int | None = None, n_heads: int | None = None,
                 n_kv_heads: int | None = None, ffn_dim: int | None = None, tie_embeddings: bool = False,
                 init_std: float = 0.02, seq_len: int = 256, grad_accum: int = 1, val_fraction: float = 0.05,
                 split_seed: int = 0, eval_tokens: int = 32768, compile: bool = False,
                 peak_tflops: float | None = None, cache_dir: str | None = None,
                 seed: int = 0, device: str | torch.device = "cpu", batch_size: int = 8):
        super().__init__(seed=seed, device=device, batch_size=batch_size)
        if preset not in PRESETS:
            raise BenchError(f"unknown task.preset {preset!r}; choose one of: {', '.join(PRESETS)}")
        if batch_size <= 0 or grad_accum <= 0 or batch_size % grad_accum:
            raise BenchError(f"batch_size={batch_size} must be a positive multiple of task.grad_accum={grad_accum}")
        self.tok = get_tokenizer(tokenizer)
        if synthetic > 0:
            tokens = self.tok.encode(synthetic_text(synthetic, split_seed)).astype(token_dtype(self.tok.vocab_size))
            self.source, self.cache = f"synthetic ({synthetic} bytes)", None
        else:
            path = resolve_data(data)
            if not path.exists():
                raise BenchError(f"no text at {path}: run `bench data shakespeare` or set task.data= to a text "
                                 "file or a directory of them")
            tokens, self.cache = load_tokens(str(path), self.tok, cache_dir)
            self.source = str(path)
        self.split = Split(tokens, seq_len, val_fraction, split_seed)
        shape = {**PRESETS[preset], **{k: v for k, v in dict(d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                                                                ffn_dim=ffn_dim).items() if v is not None}}
        self.cfg = LlamaConfig(vocab_size=self.tok.vocab_size, max_seq_len=seq_len, n_kv_heads=n_kv_heads,
                               tie_embeddings=tie_embeddings, init_std=init_std, **shape)
        self.preset, self.seq_len, self.grad_accum, self.compile = preset, seq_len, grad_accum, compile
        self.val = self.split.val_windows(max(1, eval_tokens // seq_len))
        self.peak_tflops = peak_tflops if peak_tflops is not None else device_peak_tflops(self.device)
        self.flops_per_token = 0
        self._tokens, self._train_s, self._since, self._evaluations, self._last_batch = 0, 0.0, None, 0, None

    @classmethod
    def data_present(cls, node) -> bool:
        return node.get("synthetic", 0) > 0 or resolve_data(node.get("data")).exists()

    def model(self) -> nn.Module:
        torch.manual_seed(self.seed)
        net = Llama(self.cfg)  # built on the CPU, so a seed gives the same weights on every device
        self.flops_per_token = flops_per_token(net, self.seq_len)
        net = net.to(self.device)
        return torch.compile(net) if self.compile else net

    def batches(self, start: int = 0):
        step = start
        while True:
            batch = self.split.train_batch(self.batch_size, self.seed, step)
            if self.device.type == "cuda":
                batch = batch.pin_memory().to(self.device, non_blocking=True)
            yield batch
            step += 1

    def items_per_batch(self, batch) -> int:
        return batch.shape[0] * (batch.shape[1] - 1)

    def _lm_loss(self, model, windows: torch.Tensor) -> torch.Tensor:
        logits = model(windows[:, :-1])
        return F.cross_entropy(logits.flatten(0, 1).float(), windows[:, 1:].flatten())

    def loss(self, model, batch):
        if not torch.is_grad_enabled():
            return self._lm_loss(model, batch)
        if batch is not self._last_batch:
            self._last_batch = batch
            self._tokens += self.items_per_batch(batch)
            if self._since is None:
                self._since = time.perf_counter()
        if self.grad_accum == 1:
            return self._lm_loss(model, batch)
        micro = batch.chunk(self.grad_accum)
        done = torch.zeros((), device=batch.device)
        for part in micro[:-1]:
            part_loss = self._lm_loss(model, part) / self.grad_accum
            part_loss.backward()
            done = done + part_loss.detach()
        return self._lm_loss(model, micro[-1]) / self.grad_accum + done

    @torch.no_grad()
    def evaluate(self, model):
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        if self._since is not None:
            self._train_s += time.perf_counter() - self._since
        metrics = {}
        if self._evaluations == 0:
            self._tokens, self._train_s = 0, 0.0
        elif self._train_s > 0:
            rate = self._tokens / self._train_s
            metrics.update({"train/tokens": self._tokens, "train/tokens_per_s": rate})
            if self.peak_tflops:
                metrics["train/mfu"] = self.flops_per_token * rate / (self.peak_tflops * 1e12)
        self._evaluations += 1
        self._last_batch = None  # the loop's first step reuses its warm-up batch: count it
        total, micro = 0.0, max(1, self.batch_size // self.grad_accum)
        for i in range(0, len(self.val), micro):
            windows = self.val[i : i + micro].to(self.device)
            total += self._lm_loss(model, windows).item() * len(windows)
        val_loss = total / len(self.val)
        metrics.update({"val/loss": val_loss, "val/ppl": math.exp(min(val_loss, 50.0))})
        self._since = time.perf_counter()
        return metrics

    def describe(self):
        cfg = self.cfg
        return {"data": self.source, "cache": str(self.cache) if self.cache else None, "tokenizer": self.tok.name,
                "vocab_size": cfg.vocab_size, "tokens": len(self.split.tokens), "train_tokens": self.split.train_tokens,
                "val_tokens": int(self.val.numel() - len(self.val)), "preset": self.preset,
                "shape": {k: getattr(cfg, k) for k in ("d_model", "n_layers", "n_heads", "kv_heads", "ffn_dim")},
                "seq_len": self.seq_len, "grad_accum": self.grad_accum, "flops_per_token": self.flops_per_token,
                "peak_tflops": self.peak_tflops}


def resolve_data(data: str | None) -> Path:
    """The configured corpus, or the text `bench data shakespeare` puts in the data root."""
    return Path(data).expanduser() if data else data_root() / SOURCES["shakespeare"].target
