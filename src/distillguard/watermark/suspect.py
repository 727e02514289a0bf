"""The suspect-model test: was this model trained on our watermarked outputs?

Radioactivity (Sander et al., 2024): a model fine-tuned on watermarked text reproduces
the green-list bias. Query the suspect with prompts, score its outputs for our key with
``(context, token)`` pairs deduplicated across all outputs, and stop as soon as the
p-value is below the target, so the report says how many queries and tokens it took.
Works on a black box (an OpenAI-compatible endpoint, over ``httpx``) or on any local
generate function (weights).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from distillguard.errors import ConfigError
from distillguard.watermark._deps import require
from distillguard.watermark.detect import Detection, Scorer, Tokenize
from distillguard.watermark.greenlist import GreenList

Generate = Callable[[Sequence[str]], Sequence[str]]


@dataclass(frozen=True)
class SuspectReport:
    """The test's outcome with what it cost: queries sent and tokens scored."""

    detection: Detection
    queries: int
    target_p: float
    stopped_early: bool

    @property
    def p_value(self) -> float:
        return self.detection.p_value

    def verdict(self) -> str:
        d = self.detection
        if d.p_value < self.target_p:
            return (
                f"The suspect model carries our watermark (key {d.key_id}): after {self.queries} queries, "
                f"{d.green_tokens} of {d.scored_tokens} unique scored tokens are green against "
                f"{d.gamma:.0%} expected; the chance of this for a model never trained on our outputs "
                f"is p = {d.p_value:.2g}."
            )
        return (
            f"No evidence that the suspect model was trained on our watermarked outputs after "
            f"{self.queries} queries ({d.scored_tokens} unique scored tokens, p = {d.p_value:.2g}); "
            f"this does not prove it was not, only that the test did not reach p < {self.target_p:g}."
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self.detection), "queries": self.queries, "target_p": self.target_p,
                "stopped_early": self.stopped_early, "verdict": self.verdict()}


def suspect_test(
    outputs: Iterable[Sequence[int]], green: GreenList, target_p: float = 1e-6, max_queries: int = 1000,
    check_every: int = 25,
) -> SuspectReport:
    """Score outputs (token ids, one per query) until ``p < target_p`` or ``max_queries``.

    Checking a growing sample repeatedly is optional stopping; ``check_every`` bounds how
    often, and the reported p-value is multiplied by the number of looks (Bonferroni), so
    it stays valid.
    """
    s = Scorer(green)
    looks, q = 0, 0
    for q, ids in enumerate(outputs, 1):
        s.add(ids)
        if q % check_every == 0 or q == max_queries:
            looks += 1
            d = s.result()
            if min(1.0, d.p_value * looks) < target_p:
                return SuspectReport(_corrected(d, looks), q, target_p, q < max_queries)
        if q >= max_queries:
            break
    d = s.result()
    return SuspectReport(_corrected(d, max(looks, 1)), q, target_p, False)


def _corrected(d: Detection, looks: int) -> Detection:
    return Detection(d.key_id, d.scored_tokens, d.green_tokens, d.gamma, d.total_tokens, d.z,
                     min(1.0, d.p_value * looks), d.keys_tried)


def text_outputs(gen: Generate, prompts: Sequence[str], tokenize: Tokenize, batch: int = 25) -> Iterator[list[int]]:
    """Lazily query ``gen`` in batches and tokenize its replies, so the test can stop early."""
    for i in range(0, len(prompts), batch):
        for reply in gen(prompts[i : i + batch]):
            yield list(tokenize(reply))


class OpenAIEndpoint:
    """A black-box suspect behind an OpenAI-compatible ``/v1/chat/completions`` API.

    ``transport`` lets tests pass ``httpx.MockTransport``; nothing else is special.
    """

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, max_tokens: int = 256,
        temperature: float = 1.0, timeout_s: float = 60.0, transport: Any = None,
    ) -> None:
        httpx = require("httpx")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.model, self.max_tokens, self.temperature = model, max_tokens, temperature
        self.client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s, transport=transport)

    def __call__(self, prompts: Sequence[str]) -> list[str]:
        out = []
        for p in prompts:
            r = self.client.post(
                "/chat/completions",
                json={"model": self.model, "messages": [{"role": "user", "content": p}],
                      "max_tokens": self.max_tokens, "temperature": self.temperature},
            )
            if r.status_code != 200:
                raise ConfigError(f"suspect endpoint {r.request.url} answered {r.status_code}: {r.text[:200]}")
            try:
                out.append(str(r.json()["choices"][0]["message"]["content"] or ""))
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"suspect endpoint {r.request.url} sent no chat completion: {r.text[:200]}") from exc
        return out
