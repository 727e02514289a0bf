"""A tiny GPT-2-style model trained from scratch on the local corpora, for proofs on CPU.

Why: no pretrained weights can be downloaded here, yet the watermark must be shown to
survive distillation. A byte-level BPE tokenizer (``tokenizers``) and a GPT-2 of a few
million parameters (``transformers``) are trained on the instruction/response text under
``../shared/datasets`` (read at run time, never copied into the repository).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distillguard.watermark._deps import require

PROMPT_FMT = "Instruction: {prompt}\nResponse:"
EOS = "<|eos|>"
PAD = "<|pad|>"


def corpus_pairs(data_dir: Path | str | None = None, max_chars: int = 1500) -> list[tuple[str, str]]:
    """(prompt, response) pairs with a non-empty response, from every corpus that has them."""
    from distillguard import corpora

    c = corpora.load(data_dir)
    pairs: list[tuple[str, str]] = [(p, r) for p, r in zip(c.chat, c.chat_resp, strict=True) if r.strip()]
    for tasks in (c.seed_tasks, c.code_tasks, c.roleplay_tasks, c.tool_tasks):
        for inst, inp, out in tasks:
            if out.strip():
                prompt = inst.strip() if not inp.strip() else f"{inst.strip()}\n{inp.strip()}"
                pairs.append((prompt, out))
    return [(p[:max_chars], r[:max_chars]) for p, r in pairs]


def train_tokenizer(texts: Sequence[str], vocab_size: int = 2048) -> Any:
    """Byte-level BPE trained on ``texts``: every string encodes, nothing is unknown."""
    tk = require("tokenizers")
    tok = tk.Tokenizer(tk.models.BPE())
    tok.pre_tokenizer = tk.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tk.decoders.ByteLevel()
    trainer = tk.trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=[PAD, EOS], initial_alphabet=tk.pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


@dataclass
class LMConfig:
    """Model and training sizes; ``small`` fits minutes on two CPU cores."""

    vocab_size: int = 2048
    n_ctx: int = 256
    n_layer: int = 4
    n_embd: int = 192
    n_head: int = 4
    steps: int = 600
    batch: int = 16
    lr: float = 2e-3


def build_model(cfg: LMConfig, seed: int = 0) -> Any:
    torch = require("torch")
    tf = require("transformers")
    torch.manual_seed(seed)
    conf = tf.GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.n_ctx, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, bos_token_id=1, eos_token_id=1, pad_token_id=0,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    return tf.GPT2LMHeadModel(conf)


def n_params(model: Any) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def encode_pairs(tok: Any, pairs: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Each pair as one training sequence: prompt, response, end-of-sequence."""
    eos = tok.token_to_id(EOS)
    texts = [PROMPT_FMT.format(prompt=p) + " " + r for p, r in pairs]
    return [[*e.ids, eos] for e in tok.encode_batch(texts)]


def train_lm(
    model: Any, seqs: Sequence[Sequence[int]], cfg: LMConfig, seed: int = 0, device: str = "cpu",
    time_budget_s: float | None = None,
) -> dict[str, float]:
    """Next-token training on random windows of the concatenated sequences."""
    torch = require("torch")
    rng = random.Random(seed)
    stream = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
    n = cfg.n_ctx
    if len(stream) <= n + 1:
        raise ValueError(f"training stream has {len(stream)} tokens, fewer than one window of {n}")
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    t0 = time.perf_counter()
    loss_v = float("nan")
    step = 0
    for step in range(cfg.steps):  # noqa: B007
        starts = [rng.randrange(0, len(stream) - n - 1) for _ in range(cfg.batch)]
        x = torch.stack([stream[s : s + n] for s in starts]).to(device)
        out = model(input_ids=x, labels=x)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        loss_v = float(out.loss.item())
        if time_budget_s is not None and time.perf_counter() - t0 > time_budget_s:
            break
    model.eval()
    return {"final_loss": loss_v, "steps": step + 1, "seconds": time.perf_counter() - t0}


def generate(
    model: Any, tok: Any, prompts: Sequence[str], max_new_tokens: int = 128, processor: Any = None,
    batch: int = 32, seed: int = 0, device: str = "cpu", min_new_tokens: int = 0,
) -> list[list[int]]:
    """Sample (temperature 1, no top-k) a continuation of each prompt; returns new token ids."""
    torch = require("torch")
    tf = require("transformers")
    if max_new_tokens >= model.config.n_positions:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a context of {model.config.n_positions}")
    procs = tf.LogitsProcessorList([processor] if processor is not None else [])
    out: list[list[int]] = []
    torch.manual_seed(seed)
    model.to(device).eval()
    threads = torch.get_num_threads()
    if device == "cpu":
        # decoding a tiny model is thousands of tiny ops: one thread avoids barrier stalls
        torch.set_num_threads(1)
    try:
        for i in range(0, len(prompts), batch):
            out += _generate_batch(model, tok, prompts[i : i + batch], max_new_tokens, procs, device, min_new_tokens)
    finally:
        torch.set_num_threads(threads)
    return out


def _generate_batch(
    model: Any, tok: Any, prompts: Sequence[str], max_new_tokens: int, procs: Any, device: str, min_new_tokens: int
) -> list[list[int]]:
    torch = require("torch")
    eos, pad = tok.token_to_id(EOS), tok.token_to_id(PAD)
    keep = model.config.n_positions - max_new_tokens
    enc = [e.ids[-keep:] for e in tok.encode_batch([PROMPT_FMT.format(prompt=p) for p in prompts])]
    width = max(len(e) for e in enc)
    ids = torch.tensor([[pad] * (width - len(e)) + e for e in enc], dtype=torch.long, device=device)
    starts = torch.tensor([width - len(e) for e in enc], device=device)
    mask = (torch.arange(width, device=device)[None, :] >= starts[:, None]).long()
    with torch.no_grad():
        gen = model.generate(
            input_ids=ids, attention_mask=mask, do_sample=True, top_k=0, top_p=1.0, temperature=1.0,
            max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, logits_processor=procs,
            pad_token_id=pad, eos_token_id=eos,
        )
    out = []
    for row in gen[:, width:].tolist():
        cut = row.index(eos) if eos in row else len(row)
        out.append([t for t in row[:cut] if t != pad])
    return out


def perplexity(
    model: Any, tok: Any, prompts: Sequence[str], continuations: Sequence[Sequence[int]], device: str = "cpu",
    batch: int = 32,
) -> float:
    """Perplexity of ``continuations`` given their prompts under ``model`` (the reference)."""
    torch = require("torch")
    n_ctx = model.config.n_positions
    rows: list[tuple[list[int], int]] = []
    for p, c in zip(prompts, continuations, strict=True):
        if c:
            ids = (tok.encode(PROMPT_FMT.format(prompt=p)).ids + list(c))[-n_ctx:]
            rows.append((ids, min(len(c), len(ids) - 1)))
    nll, count = 0.0, 0
    model.to(device).eval()
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            chunk = rows[i : i + batch]
            width = max(len(r) for r, _ in chunk)
            x = torch.tensor([r + [0] * (width - len(r)) for r, _ in chunk], device=device)
            logp = torch.log_softmax(model(input_ids=x).logits[:, :-1].float(), -1)
            tok_lp = logp.gather(-1, x[:, 1:, None])[..., 0]
            for j, (r, k) in enumerate(chunk):
                nll -= float(tok_lp[j, len(r) - 1 - k : len(r) - 1].sum())
                count += k
    return math.exp(nll / max(count, 1))
