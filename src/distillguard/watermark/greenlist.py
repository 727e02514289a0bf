"""Keyed green-list watermark (Kirchenbauer et al., 2023) with min-hash context seeding.

For each position the previous ``context_width`` tokens seed a keyed hash; a token is
*green* when its keyed hash under that seed falls below ``gamma``. Generation adds
``delta`` to green logits; detection counts green tokens. The seed is the minimum of the
keyed hashes of the context tokens ("Min-LeftHash" of Kirchenbauer et al., "On the
Reliability of Watermarks for LLMs", 2023), so a local edit changes the seed of only the
positions whose minimum it touched. Hashing is per token (no vocabulary permutation),
so detection costs two hash mixes per token and needs no vocabulary size.

References
----------
Kirchenbauer, Geiping, Wen, Katz, Miers, Goldstein. "A Watermark for Large Language
Models." ICML 2023. Kirchenbauer et al. "On the Reliability of Watermarks for Large
Language Models." ICLR 2024.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from distillguard.errors import ConfigError
from distillguard.watermark._deps import require
from distillguard.watermark.keys import WatermarkKey

U64 = npt.NDArray[np.uint64]
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TOKEN_SALT = np.uint64(0xD6E8FEB86659FD93)


def mix64(x: U64) -> U64:
    """splitmix64 finaliser, vectorised; a bijection of uint64 with full avalanche."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


@dataclass(frozen=True)
class GreenList:
    """The keyed partition: which token is green after which context.

    Parameters
    ----------
    key : the watermark key (its 64-bit seed is used).
    gamma : fraction of the vocabulary that is green in any context.
    context_width : how many previous tokens seed the partition (1 = LeftHash).

    Examples
    --------
    >>> from distillguard.watermark.keys import derive
    >>> g = GreenList(derive(b"k" * 32, 0), gamma=0.25)
    >>> seeds = g.seeds(np.array([5, 9, 9, 2]))
    >>> seeds.shape
    (3,)
    >>> g.is_green(seeds, np.array([9, 9, 2])).dtype
    dtype('bool')
    """

    key: WatermarkKey
    gamma: float = 0.25
    context_width: int = 1

    def __post_init__(self) -> None:
        if not 0.0 < self.gamma < 1.0:
            raise ConfigError(f"gamma must be in (0, 1), got {self.gamma}")
        if self.context_width < 1:
            raise ConfigError(f"context_width must be >= 1, got {self.context_width}")

    @property
    def _k(self) -> np.uint64:
        return np.uint64(self.key.seed)

    @property
    def _threshold(self) -> np.uint64:
        return np.uint64(int(self.gamma * 2.0**64) - 1)

    def token_hash(self, ids: npt.NDArray[np.integer[Any]]) -> U64:
        """Keyed hash of token ids as context (the min-hash runs over these)."""
        return mix64(ids.astype(np.uint64) ^ self._k)

    def seeds(self, ids: npt.NDArray[np.integer[Any]]) -> U64:
        """Seed of every position ``i >= context_width``: min of keyed hashes of ``ids[i-h:i]``."""
        h = self.context_width
        n = len(ids) - h
        if n <= 0:
            return np.zeros(0, np.uint64)
        th = self.token_hash(np.asarray(ids))
        out = th[0:n].copy()
        for j in range(1, h):
            np.minimum(out, th[j : j + n], out=out)
        return out

    def context_seed(self, context: npt.NDArray[np.integer[Any]]) -> np.uint64:
        """Seed for the next token after ``context`` (its last ``context_width`` tokens)."""
        return np.uint64(self.token_hash(np.asarray(context[-self.context_width :])).min())

    def is_green(self, seeds: U64, tokens: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.bool_]:
        """Green flag of each ``(seed, token)`` pair."""
        with np.errstate(over="ignore"):
            u = mix64(seeds ^ (tokens.astype(np.uint64) * _TOKEN_SALT))
        return u <= self._threshold

    def mask(self, seed: np.uint64, vocab_size: int) -> npt.NDArray[np.bool_]:
        """Green flags of the whole vocabulary after a context with this seed."""
        return self.is_green(np.full(vocab_size, seed, np.uint64), np.arange(vocab_size, dtype=np.uint64))


class GreenListLogitsProcessor:
    """``transformers`` ``LogitsProcessor`` that adds ``delta`` to the green logits.

    Works as a plain callable ``(input_ids, scores) -> scores`` as ``transformers``
    expects. The bias rows (``delta`` on green, 0 elsewhere) are kept in one tensor, a row
    per context seed seen, so a step is one gather and one add: token frequencies are
    Zipfian and most steps find their rows there. The bank is bounded by ``cache_bytes``
    and starts afresh when full.
    """

    def __init__(self, green: GreenList, delta: float = 1.0, cache_bytes: int = 256 * 2**20) -> None:
        self.green = green
        self.delta = float(delta)
        self.cache_bytes = cache_bytes
        self._torch = require("torch")
        self._rows: dict[int, int] = {}
        self._bank: Any = None

    def _lookup(self, seeds: list[int], vocab: int, like: Any) -> Any:
        torch = self._torch
        bank = self._bank
        if bank is None or bank.shape[1] != vocab or bank.dtype != like.dtype or bank.device != like.device:
            self._rows, bank = {}, torch.zeros((64, vocab), dtype=like.dtype, device=like.device)
        missing = [s for s in dict.fromkeys(seeds) if s not in self._rows]
        if missing:
            n = len(self._rows)
            if (n + len(missing)) * vocab * bank.element_size() > self.cache_bytes:
                self._rows, n = {}, 0
            if n + len(missing) > bank.shape[0]:
                grown = torch.zeros((max(2 * bank.shape[0], n + len(missing)), vocab), dtype=like.dtype, device=like.device)
                grown[:n] = bank[:n]
                bank = grown
            m = self.green.is_green(
                np.repeat(np.array(missing, np.uint64), vocab), np.tile(np.arange(vocab, dtype=np.uint64), len(missing))
            ).reshape(len(missing), vocab)
            bank[n : n + len(missing)] = torch.from_numpy(m).to(device=like.device, dtype=like.dtype) * self.delta
            for i, s in enumerate(missing):
                self._rows[s] = n + i
        self._bank = bank
        idx = torch.tensor([self._rows[s] for s in seeds], device=like.device)
        return bank.index_select(0, idx)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        h = self.green.context_width
        if input_ids.shape[1] < h:
            return scores
        ctx = input_ids[:, -h:].detach().cpu().numpy()
        seeds = self.green.token_hash(ctx).min(axis=1).tolist()
        return scores + self._lookup(seeds, scores.shape[-1], scores)


def logits_processor(green: GreenList, delta: float = 1.0) -> Any:
    """A ``transformers.LogitsProcessor`` subclass instance (for ``LogitsProcessorList``)."""
    tf = require("transformers")

    class _Processor(tf.LogitsProcessor):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            self.inner = GreenListLogitsProcessor(green, delta)

        def __call__(self, input_ids: Any, scores: Any) -> Any:
            return self.inner(input_ids, scores)

    return _Processor()
