import math

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from distillguard.watermark import tinylm
from distillguard.watermark.detect import detect_many
from distillguard.watermark.greenlist import GreenList, GreenListLogitsProcessor
from distillguard.watermark.keys import derive

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "to", "the", "park", "while", "birds", "sang", "in", "trees", "near", "water"]


@pytest.fixture(scope="module")
def model_and_tok():
    rng = np.random.default_rng(0)
    pairs = [(" ".join(rng.choice(WORDS, 5)), " ".join(rng.choice(WORDS, 30))) for _ in range(300)]
    tok = tinylm.train_tokenizer([p + " " + r for p, r in pairs], 300)
    cfg = tinylm.LMConfig(tok.get_vocab_size(), 64, 1, 32, 2, steps=30, batch=8, lr=5e-3)
    m = tinylm.build_model(cfg)
    stats = tinylm.train_lm(m, tinylm.encode_pairs(tok, pairs), cfg)
    return m, tok, pairs, stats


def test_training_lowers_the_loss(model_and_tok):
    m, tok, _, stats = model_and_tok
    assert stats["steps"] == 30 and stats["final_loss"] < math.log(tok.get_vocab_size())
    assert tinylm.n_params(m) > 1000


def test_generation_with_the_processor_carries_the_watermark(model_and_tok):
    m, tok, pairs, _ = model_and_tok
    g = GreenList(derive(b"k" * 32, 0))
    prompts = [p for p, _ in pairs[:40]]
    marked = tinylm.generate(m, tok, prompts, 32, GreenListLogitsProcessor(g, 4.0), batch=20, min_new_tokens=16)
    clean = tinylm.generate(m, tok, prompts, 32, None, batch=20, min_new_tokens=16)
    assert all(len(o) >= 16 for o in marked)
    assert detect_many(marked, g).p_value < 1e-6
    assert detect_many(clean, g).p_value > 1e-4
    ppl = tinylm.perplexity(m, tok, prompts, clean)
    assert 1.0 < ppl < tok.get_vocab_size()


def test_generation_refuses_lengths_beyond_the_context(model_and_tok):
    m, tok, _, _ = model_and_tok
    with pytest.raises(ValueError, match="no room"):
        tinylm.generate(m, tok, ["x"], 64)
