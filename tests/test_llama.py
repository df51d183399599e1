"""LLaMA task: tokenizer, token cache, split, model shapes and parameter counts, RoPE, causality,
grouped-query attention, gradient accumulation, the missing-data error, a tiny end-to-end run."""

import dataclasses
from itertools import islice

import pytest
import torch
from conftest import only_run, read_run
from omegaconf import OmegaConf

from bench import BenchError
from bench.tasks import download, text
from bench.tasks.llama import (
    PRESETS,
    LanguageModel,
    Llama,
    LlamaConfig,
    apply_rope,
    flops_per_token,
    rope_tables,
)
from bench.tasks.text import ByteTokenizer, Split, get_tokenizer, load_tokens, synthetic_text


def expected_params(vocab, d_model, n_layers, n_heads, ffn_dim, kv_heads=None, tied=False):
    head = d_model // n_heads
    kv = (kv_heads or n_heads) * head
    per_layer = 2 * d_model * d_model + 2 * d_model * kv + 3 * d_model * ffn_dim + 2 * d_model
    return vocab * d_model * (1 if tied else 2) + n_layers * per_layer + d_model


def build(vocab=256, preset="tiny", **kw):
    with torch.device("meta"):
        return Llama(LlamaConfig(vocab_size=vocab, max_seq_len=256, **{**PRESETS[preset], **kw}))


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_byte_tokenizer_round_trip():
    tok = get_tokenizer("byte")
    sample = "To be, or not to be — 是否 🙂\n"
    ids = tok.encode(sample.encode())
    assert ids.max() < tok.vocab_size and len(ids) == len(sample.encode())
    assert tok.decode(ids) == sample


def test_optional_tokenizers():
    with pytest.raises(BenchError, match="unknown task.tokenizer"):
        get_tokenizer("words")
    try:
        import tiktoken  # noqa: F401
    except ImportError:
        with pytest.raises(BenchError, match="pip install tiktoken"):
            get_tokenizer("tiktoken:gpt2")
        return
    tok = get_tokenizer("tiktoken:gpt2")
    assert tok.decode(tok.encode(b"hello world")) == "hello world" and text.token_dtype(tok.vocab_size).itemsize == 2


@pytest.mark.parametrize("preset,params", [("tiny", 1_070_464), ("small", 10_818_432)])
def test_cpu_preset_sizes(preset, params):
    assert count(build(preset=preset)) == expected_params(256, **PRESETS[preset]) == params


@pytest.mark.parametrize("preset,millions", [("60m", 58), ("130m", 134), ("350m", 368)])
def test_paper_preset_sizes_with_a_32k_vocabulary(preset, millions):
    model = build(vocab=32000, preset=preset)
    assert count(model) == expected_params(32000, **PRESETS[preset])
    assert round(count(model) / 1e6) == millions


def test_tied_embeddings_and_grouped_query_attention_shapes():
    tied = build(tie_embeddings=True)
    assert tied.head.weight is tied.embed.weight
    assert count(tied) == expected_params(256, **PRESETS["tiny"], tied=True)
    torch.manual_seed(0)
    gqa = Llama(LlamaConfig(vocab_size=256, max_seq_len=32, **{**PRESETS["tiny"], "n_kv_heads": 2}))
    assert count(gqa) == expected_params(256, **PRESETS["tiny"], kv_heads=2)
    assert gqa.blocks[0].attn.k.weight.shape == (2 * 32, 128)
    assert gqa(torch.randint(0, 256, (3, 17))).shape == (3, 17, 256)


def test_model_is_causal_and_initialised_like_llama():
    torch.manual_seed(0)
    model = Llama(LlamaConfig(vocab_size=256, max_seq_len=32, **PRESETS["tiny"]))
    x = torch.randint(0, 256, (2, 20))
    y = x.clone()
    y[:, 12:] = (y[:, 12:] + 1) % 256
    with torch.no_grad():
        a, b = model(x), model(y)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-5) and not torch.allclose(a[:, 12:], b[:, 12:])
    assert abs(model.blocks[0].mlp.up.weight.std().item() - 0.02) < 1e-3
    assert torch.equal(model.norm.weight, torch.ones(128))


def test_rope_scores_depend_only_on_relative_position():
    cos, sin = rope_tables(16, 64, 10000.0)
    q, k = torch.randn(16), torch.randn(16)

    def score(i, j):
        qi = apply_rope(q.view(1, 1, 1, 16), cos[i : i + 1], sin[i : i + 1])
        kj = apply_rope(k.view(1, 1, 1, 16), cos[j : j + 1], sin[j : j + 1])
        return (qi * kj).sum().item()

    assert score(10, 3) == pytest.approx(score(40, 33), abs=1e-4)
    assert score(10, 3) != pytest.approx(score(10, 4), abs=1e-3)


def test_flops_per_token_counts_matmuls_and_attention():
    model = build(preset="tiny")
    matmuls = 5 * (4 * 128 * 128 + 3 * 128 * 352) + 256 * 128
    assert flops_per_token(model, 64) == 6 * matmuls + 12 * 5 * 128 * 64


def test_token_cache_next_to_corpus_rebuilt_when_it_changes(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(synthetic_text(5000, 0))
    tokens, cache = load_tokens(str(corpus), ByteTokenizer())
    assert cache.parent == tmp_path and cache.name.startswith(".corpus.txt.byte.")
    assert bytes(tokens) == corpus.read_bytes()
    again, cache_again = load_tokens(str(corpus), ByteTokenizer())
    assert cache_again == cache
    corpus.write_bytes(b"changed " * 800)
    changed, new_cache = load_tokens(str(corpus), ByteTokenizer())
    assert new_cache != cache and not cache.exists() and bytes(changed) == corpus.read_bytes()


def test_directory_corpus_and_read_only_fallback(tmp_path, monkeypatch):
    (tmp_path / "docs" / "sub").mkdir(parents=True)
    (tmp_path / "docs" / "b.txt").write_text("second")
    (tmp_path / "docs" / "sub" / "a.txt").write_text("nested")
    (tmp_path / "docs" / ".hidden").write_text("skipped")
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "data"))
    (tmp_path / "docs").chmod(0o555)  # read-only: no write bit, whoever runs the tests
    tokens, cache = load_tokens(str(tmp_path / "docs"), ByteTokenizer())
    assert bytes(tokens) == b"second\nnested"
    assert cache.parent == tmp_path / "data" / "tokens"
    assert [p.name for p in (tmp_path / "docs").iterdir() if p.name.startswith(".")] == [".hidden"]
    (tmp_path / "docs").chmod(0o755)


def test_split_is_seeded_disjoint_and_resumable():
    tokens = ByteTokenizer().encode(synthetic_text(40000, 1))
    split = Split(tokens, seq_len=31, val_fraction=0.1, split_seed=0)
    assert len(set(split.val_chunks) & set(split.train_chunks)) == 0 and len(split.val_chunks) == 16
    assert not (Split(tokens, 31, 0.1, split_seed=1).val_chunks == split.val_chunks).all()
    batch = split.train_batch(64, seed=0, step=3)
    assert batch.shape == (64, 32) and torch.equal(batch, split.train_batch(64, seed=0, step=3))
    # every training window lies inside one training chunk
    val_text = {bytes(w.numpy().astype("uint8")) for w in split.val_windows(10**6)}
    assert len(val_text) == 16 * 8 and not any(bytes(w.numpy().astype("uint8")) in val_text for w in batch)
    with pytest.raises(BenchError, match="corpus too small"):
        Split(tokens[:300], seq_len=31, val_fraction=0.1, split_seed=0)


def test_batches_from_start_equal_skipping():
    task = LanguageModel(synthetic=20000, preset="tiny", seq_len=32, batch_size=4, seed=5)
    full = list(islice(task.batches(), 6))
    resumed = list(islice(task.batches(4), 2))
    assert all(torch.equal(a, b) for a, b in zip(full[4:], resumed, strict=True))
    assert task.items_per_batch(full[0]) == 4 * 32


def test_gradient_accumulation_matches_the_full_batch():
    task = LanguageModel(synthetic=20000, preset="tiny", seq_len=32, batch_size=8, seed=0)
    chunked = LanguageModel(synthetic=20000, preset="tiny", seq_len=32, batch_size=8, seed=0, grad_accum=4)
    batch = next(task.batches())
    grads, values = [], []
    for t in (task, chunked):
        model = t.model()
        loss = t.loss(model, batch)
        loss.backward()
        values.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert values[0] == pytest.approx(values[1], rel=1e-5)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-7)
    with pytest.raises(BenchError, match="multiple of task.grad_accum"):
        LanguageModel(synthetic=20000, preset="tiny", seq_len=32, batch_size=6, grad_accum=4)


def test_missing_data_is_one_line_naming_the_fix(bench_cli, runs_root, tmp_path):
    res = bench_cli("run", "task=llama", f"task.data={tmp_path}/absent.txt", f"runs_root={runs_root}", "progress=off")
    assert res.code == 2, res.output
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and "bench data shakespeare" in lines[0] and "task.data=" in lines[0], res.output
    assert not LanguageModel.data_present(OmegaConf.create({"data": f"{tmp_path}/absent.txt", "synthetic": 0}))


def test_fetch_checks_the_size(tmp_path, monkeypatch):
    page = tmp_path / "input.txt"
    page.write_bytes(synthetic_text(3000, 0))
    with pytest.raises(BenchError, match="expected 1115394"):
        download.fetch("shakespeare", tmp_path / "root", url=page.as_uri())
    monkeypatch.setitem(download.SOURCES, "shakespeare", dataclasses.replace(download.SOURCES["shakespeare"], size=3000))
    monkeypatch.setenv("BENCH_DATA", str(tmp_path / "root"))
    assert download.fetch("shakespeare", url=page.as_uri()).read_bytes() == page.read_bytes()
    assert LanguageModel.data_present(OmegaConf.create({"data": None, "synthetic": 0}))


def test_tiny_run_on_a_corpus_file(bench_cli, runs_root, tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_bytes(synthetic_text(60000, 3))
    res = bench_cli("run", "task=llama_tiny", "task.synthetic=0", f"task.data={corpus}", "task.peak_tflops=1.0",
                    "optimizer.lr=3e-3", "steps=12", "eval_every=6", f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    summary, lines = read_run(only_run(runs_root))
    assert summary["status"] == "ok" and summary["n_params"] == 1_070_464
    info = summary["task_info"]
    assert info["data"] == str(corpus) and info["cache"].startswith(str(tmp_path)) and info["tokens"] == 60000
    evals = [x for x in lines if "val/loss" in x]
    assert [x["step"] for x in evals] == [0, 6, 12]
    assert evals[-1]["val/loss"] < evals[0]["val/loss"] - 0.5, evals  # from ~ln(256) = 5.5, falling
    assert evals[-1]["val/ppl"] == pytest.approx(2.718281828 ** evals[-1]["val/loss"], rel=1e-6)
    last = evals[-1]
    assert last["train/tokens"] == last["items"] == 12 * 8 * 64
    assert last["train/mfu"] == pytest.approx(info["flops_per_token"] * last["train/tokens_per_s"] / 1e12)


def test_hessian_vector_optimizers_train_attention(bench_cli, runs_root):
    """Sophia-H takes Hessian-vector products through the backward pass; the fused CPU attention
    kernel has no double backward, so such runs must use the math kernel (and still train)."""
    res = bench_cli("run", "task=llama_tiny", "task.n_layers=1", "task.d_model=32",
                    "optimizer=sophia", "steps=2", f"runs_root={runs_root}", "progress=off")
    assert res.code == 0, res.output
    summary, _ = read_run(only_run(runs_root))
    assert summary["status"] == "ok", summary.get("error")
