"""MinHash for the paraphrase signal: which implementation, which shingles, which bands.

    python benchmarks/bench_minhash.py [--n 100000] [--runs 3]

Speed: signatures per second over ``--n`` distinct prompts drawn from the simulator's
corpora (``/work/shared/datasets``, loaded by :mod:`distillguard.corpora`; corpus texts,
then texts with a corpus sentence pasted after them, as the simulator varies prompts),
for ``rensa`` (R-MinHash and C-MinHash over pre-hashed words), ``datasketch`` (per
document, on a 5,000-prompt subset: its rate is per prompt) and a numpy MinHash (affine
permutations of the Polars word hashes, a min per row with ``np.minimum.reduceat``).
Every implementation reads the same Polars word hashes; ``tokenise`` is their cost.

Quality: recall of LSH bands on rewordings of 3,000 task-like corpus texts (synonyms
swapped, clauses reordered, an opening or closing added, a corpus sentence pasted, all at
once), and how often distinct corpus texts collide, for unigram and bigram shingles and a
few ``(bands, rows)``. Writes ``benchmarks/results/minhash.json`` (medians of ``--runs``).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import rensa

from distillguard import corpora
from distillguard.signals.minhash import band_keys, signatures, word_hashes

HERE = Path(__file__).resolve().parent
NUM_PERM = 24  # the signal's 8 bands x 3 rows
CONFIGS = ((8, 3), (16, 2), (32, 2), (20, 3), (16, 4), (8, 2), (12, 3))
SYNONYMS = {
    "write": "compose", "explain": "describe", "create": "generate", "list": "enumerate", "short": "brief",
    "function": "routine", "program": "script", "find": "identify", "make": "build", "give": "provide",
    "describe": "outline", "summarize": "sum up", "generate": "produce", "show": "display", "use": "employ",
    "simple": "basic", "good": "great", "important": "key", "different": "distinct", "example": "instance",
    "answer": "reply", "question": "query", "following": "next", "text": "passage", "story": "tale",
    "code": "snippet", "sentence": "phrase", "article": "piece", "number": "value", "words": "terms",
    "help": "assist", "best": "top", "ways": "methods", "people": "folks", "tell": "inform", "new": "fresh",
    "large": "big", "small": "little", "idea": "notion", "change": "modify", "check": "verify",
}  # fmt: skip
OPENINGS = ("Hey, could you help me with this?", "I have a question.", "Quick one for you:", "Please do the following.",
            "I'm working on something and need a hand.", "Task for today:", "Hello! I need some help.",
            "Can you take a look at this?", "Here is what I need:", "Good morning.")  # fmt: skip
CLOSINGS = ("Thanks in advance!", "Please be detailed.", "Keep it concise.", "I appreciate it.", "Be thorough.",
            "Answer in plain English.", "No need for an intro.", "Thank you so much.", "Cheers.", "Make it clear.")  # fmt: skip


def _texts(c: corpora.Corpora) -> tuple[list[str], list[str], list[str]]:
    """(every distinct corpus text, task-like texts, sentences to paste)."""
    tasks = [f"{i}\n{x}".strip() for i, x, _ in c.seed_tasks + c.code_tasks] + [t[0] for t in c.roleplay_tasks] + c.questions
    allt = tasks + c.chat + c.code + [h for d in c.dialogues for h in d] + [t[0] for t in c.tool_tasks]
    sents = [s.strip() for t in c.chat + c.questions for s in re.split(r"(?<=[.!?])\s+", t) if 25 <= len(s.strip()) <= 200]
    return list(dict.fromkeys(t for t in allt if t.strip())), list(dict.fromkeys(t for t in tasks if len(t.split()) >= 4)), sents


def prompts(n: int, base: list[str], sents: list[str], rng: random.Random) -> pl.Series:
    out = list(base)
    while len(out) < n * 1.05:
        out.append(f"{rng.choice(base)} {rng.choice(sents)}")
    return pl.Series("prompt", list(dict.fromkeys(out))[:n])


# -- rewordings ---------------------------------------------------------------------------------
def synonyms(t: str, rng: random.Random) -> str:
    return re.sub(r"[A-Za-z]+", lambda m: SYNONYMS.get(m.group(0).lower(), m.group(0)), t)


def reorder(t: str, rng: random.Random) -> str:
    parts = [p for p in re.split(r"(?<=[.!?,;:\n])\s+", t) if p]
    if len(parts) > 1:
        rng.shuffle(parts)
        return " ".join(parts)
    w = t.split()
    k = max(1, len(w) // 3)
    return " ".join(w[-k:] + w[:-k])


def frame(t: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 1 / 3:
        return f"{rng.choice(OPENINGS)} {t}"
    return f"{t} {rng.choice(CLOSINGS)}" if r < 2 / 3 else f"{rng.choice(OPENINGS)} {t} {rng.choice(CLOSINGS)}"


def all_ops(t: str, rng: random.Random) -> str:
    return frame(reorder(synonyms(t, rng), rng), rng)


OPS: dict[str, Callable[[str, random.Random], str]] = {
    "synonyms": synonyms, "reorder": reorder, "opening_closing": frame, "all_three": all_ops,
}  # fmt: skip


# -- implementations ----------------------------------------------------------------------------
def rensa_r(h: np.ndarray, off: np.ndarray, num_perm: int) -> np.ndarray:
    """R-MinHash over the flat buffer; its matrix converts to numpy only through Python lists."""
    m = rensa.RMinHash.digest_matrix_from_flat_token_hashes(h, off, num_perm, 7)
    return np.asarray(m.to_rows(), dtype=np.uint32)


def rensa_c(h: np.ndarray, off: np.ndarray, num_perm: int) -> np.ndarray:
    sets = np.split(h, off[1:-1].astype(np.int64))
    return np.asarray(rensa.CMinHash.digests64_from_token_hash_sets(sets, num_perm, 7), dtype=np.uint64)


def datasketch_minhash(h: np.ndarray, off: np.ndarray, num_perm: int) -> np.ndarray:
    from datasketch import MinHash

    out = np.empty((len(off) - 1, num_perm), dtype=np.uint64)
    for i, s in enumerate(np.split(h, off[1:-1].astype(np.int64))):
        m = MinHash(num_perm=num_perm, seed=7, hashfunc=int, scheme="affine64")
        m.update_batch(s.tolist())
        out[i] = m.hashvalues
    return out


def bigrams(h: np.ndarray, off: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Adjacent word pairs within each row (a one-word row keeps its word)."""
    n = len(off) - 1
    row = np.repeat(np.arange(n), np.diff(off).astype(np.int64))
    with np.errstate(over="ignore"):
        pair = h[:-1] * np.uint64(0x9E3779B97F4A7C15) ^ h[1:]
    same = row[:-1] == row[1:]
    lens = np.diff(off).astype(np.int64)
    single = np.flatnonzero(lens == 1)
    keep_rows = np.concatenate([row[:-1][same], row[off[single].astype(np.int64)]])
    vals = np.concatenate([pair[same], h[off[single].astype(np.int64)]])
    order = np.argsort(keep_rows, kind="stable")
    new_off = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(np.bincount(keep_rows, minlength=n), out=new_off[1:])
    return vals[order], new_off


def _median_time(fn: Callable[[], object], runs: int) -> float:
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def speed(p: pl.Series, runs: int) -> dict[str, object]:
    _h, off = word_hashes(p)
    ps = p.filter(pl.Series(np.diff(off) > 0))  # rows with words: every implementation signs them
    hn, offn = word_hashes(ps)
    n = ps.len()
    res: dict[str, object] = {"prompts": n, "words_per_prompt": round(float(len(hn)) / n, 1), "num_perm": NUM_PERM}
    t_tok = _median_time(lambda: word_hashes(ps), runs)
    res["tokenise_s"] = round(t_tok, 3)
    regex = pl.col("p").str.slice(0, 600).str.to_lowercase().str.replace_all("[0-9]+", "0").str.extract_all(r"[^\W_]+")
    res["tokenise_regex_words_s"] = round(_median_time(lambda: ps.to_frame("p").select(regex.list.len().sum()), runs), 3)
    impls: dict[str, tuple[Callable[[], object], int]] = {
        "rensa_rminhash": (lambda: rensa_r(hn, offn, NUM_PERM), n),
        "rensa_cminhash": (lambda: rensa_c(hn, offn, NUM_PERM), n),
        "numpy_affine": (lambda: signatures(hn, offn, NUM_PERM), n),
    }
    sub = 5000
    hs, offs = word_hashes(ps.head(sub))
    impls["datasketch"] = (lambda: datasketch_minhash(hs, offs, NUM_PERM), sub)
    for name, (fn, k) in impls.items():
        t = _median_time(fn, runs)
        res[name] = {"seconds": round(t, 3), "prompts": k, "signatures_per_s": round(k / t),
                     "with_tokenise_per_s": round(k / (t + t_tok * k / n))}  # fmt: skip
    t_band = _median_time(lambda: band_keys(signatures(hn, offn, NUM_PERM), 8, 3), runs)
    res["numpy_plus_8x3_bands_s"] = round(t_band, 3)
    return res


def _collide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row: do the two key rows share a key in the same band (key 0 = none)?"""
    return ((a == b) & (a != 0)).any(axis=1)


def quality(tasks: list[str], base: list[str], sents: list[str], rng: random.Random) -> dict[str, object]:
    picked = rng.sample(tasks, min(3000, len(tasks)))
    variants = dict(OPS)
    variants["pasted_sentence"] = lambda t, r: f"{t} {r.choice(sents)}" if r.random() < 0.5 else f"{r.choice(sents)} {t}"
    out: dict[str, object] = {"pairs": len(picked), "recall": {}, "mean_jaccard": {}, "distinct_texts_colliding": {}}
    orig = pl.Series(picked)
    for shingle in ("unigram", "bigram"):

        def sig(s: pl.Series, shingle: str = shingle) -> tuple[np.ndarray, np.ndarray]:
            h, off = word_hashes(s)
            if shingle == "bigram":
                h, off = bigrams(h, off)
            return signatures(h, off, 96), np.diff(off) == 0

        def sets(s: pl.Series, shingle: str = shingle) -> list[set[int]]:
            h, off = word_hashes(s)
            if shingle == "bigram":
                h, off = bigrams(h, off)
            return [set(x.tolist()) for x in np.split(h, off[1:-1].astype(np.int64))]

        so, eo = sig(orig)
        set_o = sets(orig)
        rec: dict[str, dict[str, float]] = {}
        jac: dict[str, float] = {}
        for op, fn in variants.items():
            vs = pl.Series([fn(t, rng) for t in picked])
            sv, ev = sig(vs)
            js = [len(x & y) / max(1, len(x | y)) for x, y in zip(set_o, sets(vs), strict=True)]
            jac[op] = round(statistics.mean(js), 3)
            rec[op] = {f"{b}x{r}": round(float(_collide(band_keys(so, b, r, eo), band_keys(sv, b, r, ev)).mean()), 3)
                       for b, r in CONFIGS}  # fmt: skip
        # Distinct corpus texts sharing a key with another distinct text (texts differ, but
        # a corpus also holds true near-duplicates: an upper bound on false collisions).
        sb, eb = sig(pl.Series(base))
        coll: dict[str, float] = {}
        for b, r in CONFIGS:
            keys = band_keys(sb, b, r, eb)
            k = pl.DataFrame({"row": np.repeat(np.arange(len(base)), b), "key": keys.ravel()}).filter(pl.col("key") != 0)
            shared = k.filter(pl.len().over("key") > 1)["row"].n_unique()
            coll[f"{b}x{r}"] = round(shared / len(base), 3)
        out["recall"][shingle] = rec  # type: ignore[index]
        out["mean_jaccard"][shingle] = jac  # type: ignore[index]
        out["distinct_texts_colliding"][shingle] = coll  # type: ignore[index]
    out["distinct_texts"] = len(base)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "minhash.json")
    args = ap.parse_args(argv)
    rng = random.Random(5)
    base, tasks, sents = _texts(corpora.load())
    result = {"speed": speed(prompts(args.n, base, sents, rng), args.runs), "quality": quality(tasks, base, sents, rng)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
