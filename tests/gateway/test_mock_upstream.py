"""The stand-in model, served by uvicorn on loopback and driven by the official OpenAI and Anthropic SDKs:
text, usage and stop reasons as each SDK reads them, both streaming styles, the faults, and its counters."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
import uvicorn
from starlette.applications import Starlette
from typer.testing import CliRunner

from distillguard.cli import app as cli_app
from distillguard.errors import ConfigError
from distillguard.gateway.mock_upstream import MOCK_MODELS, MockConfig, MockStats, create_mock_app

FAST = MockConfig(latency_ms=1, tokens_per_s=20_000)


@contextlib.contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Run ``app`` with uvicorn in a background thread on a free loopback port; yields its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the mock upstream did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def mock() -> Iterator[tuple[str, MockStats]]:
    app = create_mock_app(FAST)
    with serve(app) as url:
        yield url, app.state.stats


@pytest.fixture
def oai(mock: tuple[str, MockStats]) -> openai.OpenAI:
    return openai.OpenAI(api_key="test", base_url=f"{mock[0]}/v1", max_retries=0)


@pytest.fixture
def ant(mock: tuple[str, MockStats]) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key="test", base_url=mock[0], max_retries=0)


def _user(text: str) -> Any:
    return [{"role": "user", "content": text}]


def _wait_for(check: Callable[[], bool]) -> bool:
    """Poll a condition another thread makes true (bounded: five seconds)."""
    deadline = time.monotonic() + 5
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


# ------------------------------------------------------------------------------------------ OpenAI


def test_openai_non_stream(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="mock-small", messages=_user("Tell me about rivers."))
    text = reply.choices[0].message.content
    assert text and reply.model == "mock-small"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == len(text.split())  # one word, one token
    assert reply.usage.prompt_tokens > len("Tell me about rivers.") // 4
    assert reply.choices[0].finish_reason == "stop"  # no limit given: it ends on its own
    again = oai.chat.completions.create(model="mock-small", messages=_user("Tell me about rivers."))
    other = oai.chat.completions.create(model="mock-small", messages=_user("Tell me about lakes."))
    assert again.choices[0].message.content == text != other.choices[0].message.content


def test_openai_max_tokens_caps_the_output(oai: openai.OpenAI) -> None:
    for field in ("max_tokens", "max_completion_tokens"):
        reply = oai.chat.completions.create(model="m", messages=_user("Write an essay."), **{field: 7})  # type: ignore[call-overload]
        assert reply.usage.completion_tokens == 7
        assert reply.choices[0].finish_reason == "length"


def test_openai_n_and_stop(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="m", messages=_user("Two answers, please."), n=2, max_tokens=40)
    assert [c.index for c in reply.choices] == [0, 1]
    assert reply.choices[0].message.content != reply.choices[1].message.content
    words = reply.choices[0].message.content.split()  # type: ignore[union-attr]
    stopped = oai.chat.completions.create(model="m", messages=_user("Two answers, please."), max_tokens=40,
                                          stop=[" " + words[3]])  # fmt: skip
    assert stopped.choices[0].message.content == " ".join(words[:3])
    assert stopped.choices[0].finish_reason == "stop"


async def _openai_stream(url: str, include_usage: bool) -> tuple[str, list[Any]]:
    client = openai.AsyncOpenAI(api_key="test", base_url=f"{url}/v1", max_retries=0)
    options: Any = {"include_usage": True} if include_usage else openai.omit
    stream = await client.chat.completions.create(
        model="mock-small", messages=_user("Stream me a story."), max_tokens=30, stream=True, stream_options=options
    )
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    await client.close()
    return text, chunks


def test_openai_async_stream_with_and_without_usage(mock: tuple[str, MockStats], oai: openai.OpenAI) -> None:
    plain = oai.chat.completions.create(model="mock-small", messages=_user("Stream me a story."), max_tokens=30)
    text, chunks = asyncio.run(_openai_stream(mock[0], include_usage=True))
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()  # type: ignore[union-attr]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == plain.choices[0].finish_reason
    text, chunks = asyncio.run(_openai_stream(mock[0], include_usage=False))
    assert text == plain.choices[0].message.content
    assert all(c.choices and c.usage is None for c in chunks)


def test_openai_sync_stream(oai: openai.OpenAI) -> None:
    with oai.chat.completions.create(model="m", messages=_user("Hi"), max_tokens=5, stream=True,
                                     stream_options={"include_usage": True}) as stream:  # fmt: skip
        chunks = list(stream)
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert chunks[-2].choices[0].finish_reason == "length"


# ------------------------------------------------------------------------------------------ Anthropic


def test_anthropic_non_stream(ant: anthropic.Anthropic) -> None:
    message = ant.messages.create(model="mock-large", max_tokens=1000, system="Be brief.",
                                  messages=_user("Tell me about rivers."))  # fmt: skip
    assert message.model == "mock-large" and message.role == "assistant"
    text = message.content[0].text  # type: ignore[union-attr]
    assert message.usage.output_tokens == len(text.split())
    assert message.usage.input_tokens > 0
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    capped = ant.messages.create(model="mock-large", max_tokens=4, messages=_user("Tell me about rivers."))
    assert capped.usage.output_tokens == 4 and capped.stop_reason == "max_tokens"
    words = text.split()
    stopped = ant.messages.create(model="mock-large", max_tokens=1000, system="Be brief.",
                                  messages=_user("Tell me about rivers."), stop_sequences=[words[2]])  # fmt: skip
    assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == words[2]
    assert stopped.content[0].text == " ".join(words[:2]) + " "  # type: ignore[union-attr]


async def _anthropic_stream(url: str) -> tuple[str, Any]:
    client = anthropic.AsyncAnthropic(api_key="test", base_url=url, max_retries=0)
    async with client.messages.stream(model="mock-small", max_tokens=25, messages=_user("Stream it.")) as stream:
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    await client.close()
    return text, final


def test_anthropic_streams(mock: tuple[str, MockStats], ant: anthropic.Anthropic) -> None:
    plain = ant.messages.create(model="mock-small", max_tokens=25, messages=_user("Stream it."))
    text, final = asyncio.run(_anthropic_stream(mock[0]))
    assert text == plain.content[0].text  # type: ignore[union-attr]
    assert final.usage.output_tokens == plain.usage.output_tokens
    assert final.usage.input_tokens == plain.usage.input_tokens
    assert final.stop_reason == plain.stop_reason
    with ant.messages.stream(model="mock-small", max_tokens=3, messages=_user("Stream it.")) as stream:
        kinds = [event.type for event in stream]
        message = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert message.usage.output_tokens == 3 and message.stop_reason == "max_tokens"


# ------------------------------------------------------------------------------------------ faults


def _fault(name: str) -> dict[str, Any]:
    return {"extra_headers": {"x-mock-fault": name}}


def test_error_fault(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.InternalServerError) as caught:
        oai.chat.completions.create(model="m", messages=_user("x"), **_fault("error"))
    assert caught.value.status_code == 500 and caught.value.type == "server_error"
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        ant.messages.create(model="m", max_tokens=5, messages=_user("x"), **_fault("error"))
    assert overloaded.value.status_code == 529


def test_drop_fault_ends_streams_early(oai: openai.OpenAI, ant: anthropic.Anthropic, mock: tuple[str, MockStats]) -> None:
    dropped = mock[1].streams_dropped
    chunks = list(oai.chat.completions.create(model="m", messages=_user("x"), max_tokens=20, stream=True,
                                              **_fault("drop")))  # fmt: skip
    assert chunks and all(c.choices[0].finish_reason is None for c in chunks)
    assert len(chunks) < 20
    events = list(ant.messages.create(model="m", max_tokens=20, messages=_user("x"), stream=True, **_fault("drop")))
    assert events[0].type == "message_start"
    assert not {"message_delta", "message_stop"} & {e.type for e in events}
    assert _wait_for(lambda: mock[1].streams_dropped == dropped + 2)


def test_drop_fault_cuts_a_plain_response(oai: openai.OpenAI) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m", messages=_user("x"), **_fault("drop"))


def test_reset_fault(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.APIConnectionError):
        oai.chat.completions.create(model="m", messages=_user("x"), **_fault("reset"))
    with pytest.raises(anthropic.APIConnectionError):
        ant.messages.create(model="m", max_tokens=5, messages=_user("x"), stream=True, **_fault("reset"))


def test_slow_fault_still_answers(oai: openai.OpenAI) -> None:
    reply = oai.chat.completions.create(model="m", messages=_user("x"), max_tokens=3, **_fault("slow"))
    assert reply.usage is not None and reply.usage.completion_tokens == 3


def test_bad_requests_get_the_api_errors(oai: openai.OpenAI, ant: anthropic.Anthropic) -> None:
    with pytest.raises(openai.BadRequestError, match="x-mock-fault: expected one of"):
        oai.chat.completions.create(model="m", messages=_user("x"), **_fault("explode"))
    with pytest.raises(openai.BadRequestError) as caught:
        oai.chat.completions.create(model="m", messages=[{"role": "user", "content": 5}])  # type: ignore[list-item,misc]
    assert caught.value.param == "messages[0].content"
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: expected an integer >= 1"):
        ant.messages.create(model="m", max_tokens=0, messages=_user("x"))


def test_random_faults_at_fail_rate_one() -> None:
    app = create_mock_app(MockConfig(latency_ms=0, tokens_per_s=20_000, fail_rate=1.0, seed=3))
    with serve(app) as url:
        client = openai.OpenAI(api_key="test", base_url=f"{url}/v1", max_retries=0)
        for _ in range(6):
            with pytest.raises((openai.APIStatusError, openai.APIConnectionError)):
                client.chat.completions.create(model="m", messages=_user("x"), max_tokens=3)
    stats: MockStats = app.state.stats
    assert stats.requests == 6 and sum(stats.faults.values()) == 6
    assert set(stats.faults) <= {"error", "drop", "reset"}


# ------------------------------------------------------------------------------------------ the rest


def test_counts_requests_and_client_cancelled_streams() -> None:
    app = create_mock_app(MockConfig(latency_ms=0, tokens_per_s=50))
    with serve(app) as url:
        client = openai.OpenAI(api_key="test", base_url=f"{url}/v1", max_retries=0)
        stream = client.chat.completions.create(model="m", messages=_user("A long story."), max_tokens=200, stream=True)
        first = [next(iter(stream)), next(iter(stream))]
        stream.close()
        assert first[1].choices[0].delta.content
        stats: MockStats = app.state.stats
        assert _wait_for(lambda: stats.streams_cancelled == 1)
        assert stats.requests == 1 and stats.streams_started == 1 and stats.streams_completed == 0


def test_counts_tokens_served_and_serves_them_at_stats() -> None:
    """Input and output tokens equal the usage it reported; a cancelled stream counts what it sent
    (at least what the client read, never its whole reply); /_stats shows the same counters."""
    app = create_mock_app(MockConfig(latency_ms=0, tokens_per_s=100))
    with serve(app) as url:
        client = openai.OpenAI(api_key="test", base_url=f"{url}/v1", max_retries=0)
        whole = client.chat.completions.create(model="m", messages=_user("Tell me about rivers."), max_tokens=9)
        stats: MockStats = app.state.stats
        assert whole.usage is not None
        assert (stats.input_tokens, stats.output_tokens) == (whole.usage.prompt_tokens, whole.usage.completion_tokens)
        stream = client.chat.completions.create(model="m", messages=_user("A long story."), max_tokens=300, stream=True)
        read = [next(iter(stream)) for _ in range(3)]  # the role chunk, then two tokens
        stream.close()
        assert read[2].choices[0].delta.content
        assert _wait_for(lambda: stats.streams_cancelled == 1 and stats.in_flight == 0)
        sent = stats.output_tokens - whole.usage.completion_tokens
        assert 2 <= sent < 300
        served = httpx.get(f"{url}/_stats").json()
        assert served["output_tokens"] == stats.output_tokens and served["input_tokens"] == stats.input_tokens
        assert served["in_flight"] == 0 and served["requests"] == 2 and served["streams_cancelled"] == 1


def test_models_in_both_formats(oai: openai.OpenAI, ant: anthropic.Anthropic, mock: tuple[str, MockStats]) -> None:
    assert [m.id for m in oai.models.list()] == list(MOCK_MODELS)
    listed = ant.models.list()
    assert [m.id for m in listed.data] == list(MOCK_MODELS) and listed.data[0].type == "model"
    health = httpx.get(f"{mock[0]}/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "bad", [{"latency_ms": -1}, {"tokens_per_s": 0}, {"fail_rate": 1.5}, {"max_output_tokens": 0}]
)
def test_config_is_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(bad))):
        MockConfig(**bad)


def test_max_output_tokens_ends_the_reply_naturally() -> None:
    app = create_mock_app(MockConfig(latency_ms=0, tokens_per_s=20_000, max_output_tokens=3))
    with serve(app) as url:
        client = anthropic.Anthropic(api_key="test", base_url=url, max_retries=0)
        message = client.messages.create(model="m", max_tokens=100, messages=_user("x"))
    assert message.usage.output_tokens == 3 and message.stop_reason == "end_turn"


def test_cli_help_says_it_is_a_stand_in() -> None:
    result = CliRunner().invoke(cli_app, ["mock-upstream", "--help"])
    assert result.exit_code == 0
    assert "stand-in model" in result.output and "--tokens-per-s" in result.output
    assert CliRunner().invoke(cli_app, ["mock-upstream"]).exit_code == 2  # --port is required
