"""Keyed MinHash sketches of prompt templates: partners match near-duplicates, nobody reads text.

A template's text is the attacker's, but it can quote a customer's data and it is the
one thing a partner should not have to trust us with. A plain MinHash would not hide it:
anyone can sketch a guessed text and compare. Here each content word is first mapped by
keyed BLAKE2b (the epoch key) to 64 bits and the permutations are seeded from the key,
so the sketch is a function of the key: a partner holding it sketches its own prompts and
estimates the Jaccard similarity of their word sets as the share of equal minima
(:func:`similarity`); without it the values are pseudo-random.

Words are the project's (:mod:`distillguard.signals.minhash`: lower case, digit runs to
``0``, punctuation stripped, filler words out, the first 64 words of the first 600
characters), so rewording and filled-in slots move few of them. Word hashes are
BLAKE2b, not Polars' hash, because two partners' Polars versions may hash differently.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Sequence

import numpy as np

from distillguard.intel.keyed import ConsortiumKey
from distillguard.signals.minhash import FILLER, HEAD_CHARS, MAX_WORDS, signatures

__all__ = ["MATCH_THRESHOLD", "NUM_PERM", "content_words", "similarity", "sketch", "sketch_many"]

NUM_PERM = 128
"""Minima per sketch: the Jaccard estimate's standard error is at most 0.5 / sqrt(128) = 0.044."""

MATCH_THRESHOLD = 0.5
"""Estimated Jaccard at or above which a prompt is the template reworded (unrelated prompts of
the same register share under 0.2 of their content words)."""

MIN_WORDS = 4
"""Fewer content words is too generic to sketch ("Explain this.")."""

_PUNCT = ".,!?;:()[]{}\"'`*#-_/\\<>|=+~@$%^&\u201c\u201d\u2018\u2019\u00bf\u00a1"


def content_words(text: str) -> list[str]:
    """The masked content words the signals read (see the module docstring).

    >>> content_words("Please write 3 unit tests for the parser, thanks!")
    ['0', 'unit', 'tests', 'parser']
    """
    head = re.sub(r"[0-9]+", "0", text[:HEAD_CHARS].lower()).replace("\n", " ").replace("\t", " ")
    words = (w.strip(_PUNCT) for w in head.split(" ")[: 2 * MAX_WORDS])
    return [w for w in words if w and w not in FILLER][:MAX_WORDS]


def _word_hasher(key: ConsortiumKey, epoch: int | None) -> tuple[Callable[[str], int], int]:
    """The keyed 64-bit word hash and the permutations' seed of one epoch."""
    ek = key.epoch_key(epoch)
    mac = hashlib.blake2b(key=ek[:32], digest_size=8, person=b"dg-intel-words")

    def word(w: str) -> int:
        h = mac.copy()
        h.update(w.encode("utf-8"))
        return int.from_bytes(h.digest(), "little")

    seed = int.from_bytes(hmac.new(ek, b"minhash-permutations", hashlib.sha256).digest()[:16], "little")
    return word, seed


def sketch_many(texts: Sequence[str | None], key: ConsortiumKey, epoch: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The keyed MinHash of every text at once: ``(len(texts), NUM_PERM)`` u32 rows and a
    mask of the rows that have one (at least :data:`MIN_WORDS` content words). Each
    distinct word is hashed once; the permutations run over all texts in one pass."""
    word, seed = _word_hasher(key, epoch)
    codes: dict[str, int] = {}
    per_text: list[list[int]] = []
    for text in texts:
        words = sorted(set(content_words(text))) if text else []
        if len(words) < MIN_WORDS:
            words = []
        per_text.append([codes[w] if w in codes else codes.setdefault(w, word(w)) for w in words])
    hashes = np.fromiter((h for row in per_text for h in row), dtype=np.uint64)
    offsets = np.zeros(len(per_text) + 1, dtype=np.uint64)
    np.cumsum([len(row) for row in per_text], out=offsets[1:])
    sigs = signatures(hashes, offsets, NUM_PERM, seed=seed)
    return sigs, np.diff(offsets) > 0


def sketch(text: str, key: ConsortiumKey, epoch: int | None = None) -> list[int] | None:
    """The keyed MinHash of ``text`` (:data:`NUM_PERM` values), or None when it has fewer
    than :data:`MIN_WORDS` content words."""
    sigs, ok = sketch_many([text], key, epoch)
    return [int(x) for x in sigs[0]] if ok[0] else None


def similarity(a: list[int], b: list[int]) -> float:
    """Estimated Jaccard similarity of two sketches made with the same key and epoch."""
    if len(a) != len(b) or not a:
        return 0.0
    return float(np.mean(np.asarray(a, dtype=np.uint32) == np.asarray(b, dtype=np.uint32)))
