"""Text-level keyed watermark for a black-box upstream: context-conditioned synonym choice.

When the gateway fronts a model whose logits it cannot touch, it can still choose
*which* synonym of a curated group appears: for a group word after previous word ``w``,
the keyed hash of ``(w, group)`` picks the member. The choice depends on context, so a
model that imitates many outputs learns the same context → word mapping instead of
averaging it away (the idea of CATER, He et al. 2022, conditioned on the previous word
rather than on part of speech). Only prose is touched: code spans and fenced blocks,
capitalised words and words after ``a``/``an`` stay as they are.

Detection counts, over unique ``(previous word, group, word)`` triples, how often the
word is the keyed choice. Without the watermark each triple matches with probability
``1/|group|`` whatever the text says (the key is independent of the text), so the exact
Poisson-binomial tail is the p-value.

References
----------
He, Xu, Lyu, Wu, Wang, Wang. "CATER: Intellectual Property Protection on Text Generation
APIs via Conditional Watermarks." NeurIPS 2022. He et al. "Protecting Intellectual
Property of Language Generation APIs with Lexical Watermark." AAAI 2022.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import yaml

from distillguard.watermark.keys import WatermarkKey

_WORD = re.compile(r"[A-Za-z]+")
_CODE = re.compile(r"```.*?(?:```|\Z)|`[^`\n]*`", re.DOTALL)
_SKIP_AFTER = frozenset({"a", "an"})


@lru_cache(maxsize=1)
def default_groups() -> tuple[tuple[str, ...], ...]:
    """The curated synonym groups shipped with the package (``synonyms.yaml``)."""
    raw = yaml.safe_load(resources.files("distillguard.watermark").joinpath("synonyms.yaml").read_text())
    return tuple(tuple(g) for g in raw if g)


@dataclass(frozen=True)
class LexicalDetection:
    """Matches among unique scored triples, expected matches under the null, p-value."""

    key_id: str
    scored: int
    matches: int
    expected: float
    z: float
    p_value: float

    def verdict(self, alpha: float = 1e-3) -> str:
        if self.scored == 0:
            return "No synonym slots in the text: it cannot be tested."
        what = "Watermarked" if self.p_value < alpha else "No evidence of the watermark"
        return (f"{what}: {self.matches} of {self.scored} synonym slots hold the keyed choice "
                f"({self.expected:.1f} expected by chance; p = {self.p_value:.2g}).")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def poisson_binomial_sf(k: int, probs: list[float]) -> float:
    """P(X >= k) for a sum of independent Bernoulli(probs), by exact convolution."""
    dist = np.zeros(len(probs) + 1)
    dist[0] = 1.0
    for i, p in enumerate(probs, 1):
        dist[1 : i + 1] = dist[1 : i + 1] * (1 - p) + dist[0:i] * p
        dist[0] *= 1 - p
    return float(min(1.0, max(0.0, dist[k:].sum())))


class LexicalWatermark:
    """Keyed synonym choice; ``apply`` marks text, ``detect`` tests it.

    Examples
    --------
    >>> from distillguard.watermark.keys import derive
    >>> wm = LexicalWatermark(derive(b"k" * 32, 0))
    >>> out = wm.apply("It is often big and the idea is simple.")
    >>> wm.canonical(out) == wm.canonical("It is often big and the idea is simple.")
    True
    """

    def __init__(self, key: WatermarkKey, groups: tuple[tuple[str, ...], ...] | None = None) -> None:
        self.key = key
        self.groups = groups if groups is not None else default_groups()
        self.group_of: dict[str, int] = {w: i for i, g in enumerate(self.groups) for w in g}

    def _choice(self, prev: str, gid: int) -> str:
        g = self.groups[gid]
        h = hashlib.blake2b(f"{prev}\x00{gid}".encode(), key=self.key.secret[:32], digest_size=8).digest()
        return g[int.from_bytes(h, "little") % len(g)]

    def _slots(self, text: str) -> list[tuple[int, int, str, int]]:
        """(start, end, previous word, group) of every word the scheme may choose."""
        prose = [(m.start(), m.end()) for m in _CODE.finditer(text)]
        out: list[tuple[int, int, str, int]] = []
        prev = ""
        ci = 0
        for m in _WORD.finditer(text):
            while ci < len(prose) and prose[ci][1] <= m.start():
                ci += 1
            in_code = ci < len(prose) and prose[ci][0] <= m.start() < prose[ci][1]
            w = m.group()
            gid = self.group_of.get(w)
            if gid is not None and not in_code and prev not in _SKIP_AFTER:
                out.append((m.start(), m.end(), prev, gid))
            prev = w.lower()
        return out

    def apply(self, text: str) -> str:
        """The text with every slot's word replaced by the keyed choice (left to right)."""
        parts: list[str] = []
        last = 0
        prev_override: dict[int, str] = {}
        slots = self._slots(text)
        # the previous word of a slot may itself be a slot that changed: use the new word
        for i, (s, e, prev, gid) in enumerate(slots):
            prev = prev_override.get(i, prev)
            new = self._choice(prev, gid)
            parts.append(text[last:s])
            parts.append(new)
            last = e
            if i + 1 < len(slots) and _only_space(text[e : slots[i + 1][0]]):
                prev_override[i + 1] = new
        parts.append(text[last:])
        return "".join(parts)

    def detect(self, text: str) -> LexicalDetection:
        seen: set[tuple[str, int, str]] = set()
        probs: list[float] = []
        matches = 0
        for s, e, prev, gid in self._slots(text):
            w = text[s:e]
            t = (prev, gid, w)
            if t in seen:
                continue
            seen.add(t)
            probs.append(1.0 / len(self.groups[gid]))
            matches += int(w == self._choice(prev, gid))
        expected = float(sum(probs))
        var = sum(p * (1 - p) for p in probs)
        z = (matches - expected) / math.sqrt(var) if var > 0 else 0.0
        p = poisson_binomial_sf(matches, probs) if probs else 1.0
        return LexicalDetection(self.key.key_id, len(probs), matches, expected, z, p)

    def canonical(self, text: str) -> str:
        """The text with every slot's word set to its group's first member (meaning check)."""
        out, last = [], 0
        for s, e, _, gid in self._slots(text):
            out += [text[last:s], self.groups[gid][0]]
            last = e
        return "".join([*out, text[last:]])


def _only_space(between: str) -> bool:
    return _WORD.search(between) is None


@dataclass(frozen=True)
class LexicalPolicy:
    """Apply the text watermark only to accounts (or clusters) at or above ``min_risk``.

    Ordinary users get the upstream text untouched; risky ones get the marked text. Build
    the :class:`LexicalWatermark` from ``KeyStore.current(cluster)`` to give each account
    cluster its own key, so a leak names the cluster that harvested it.
    """

    min_risk: float = 0.5

    def apply(self, wm: LexicalWatermark, text: str, risk: float) -> str:
        return wm.apply(text) if risk >= self.min_risk else text
