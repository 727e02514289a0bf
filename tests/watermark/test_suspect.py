import json

import numpy as np
import pytest

from distillguard.errors import ConfigError
from distillguard.watermark.greenlist import GreenList
from distillguard.watermark.keys import derive
from distillguard.watermark.suspect import suspect_test, text_outputs

KEY = derive(b"k" * 32, 0)
V = 3000


def biased_outputs(green, n, length, bias, rng):
    """Outputs of a 'student' that picks green with probability ``bias`` (0.25 = clean)."""
    for _ in range(n):
        ids = [int(rng.integers(V))]
        for _ in range(length):
            mask = green.mask(green.context_seed(np.array(ids)), V)
            pool = np.flatnonzero(mask if rng.random() < bias else ~mask)
            ids.append(int(rng.choice(pool)))
        yield ids


def test_radioactive_student_is_found_early():
    g = GreenList(KEY)
    r = suspect_test(biased_outputs(g, 1000, 40, 0.45, np.random.default_rng(0)), g, 1e-6, 1000)
    assert r.p_value < 1e-6 and r.stopped_early and r.queries < 1000
    assert "carries our watermark" in r.verdict()
    assert r.to_dict()["queries"] == r.queries


def test_clean_model_runs_all_queries_and_says_so():
    g = GreenList(KEY)
    r = suspect_test(biased_outputs(g, 100, 30, 0.25, np.random.default_rng(1)), g, 1e-6, 100)
    assert r.queries == 100 and not r.stopped_early and r.p_value > 1e-6
    assert "No evidence" in r.verdict()


def test_looks_are_bonferroni_corrected():
    g = GreenList(KEY)
    outs = list(biased_outputs(g, 50, 30, 0.25, np.random.default_rng(2)))
    once = suspect_test(outs, g, 0.0, 50, check_every=50)
    five = suspect_test(outs, g, 0.0, 50, check_every=10)
    assert five.p_value == pytest.approx(min(1.0, once.p_value * 5))


def test_openai_endpoint_with_mock_transport():
    httpx = pytest.importorskip("httpx")
    from distillguard.watermark.suspect import OpenAIEndpoint

    seen = []

    def handler(request):
        body = json.loads(request.content)
        seen.append((request.url.path, request.headers.get("authorization"), body["model"], body["max_tokens"]))
        return httpx.Response(200, json={"choices": [{"message": {"content": "reply to " + body["messages"][0]["content"]}}]})

    api = OpenAIEndpoint("http://suspect/v1", "m1", api_key="s3cret", max_tokens=12, transport=httpx.MockTransport(handler))
    tok = lambda t: [len(w) for w in t.split()]  # noqa: E731
    outs = list(text_outputs(api, ["a b", "ccc"], tok, batch=1))
    assert outs == [[5, 2, 1, 1], [5, 2, 3]]
    assert seen[0] == ("/v1/chat/completions", "Bearer s3cret", "m1", 12)

    bad = OpenAIEndpoint("http://suspect/v1", "m1", transport=httpx.MockTransport(lambda r: httpx.Response(500, text="down")))
    with pytest.raises(ConfigError, match="answered 500"):
        bad(["x"])
    empty = OpenAIEndpoint("http://suspect/v1", "m1", transport=httpx.MockTransport(lambda r: httpx.Response(200, json={})))
    with pytest.raises(ConfigError, match="no chat completion"):
        empty(["x"])
