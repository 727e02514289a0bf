import numpy as np
import pytest

from distillguard.errors import ConfigError
from distillguard.watermark.greenlist import GreenList, mix64
from distillguard.watermark.keys import derive

KEY = derive(b"k" * 32, 0)


def test_mix64_is_a_deterministic_spread():
    x = np.arange(10_000, dtype=np.uint64)
    y = mix64(x)
    assert len(np.unique(y)) == len(x)
    assert np.array_equal(y, mix64(x))
    # top bit balanced, as for a random function
    assert abs(float(((y >> np.uint64(63)) == 1).mean()) - 0.5) < 0.03


@pytest.mark.parametrize("gamma", [0.1, 0.25, 0.5])
def test_green_fraction_is_gamma(gamma):
    g = GreenList(KEY, gamma)
    mask = g.mask(g.context_seed(np.array([17])), 50_000)
    assert abs(mask.mean() - gamma) < 0.01


def test_masks_depend_on_key_and_context():
    a = GreenList(KEY).mask(GreenList(KEY).context_seed(np.array([3])), 4096)
    b = GreenList(KEY).mask(GreenList(KEY).context_seed(np.array([4])), 4096)
    c = GreenList(derive(b"x" * 32, 0)).mask(GreenList(derive(b"x" * 32, 0)).context_seed(np.array([3])), 4096)
    assert (a != b).mean() > 0.3 and (a != c).mean() > 0.3


def test_seeds_match_context_seed_and_minhash_is_local():
    g = GreenList(KEY, context_width=3)
    ids = np.array([5, 8, 13, 21, 34, 55, 89])
    seeds = g.seeds(ids)
    assert len(seeds) == len(ids) - 3
    for i, s in enumerate(seeds):
        assert s == g.context_seed(ids[: i + 3])
    # editing one token changes at most context_width seeds
    edited = ids.copy()
    edited[3] = 999
    assert (g.seeds(edited) != seeds).sum() <= 3


def test_is_green_agrees_with_mask():
    g = GreenList(KEY)
    seed = g.context_seed(np.array([42]))
    toks = np.arange(1000)
    assert np.array_equal(g.is_green(np.full(1000, seed, np.uint64), toks), g.mask(seed, 1000))


def test_bad_parameters_are_refused():
    with pytest.raises(ConfigError, match="gamma"):
        GreenList(KEY, gamma=1.5)
    with pytest.raises(ConfigError, match="context_width"):
        GreenList(KEY, context_width=0)


def test_logits_processor_adds_delta_to_green_only():
    torch = pytest.importorskip("torch")
    from distillguard.watermark.greenlist import GreenListLogitsProcessor, logits_processor

    g = GreenList(KEY)
    proc = GreenListLogitsProcessor(g, delta=2.0)
    ids = torch.tensor([[1, 2, 3], [4, 5, 6], [7, 8, 3]])
    scores = torch.zeros(3, 500)
    out = proc(ids, scores)
    for row, last in enumerate([3, 6, 3]):
        mask = torch.from_numpy(g.mask(g.context_seed(np.array([last])), 500))
        assert torch.equal(out[row], 2.0 * mask.float())
    assert torch.equal(out[0], out[2])  # same context, same bias (served from the bank)
    # the transformers wrapper is a real LogitsProcessor and gives the same result
    import transformers

    wrapped = logits_processor(g, 2.0)
    assert isinstance(wrapped, transformers.LogitsProcessor)
    assert torch.equal(wrapped(ids, scores), out)


def test_processor_bank_stays_bounded():
    torch = pytest.importorskip("torch")
    from distillguard.watermark.greenlist import GreenListLogitsProcessor

    proc = GreenListLogitsProcessor(GreenList(KEY), delta=1.0, cache_bytes=100 * 64 * 4)
    for start in range(0, 1000, 10):
        ids = torch.arange(start, start + 10).reshape(10, 1)
        out = proc(ids, torch.zeros(10, 64))
        assert out.shape == (10, 64)
    assert len(proc._rows) <= 100
