"""SynthID-Text through ``transformers``, with a detector that needs no trained model.

``transformers`` ships the tournament-sampling processor
(``SynthIDTextWatermarkLogitsProcessor``) but its detector is a Bayesian model that has
to be trained on watermarked and clean text of the same model. Here the keys come from
our key store, and the detector is the mean-score test of Dathathri et al.: each
``(n-gram, layer)`` g-value is a fair coin without the watermark, so the count of ones
over the unique n-grams of the text is Binomial(n·depth, 1/2) under the null and its tail
is an exact p-value (repeated n-grams scored once, as for the green list).

References
----------
Dathathri et al. "Scalable watermarking for identifying large language model outputs."
Nature 634, 2024.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from distillguard.watermark._deps import require
from distillguard.watermark.detect import Detection, binomial_test
from distillguard.watermark.keys import WatermarkKey


def synthid_keys(key: WatermarkKey, depth: int) -> list[int]:
    """``depth`` integer keys for the tournament layers, derived from our key."""
    out = []
    for i in range(depth):
        h = hashlib.blake2b(f"synthid-layer-{i}".encode(), key=key.secret[:32], digest_size=7).digest()
        out.append(int.from_bytes(h, "little"))
    return out


def synthid_processor(
    key: WatermarkKey, ngram_len: int = 5, depth: int = 30, device: str = "cpu", context_history_size: int = 1024
) -> Any:
    """The library's SynthID processor, keyed from our key store."""
    tf = require("transformers")
    torch = require("torch")
    seed = int.from_bytes(hashlib.blake2b(b"synthid-table", key=key.secret[:32], digest_size=4).digest(), "little")
    return tf.SynthIDTextWatermarkLogitsProcessor(
        ngram_len=ngram_len, keys=synthid_keys(key, depth), sampling_table_size=2**16,
        sampling_table_seed=seed, context_history_size=context_history_size, device=torch.device(device),
    )


def synthid_detect(ids: Sequence[int], processor: Any, key_id: str = "synthid") -> Detection:
    """Mean-score test over unique n-grams: ``green`` is the count of g-values equal to 1."""
    torch = require("torch")
    n = processor.ngram_len
    if len(ids) < n:
        return Detection(key_id, 0, 0, 0.5, len(ids), 0.0, 1.0)
    x = torch.tensor([list(ids)], dtype=torch.long, device=processor.device)
    g = processor.compute_g_values(x)[0].cpu().numpy()  # (positions, depth)
    grams = np.lib.stride_tricks.sliding_window_view(np.asarray(ids, np.int64), n)
    _, first = np.unique(grams, axis=0, return_index=True)
    g = g[np.sort(first)]
    ones, total = int(g.sum()), int(g.size)
    z, p = binomial_test(ones, total, 0.5)
    return Detection(key_id, len(first), ones, 0.5, len(ids), z, p)
