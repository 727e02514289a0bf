import numpy as np
import pytest
from scipy import stats

from distillguard.watermark.detect import (
    Scorer,
    best_of,
    binomial_test,
    detect_ids,
    detect_many,
    first_unique,
    randomized_p,
    scored_pairs,
)
from distillguard.watermark.greenlist import GreenList
from distillguard.watermark.keys import derive

KEY = derive(b"k" * 32, 0)
V = 5000


def watermarked(green, n, rng, strength=1.0):
    """Hand-made watermarked ids: each next token green with probability ``strength``."""
    ids = [int(rng.integers(V))]
    for _ in range(n):
        mask = green.mask(green.context_seed(np.array(ids)), V)
        pool = np.flatnonzero(mask if rng.random() < strength else ~mask)
        ids.append(int(rng.choice(pool)))
    return ids


def zipf_text(n, rng):
    """Unwatermarked ids with natural-language-like repetition (Zipf ranks)."""
    return (rng.zipf(1.3, n) % V).tolist()


def test_all_green_text_is_detected_and_verdict_says_so():
    g = GreenList(KEY)
    ids = watermarked(g, 200, np.random.default_rng(0))
    d = detect_ids(ids, g)
    assert d.scored_tokens > 150 and d.green_tokens == d.scored_tokens
    assert d.p_value < 1e-30 and d.z > 10
    assert "Watermarked" in d.verdict()


def test_wrong_key_and_clean_text_are_not_detected():
    g = GreenList(KEY)
    ids = watermarked(g, 200, np.random.default_rng(0))
    other = GreenList(derive(b"o" * 32, 0))
    assert detect_ids(ids, other).p_value > 1e-3
    d = detect_ids(zipf_text(300, np.random.default_rng(1)), g)
    assert d.p_value > 1e-3
    assert "No evidence" in d.verdict()


def test_repeats_are_scored_once():
    g = GreenList(KEY)
    ids = [1, 2, 3, 4, 5] * 50
    d = detect_ids(ids, g)
    assert d.scored_tokens == 5  # pairs (1,2) (2,3) (3,4) (4,5) (5,1)
    assert detect_ids(ids, g, dedup=False).scored_tokens == len(ids) - 1


def test_repeated_green_phrase_does_not_fake_significance():
    """Without dedup a repeated phrase gives a tiny p-value on unwatermarked text."""
    g = GreenList(KEY)
    rng = np.random.default_rng(3)
    phrase = None
    for _ in range(1000):  # find a clean phrase whose pairs happen to be mostly green
        cand = rng.integers(V, size=6).tolist()
        _, fl = scored_pairs(cand, g)
        if fl.sum() >= 4:
            phrase = cand
            break
    assert phrase is not None
    text = phrase * 40
    assert detect_ids(text, g, dedup=False).p_value < 1e-20
    assert detect_ids(text, g).p_value > 1e-3


def test_binomial_test_matches_scipy():
    z, p = binomial_test(70, 200, 0.25)
    assert p == pytest.approx(stats.binomtest(70, 200, 0.25, alternative="greater").pvalue)
    assert z == pytest.approx((70 - 50) / np.sqrt(200 * 0.25 * 0.75))
    assert binomial_test(0, 0, 0.25) == (0.0, 1.0)


def test_p_values_on_clean_text_are_uniform():
    """Calibration: randomised p-values over many clean texts pass a KS test for uniformity,
    and the plain p-value is never below alpha more often than alpha allows."""
    rng = np.random.default_rng(7)
    rand, exact = [], []
    for i in range(600):
        g = GreenList(derive(b"k" * 32, i))
        fp, fl = scored_pairs(zipf_text(400, rng), g)
        r = first_unique(fp, fl, 100)
        assert r is not None
        green, n = r
        rand.append(randomized_p(green, n, 0.25, float(rng.random())))
        exact.append(binomial_test(green, n, 0.25)[1])
    assert stats.kstest(rand, "uniform").pvalue > 0.01
    for alpha in (0.01, 0.05, 0.1):
        assert np.mean(np.array(exact) < alpha) <= alpha + 3 * np.sqrt(alpha / 600)


def test_detection_power_grows_with_length():
    g = GreenList(KEY)
    rng = np.random.default_rng(11)
    ps = [detect_ids(watermarked(g, n, rng, strength=0.5), g).p_value for n in (25, 100, 400)]
    assert ps[2] < ps[0] and ps[2] < 1e-6


def test_detect_many_dedups_across_sequences_and_merge_is_union():
    g = GreenList(KEY)
    a, b = [1, 2, 3, 4], [3, 4, 5, 6]
    assert detect_many([a, b], g).scored_tokens == 5
    s1, s2 = Scorer(g), Scorer(g)
    s1.add(a)
    s2.add(b)
    s1.merge(s2)
    assert s1.result().scored_tokens == 5
    with pytest.raises(ValueError, match="cannot merge"):
        s1.merge(Scorer(GreenList(derive(b"o" * 32, 0))))


def test_ignored_tokens_are_not_scored():
    g = GreenList(KEY)
    assert Scorer(g, ignore=frozenset({9})).counts == (0, 0)
    s = Scorer(g, ignore=frozenset({9}))
    s.add([1, 9, 2, 9, 3])
    assert s.counts[1] == 2


def test_best_of_corrects_for_keys_tried():
    g = GreenList(KEY)
    ids = watermarked(g, 60, np.random.default_rng(0))
    ds = [detect_ids(ids, GreenList(derive(b"k" * 32, e))) for e in range(4)]
    b = best_of(ds)
    assert b.keys_tried == 4 and b.key_id == "e0"
    assert b.p_value == pytest.approx(min(1.0, ds[0].p_value * 4))
    with pytest.raises(ValueError):
        best_of([])


def test_short_text_has_nothing_to_score():
    d = detect_ids([5], GreenList(KEY))
    assert d.scored_tokens == 0 and d.p_value == 1.0
    assert "too short" in d.verdict()


def test_text_detector_tokenizes_then_scores():
    from distillguard.watermark.detect import TextDetector

    g = GreenList(KEY)
    ids = watermarked(g, 100, np.random.default_rng(5))
    text = " ".join(map(str, ids))
    det = TextDetector(lambda t: [int(x) for x in t.split()], g)
    assert det(text) == detect_ids(ids, g)
