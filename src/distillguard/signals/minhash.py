"""MinHash and LSH band keys of masked word shingles, vectorised over many texts at once.

Near-duplicate prompts (a task reworded: synonyms swapped, clauses reordered, an opening
or closing added) share most of their content words, so the Jaccard similarity of their
word sets stays high while every exact, head or tail fingerprint changes. A MinHash
signature of ``b * r`` values cut into ``b`` bands of ``r`` gives ``b`` keys per text;
two texts of Jaccard ``s`` share at least one key with probability ``1 - (1 - s^r)^b``
(Broder, "On the resemblance and containment of documents", 1997; Leskovec, Rajaraman
and Ullman, *Mining of Massive Datasets*, ch. 3).

Words are hashed by Polars and the signatures computed in numpy over one flat buffer of
word hashes. On 99,913 distinct corpus prompts (24 permutations, medians of 3 runs on a
shared, loaded 2-core machine; ``benchmarks/results/minhash.json``): numpy 126k
signatures/s, ``rensa`` R-MinHash 58k (its digest matrix reaches numpy only through Python
lists), C-MinHash 38k, ``datasketch`` 0.9k (one object per prompt). Tokenising costs more
than signing (3.0 s per 100k prompts there), so both run once per distinct prompt.
"""

from __future__ import annotations

import functools

import numpy as np
import polars as pl

__all__ = ["FILLER", "band_keys", "lsh_keys", "signatures", "word_hashes"]

# The most frequent English function words and request fillers: rewording swaps them
# freely ("Could you please ..." / "I need you to ..."), so they carry no task identity
# and would make unrelated short prompts look alike.
FILLER = frozenset(
    (  # noqa: SIM905 - a word list reads better as text
        "a an the and or but if of to in on at by for with from as into about than then so that this these those "
        "it its is are was were be been being do does did have has had i me my we our you your he she they them "
        "their his her what which who whom how why when where can could would should will shall may might must "
        "please kindly thanks thank hi hello hey just also some any all each us let help need want like give "
        "tell write make provide following below above here there not no yes very more most"
    ).split()
)
# Words read per text: where the request sits. Bounds the cost of a pasted document.
HEAD_CHARS = 600
MAX_WORDS = 64
_PUNCT = ".,!?;:()[]{}\"'`*#-_/\\<>|=+~@$%^&\u201c\u201d\u2018\u2019\u00bf\u00a1"
_MASK64 = (1 << 64) - 1


def word_hashes(texts: pl.Series, seed: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the masked content words of each text (lower-cased, digit runs to ``0``,
    punctuation stripped, :data:`FILLER` words left out; at most :data:`MAX_WORDS` words
    of the first :data:`HEAD_CHARS` characters), as one flat ``u64`` buffer and
    ``len(texts) + 1`` row offsets into it.

    Words are cut at spaces and stripped of punctuation rather than matched by a regex
    (in one single-threaded CPU-time profile, 0.44 s against 0.78 s per 100k prompts).
    """
    n = texts.len()
    head = (
        texts.str.slice(0, HEAD_CHARS)
        .str.to_lowercase()
        .str.replace_all("[0-9]+", "0")
        .str.replace_all("\n", " ", literal=True)
        .str.replace_all("\t", " ", literal=True)
    )
    w = pl.col("w").str.strip_chars(_PUNCT)
    flat = (
        pl.DataFrame({"w": head.str.split(" ").list.head(2 * MAX_WORDS)})
        .with_row_index("row")
        .explode("w")
        .with_columns(w)
        .filter((w.str.len_bytes() > 0) & ~w.is_in(list(FILLER)))
        .select("row", h=pl.col("w").hash(seed))
    )
    row = flat["row"].to_numpy()
    h = flat["h"].to_numpy()
    counts = np.bincount(row, minlength=n)
    if counts.max(initial=0) > MAX_WORDS:  # keep the first MAX_WORDS words of each row
        starts = np.cumsum(counts) - counts
        h = h[np.arange(len(h)) - np.repeat(starts, counts) < MAX_WORDS]
        counts = np.minimum(counts, MAX_WORDS)
    offsets = np.zeros(n + 1, dtype=np.uint64)
    np.cumsum(counts, out=offsets[1:])
    return h, offsets


def signatures(hashes: np.ndarray, offsets: np.ndarray, num_perm: int, seed: int = 7) -> np.ndarray:
    """MinHash signatures, ``len(offsets) - 1`` rows of ``num_perm`` u32 values: per
    permutation ``(a h + b) mod 2^64`` (``a`` odd), its top 32 bits, the minimum per row.
    A row with no word gets the all-ones row (callers mark it: see :func:`band_keys`)."""
    n = len(offsets) - 1
    out = np.full((n, num_perm), 0xFFFFFFFF, dtype=np.uint32)
    lens = np.diff(offsets.astype(np.int64))
    rows = np.flatnonzero(lens > 0)
    if rows.size == 0:
        return out
    a, b = _permutations(num_perm, seed)
    starts = offsets[:-1].astype(np.int64)[rows]  # reduceat over non-empty rows only
    h = np.ascontiguousarray(hashes, dtype=np.uint64)
    with np.errstate(over="ignore"):
        if h.size <= 4096:  # a few texts (the gateway's one prompt): all permutations at once
            v = ((h[:, None] * a[None, :] + b[None, :]) >> np.uint64(32)).astype(np.uint32)
            out[rows] = np.minimum.reduceat(v, starts, axis=0)
            return out
        for i in range(num_perm):
            v = ((h * a[i] + b[i]) >> np.uint64(32)).astype(np.uint32)
            out[rows, i] = np.minimum.reduceat(v, starts)
    return out


@functools.lru_cache(maxsize=64)
def _permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``(a, b)`` of each permutation for a seed (``a`` odd), drawn once per seed."""
    g = np.random.default_rng(seed)
    a = g.integers(1, 2**63, num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    b = g.integers(0, 2**63, num_perm, dtype=np.uint64)
    a.flags.writeable = b.flags.writeable = False
    return a, b


def band_keys(sig: np.ndarray, bands: int, rows: int, empty: np.ndarray | None = None) -> np.ndarray:
    """``(n, bands)`` u64 keys: band ``j`` is a hash of signature values ``j*rows .. j*rows+rows-1``
    and of ``j`` (equal values in two different bands are two different keys). Rows
    flagged in ``empty`` get key 0 (callers treat 0 as no key)."""
    n = sig.shape[0]
    cols = sig[:, : bands * rows].astype(np.uint64).reshape(n, bands, rows)
    with np.errstate(over="ignore"):
        acc = np.broadcast_to((np.arange(1, bands + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)), (n, bands))
        for c in range(rows):
            acc = _mix(acc ^ cols[:, :, c])
    out = acc | np.uint64(1)  # never 0
    if empty is not None:
        out[empty] = 0
    return out


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit reaches every output bit."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    out: np.ndarray = x ^ (x >> np.uint64(31))
    return out


def lsh_keys(texts: pl.Series, bands: int, rows: int, min_words: int, name: str) -> pl.Series:
    """``bands`` LSH keys per text (an ``Array(UInt64, bands)`` series called ``name``), null
    where a text has fewer than ``min_words`` masked content words (too generic to match on)."""
    h, off = word_hashes(texts.fill_null(""))
    few = np.diff(off.astype(np.int64)) < min_words
    k = band_keys(signatures(h, off, bands * rows), bands, rows)
    keys = pl.Series(name, k, dtype=pl.Array(pl.UInt64, bands))
    return pl.select(pl.when(pl.Series(~few)).then(keys).alias(name)).to_series()
