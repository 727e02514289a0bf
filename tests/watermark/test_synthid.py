import numpy as np
import pytest

from distillguard.watermark.keys import derive

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from distillguard.watermark.synthid import synthid_detect, synthid_keys, synthid_processor  # noqa: E402

KEY = derive(b"k" * 32, 0)
V = 1000


def sample(proc, n, seed):
    torch.manual_seed(seed)
    ids = torch.randint(0, V, (1, 5))
    for _ in range(n):
        scores = proc(ids, torch.randn(1, V))
        ids = torch.cat([ids, torch.multinomial(torch.softmax(scores, -1), 1)], 1)
    return ids[0].tolist()


def test_keys_are_derived_from_the_store_key():
    assert synthid_keys(KEY, 4) == synthid_keys(KEY, 4)
    assert synthid_keys(KEY, 4) != synthid_keys(derive(b"o" * 32, 0), 4)
    assert len(set(synthid_keys(KEY, 30))) == 30


def test_library_processor_output_is_detected_without_a_trained_detector():
    proc = synthid_processor(KEY, depth=15)
    ids = sample(proc, 150, 0)
    d = synthid_detect(ids, synthid_processor(KEY, depth=15))
    assert d.p_value < 1e-10 and d.scored_tokens > 100
    assert synthid_detect(ids, synthid_processor(derive(b"o" * 32, 0), depth=15)).p_value > 1e-3


def test_clean_text_p_values_are_not_too_small():
    proc = synthid_processor(KEY, depth=15)
    rng = np.random.default_rng(0)
    ps = np.array([synthid_detect(rng.integers(V, size=120).tolist(), proc).p_value for _ in range(200)])
    assert (ps < 0.05).mean() < 0.05 + 3 * np.sqrt(0.05 / 200)
    assert (ps < 0.5).mean() > 0.35  # and not degenerate near 1
    assert synthid_detect([1, 2], proc).scored_tokens == 0
