"""MinHash signatures (``distillguard.signals.minhash``)."""

from __future__ import annotations

import itertools

import numpy as np

from distillguard.signals.minhash import signatures


def test_few_texts_and_many_texts_give_the_same_signatures() -> None:
    """The broadcast path for a few texts (the gateway's one prompt) equals the per-permutation loop."""
    rng = np.random.default_rng(3)
    hashes = rng.integers(0, 2**63, 6000, dtype=np.uint64)
    offsets = np.array([0, 10, 10, 40, 3000, 6000], dtype=np.uint64)
    many = signatures(hashes, offsets, 128, seed=11)
    few = np.vstack([signatures(hashes[int(lo) : int(hi)], np.array([0, hi - lo], dtype=np.uint64), 128, seed=11)
                     for lo, hi in itertools.pairwise(offsets)])  # fmt: skip
    assert (many == few).all()
    assert (many[1] == 0xFFFFFFFF).all()
