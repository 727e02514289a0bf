"""Detection: count green tokens among unique ``(context, token)`` pairs, test against gamma.

Why deduplicate: a repeated phrase scores the same pairs again, and those repeats are
not independent draws; counting each ``(seed, token)`` pair once makes every scored pair
an independent Bernoulli(gamma) under the null (text not from this key), so the binomial
tail is an exact p-value. Sander et al. apply the same filter to the suspect-model test.

References
----------
Kirchenbauer et al. "A Watermark for Large Language Models." ICML 2023 (z-test).
Sander, Fernandez, Durmus, Douze, Furon. "Watermarking Makes Language Models
Radioactive." NeurIPS 2024 (deduplicated tuples).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats

from distillguard.watermark.greenlist import GreenList, mix64

Tokenize = Callable[[str], Sequence[int]]


@dataclass(frozen=True)
class Detection:
    """The outcome of one test: counts, z, exact p-value and the key that was tried."""

    key_id: str
    scored_tokens: int
    green_tokens: int
    gamma: float
    total_tokens: int
    z: float
    p_value: float
    keys_tried: int = 1

    def verdict(self, alpha: float = 1e-3) -> str:
        """One sentence a reviewer can read without statistics."""
        if self.scored_tokens == 0:
            return "No scorable tokens: the text is too short to test."
        share = self.green_tokens / self.scored_tokens
        if self.p_value < alpha:
            return (
                f"Watermarked (key {self.key_id}): {self.green_tokens} of {self.scored_tokens} unique "
                f"scored tokens are green ({share:.0%}, {self.gamma:.0%} expected by chance); "
                f"the chance of this or more without the watermark is {self.p_value:.2g}."
            )
        return (
            f"No evidence of the watermark: {self.green_tokens} of {self.scored_tokens} unique "
            f"scored tokens are green ({share:.0%}, {self.gamma:.0%} expected by chance; p = {self.p_value:.2g})."
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def binomial_test(green: int, scored: int, gamma: float) -> tuple[float, float]:
    """One-sided z and exact binomial tail P(X >= green) for X ~ Bin(scored, gamma)."""
    if scored == 0:
        return 0.0, 1.0
    z = (green - gamma * scored) / math.sqrt(scored * gamma * (1.0 - gamma))
    p = float(stats.binom.sf(green - 1, scored, gamma))
    return z, max(p, 0.0)


def randomized_p(green: int, scored: int, gamma: float, u: float) -> float:
    """Randomised binomial p-value ``P(X > g) + u·P(X = g)``: exactly uniform under the null.

    The plain binomial tail is conservative and discrete; calibration tests (KS against
    the uniform) need this continuous version, with ``u`` drawn uniform on [0, 1).
    """
    return float(stats.binom.sf(green, scored, gamma) + u * stats.binom.pmf(green, scored, gamma))


def scored_pairs(
    ids: Sequence[int] | npt.NDArray[np.integer[Any]], green: GreenList
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.bool_]]:
    """Fingerprint and green flag of every scorable position of one sequence (no dedup)."""
    arr = np.asarray(ids, dtype=np.int64)
    h = green.context_width
    if len(arr) <= h:
        return np.zeros(0, np.uint64), np.zeros(0, bool)
    seeds = green.seeds(arr)
    toks = arr[h:]
    with np.errstate(over="ignore"):
        fp = seeds ^ mix64(toks.astype(np.uint64))
    return fp, green.is_green(seeds, toks)


def first_unique(
    fp: npt.NDArray[np.uint64], flags: npt.NDArray[np.bool_], n: int
) -> tuple[int, int] | None:
    """(green, scored) over the first ``n`` unique pairs of a stream; None if it has fewer."""
    _, first = np.unique(fp, return_index=True)
    if len(first) < n:
        return None
    keep = np.sort(first)[:n]
    return int(flags[keep].sum()), n


@dataclass
class Scorer:
    """Accumulates unique ``(seed, token)`` pairs over one or many sequences.

    One scorer per key; :meth:`add` each sequence of token ids, read :meth:`result`.
    Merging two scorers is the union of their pairs, so the suspect-model test can score
    outputs in parallel chunks.
    """

    green: GreenList
    dedup: bool = True
    ignore: frozenset[int] = frozenset()
    _pairs: set[int] = field(default_factory=set)
    _greens: set[int] = field(default_factory=set)
    _scored: int = 0
    _green: int = 0
    _total: int = 0

    def add(self, ids: Sequence[int] | npt.NDArray[np.integer[Any]]) -> None:
        arr = np.asarray(ids, dtype=np.int64)
        self._total += len(arr)
        fp, flags = scored_pairs(arr, self.green)
        if self.ignore and len(fp):
            keep = ~np.isin(arr[self.green.context_width :], np.fromiter(self.ignore, np.int64))
            fp, flags = fp[keep], flags[keep]
        if not self.dedup:
            self._scored += len(fp)
            self._green += int(flags.sum())
            return
        # one 64-bit fingerprint per (seed, token) pair; a set keeps each pair once
        self._pairs.update(fp.tolist())
        self._greens.update(fp[flags].tolist())

    def merge(self, other: Scorer) -> None:
        """Fold another scorer of the same green list in (pairs are counted once)."""
        if other.green != self.green or other.dedup != self.dedup:
            raise ValueError(f"cannot merge scorers of {other.green!r} and {self.green!r}")
        self._pairs |= other._pairs
        self._greens |= other._greens
        self._scored += other._scored
        self._green += other._green
        self._total += other._total

    @property
    def counts(self) -> tuple[int, int]:
        """(green, scored) so far."""
        return self._green + len(self._greens), self._scored + len(self._pairs)

    def result(self) -> Detection:
        g, n = self.counts
        z, p = binomial_test(g, n, self.green.gamma)
        return Detection(self.green.key.key_id, n, g, self.green.gamma, self._total, z, p)


def detect_ids(
    ids: Sequence[int] | npt.NDArray[np.integer[Any]], green: GreenList, dedup: bool = True
) -> Detection:
    """Test one sequence of token ids for the watermark of ``green``."""
    s = Scorer(green, dedup)
    s.add(ids)
    return s.result()


def detect_many(
    seqs: Iterable[Sequence[int] | npt.NDArray[np.integer[Any]]], green: GreenList, dedup: bool = True
) -> Detection:
    """Test many sequences as one sample (pairs deduplicated across all of them)."""
    s = Scorer(green, dedup)
    for ids in seqs:
        s.add(ids)
    return s.result()


def best_of(results: Sequence[Detection]) -> Detection:
    """The strongest result over several keys, Bonferroni-corrected for the keys tried."""
    if not results:
        raise ValueError("best_of needs at least one result")
    best = min(results, key=lambda d: d.p_value)
    n = len(results)
    return Detection(
        best.key_id, best.scored_tokens, best.green_tokens, best.gamma, best.total_tokens,
        best.z, min(1.0, best.p_value * n), n,
    )


class TextDetector:
    """Text in, :class:`Detection` out: the served model's tokenizer, then the scorer.

    ``tokenizer`` is anything with ``encode(text).ids`` (a ``tokenizers.Tokenizer``) or
    a plain callable returning ids.
    """

    def __init__(self, tokenizer: Any, green: GreenList) -> None:
        self.green = green
        enc = getattr(tokenizer, "encode", None)
        self._tokenize: Tokenize = (lambda t: enc(t).ids) if enc is not None else tokenizer

    def __call__(self, text: str) -> Detection:
        return detect_ids(self._tokenize(text), self.green)
