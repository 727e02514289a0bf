"""Perturbations for risky accounts: make harvested outputs worth less to a distiller.

Why: a reasoning trace and a long, complete answer are what a distiller pays for; an
ordinary user rarely needs the trace and seldom reads past a cap. Each function returns
the new text and what it cost (share of words kept), so the gateway can log the cost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_REASONING = re.compile(r"<(think|thinking|reasoning|scratchpad)>.*?(?:</\1>|\Z)\s*", re.DOTALL | re.IGNORECASE)
_SENT_END = re.compile(r"(?<=[.!?])\s+|\n\n")
_WORDS = re.compile(r"\S+")


@dataclass(frozen=True)
class Perturbed:
    """The perturbed text and the share of the original words it kept."""

    text: str
    kept: float
    changed: bool


def _kept(before: str, after: str) -> float:
    n = len(_WORDS.findall(before))
    return len(_WORDS.findall(after)) / n if n else 1.0


def strip_reasoning(text: str, summary: bool = False) -> Perturbed:
    """Drop ``<think>``-style blocks; with ``summary``, keep each block's last sentence."""

    def repl(m: re.Match[str]) -> str:
        if not summary:
            return ""
        body = re.sub(r"^<[^>]+>|</[^>]+>\s*$", "", m.group(0).strip()).strip()
        sents = [s for s in _SENT_END.split(body) if s.strip()]
        return f"(Reasoning, summarised: {sents[-1].strip()})\n" if sents else ""

    out = _REASONING.sub(repl, text)
    return Perturbed(out, _kept(text, out), out != text)


def cap_length(text: str, max_words: int) -> Perturbed:
    """Cut the text at the last sentence end within ``max_words`` (mid-sentence if none)."""
    words = list(_WORDS.finditer(text))
    if len(words) <= max_words:
        return Perturbed(text, 1.0, False)
    limit = words[max_words - 1].end()
    ends = [m.start() for m in _SENT_END.finditer(text, 0, limit + 1)]
    cut = ends[-1] if ends else limit
    out = text[:cut].rstrip()
    return Perturbed(out, _kept(text, out), True)
