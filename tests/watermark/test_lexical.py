import numpy as np

from distillguard.watermark.keys import derive
from distillguard.watermark.lexical import (
    LexicalPolicy,
    LexicalWatermark,
    default_groups,
    poisson_binomial_sf,
)

KEY = derive(b"k" * 32, 0)
TEXT = (
    "It is often big and the idea is simple. We also need a big car and the main problem is "
    "that the goal is quite important. Perhaps the whole task was explained carefully; "
    "the examples show various benefits and the kids were happy. "
)


def test_groups_are_disjoint_and_lowercase():
    seen = set()
    for g in default_groups():
        assert len(g) >= 2
        for w in g:
            assert w == w.lower() and w not in seen
            seen.add(w)


def test_apply_only_swaps_within_groups_and_keeps_meaning():
    wm = LexicalWatermark(KEY)
    out = wm.apply(TEXT)
    assert out != TEXT
    assert wm.canonical(out) == wm.canonical(TEXT)
    assert len(out.split()) == len(TEXT.split())


def test_apply_is_idempotent_and_context_conditioned():
    wm = LexicalWatermark(KEY)
    once = wm.apply(TEXT)
    assert wm.apply(once) == once
    # the same group word after different previous words need not get the same choice
    choices = {wm.apply(f"{prev} often").split()[1] for prev in ["we", "it", "they", "you", "people", "cats", "dogs", "he"]}
    assert len(choices) == 2


def test_code_capitals_and_articles_are_untouched():
    wm = LexicalWatermark(KEY)
    text = "Use `often big` here.\n```\nbig = often\n```\nBig cars. a big car, an important one."
    out = wm.apply(text)
    assert "`often big`" in out and "big = often" in out and out.startswith("Use") and "Big cars" in out
    assert "a big car" in out and "an important" in out


def test_detection_marked_vs_clean_vs_other_key():
    wm = LexicalWatermark(KEY)
    doc = TEXT * 1
    long_doc = " ".join(wm.apply(TEXT.replace("the", w)) for w in ["the", "our", "this", "that", "my", "your"])
    d = wm.detect(long_doc)
    assert d.matches == d.scored and d.p_value < 1e-3
    assert "Watermarked" in d.verdict()
    assert LexicalWatermark(derive(b"o" * 32, 0)).detect(long_doc).p_value > 1e-3
    assert wm.detect("nothing to see here").scored == 0
    assert wm.detect(doc).scored > 5


def test_poisson_binomial_matches_binomial_when_equal():
    from scipy import stats

    probs = [0.5] * 30
    for k in (0, 10, 20, 30):
        assert np.isclose(poisson_binomial_sf(k, probs), stats.binom.sf(k - 1, 30, 0.5))


def test_policy_marks_only_risky_accounts():
    wm = LexicalWatermark(KEY)
    pol = LexicalPolicy(min_risk=0.7)
    assert pol.apply(wm, TEXT, risk=0.2) == TEXT
    assert pol.apply(wm, TEXT, risk=0.9) == wm.apply(TEXT)
