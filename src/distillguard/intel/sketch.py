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

import numpy as np

from distillguard.intel.keyed import ConsortiumKey
from distillguard.signals.minhash import FILLER, HEAD_CHARS, MAX_WORDS, signatures

__all__ = ["MATCH_THRESHOLD", "NUM_PERM", "content_words", "similarity", "sketch"]

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


def sketch(text: str, key: ConsortiumKey, epoch: int | None = None) -> list[int] | None:
    """The keyed MinHash of ``text`` (:data:`NUM_PERM` values), or None when it has fewer
    than :data:`MIN_WORDS` content words."""
    words = sorted(set(content_words(text)))
    if len(words) < MIN_WORDS:
        return None
    ek = key.epoch_key(epoch)
    mac = hashlib.blake2b(key=ek[:32], digest_size=8, person=b"dg-intel-words")
    hashes = np.empty(len(words), dtype=np.uint64)
    for i, w in enumerate(words):
        h = mac.copy()
        h.update(w.encode("utf-8"))
        hashes[i] = int.from_bytes(h.digest(), "little")
    seed = int.from_bytes(hmac.new(ek, b"minhash-permutations", hashlib.sha256).digest()[:16], "little")
    offsets = np.array([0, len(words)], dtype=np.uint64)
    sig = signatures(hashes, offsets, NUM_PERM, seed=seed)[0]
    return [int(x) for x in sig]


def similarity(a: list[int], b: list[int]) -> float:
    """Estimated Jaccard similarity of two sketches made with the same key and epoch."""
    if len(a) != len(b) or not a:
        return 0.0
    return float(np.mean(np.asarray(a, dtype=np.uint32) == np.asarray(b, dtype=np.uint32)))
