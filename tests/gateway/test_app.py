"""The gateway end to end: the official SDKs through it to the mock upstream (a stand-in model:
no model can be served here), quotas, decisions at the door, bad input, faults, the sink."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import polars as pl
import pytest

from distillguard.gateway.app import Gateway, create_app
from distillguard.gateway.logs import FIELDS, JsonFormatter
from distillguard.gateway.mock_upstream import MockConfig, create_mock_app
from distillguard.gateway.quota import make_store
from distillguard.gateway.server import BackgroundServer as ServerThread
from distillguard.gateway.server import GatewaySettings, build_gateway
from distillguard.io import LogReader

KEY, ACCOUNT = "dg-test-key", "acct_old"
OLD = (dt.datetime.now(dt.UTC) - dt.timedelta(days=60)).isoformat()


@pytest.fixture(scope="module")
def mock() -> Iterator[ServerThread]:
    with ServerThread(create_mock_app(MockConfig(latency_ms=1, tokens_per_s=20_000, max_output_tokens=64))) as s:
        yield s


def _policy(tmp_path: Path, extra: str = "") -> str:
    p = tmp_path / "policy.yaml"
    p.write_text(
        "plans:\n"
        "  free: {daily_tokens: 200000, requests_per_minute: 100000, tokens_per_minute: 10000000, max_tokens: 256}\n"
        "  pro: {daily_tokens: 5000000, requests_per_minute: 1000, tokens_per_minute: 400000, max_tokens: 1024}\n"
        "  enterprise: {daily_tokens: 50000000, requests_per_minute: 6000, tokens_per_minute: 2000000, max_tokens: 32768}\n"
        + extra
    )
    return str(p)


def _accounts(tmp_path: Path, rows: list[dict[str, Any]]) -> str:
    p = tmp_path / "accounts.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(p)


class _Gw:
    def __init__(self, mock: ServerThread, tmp_path: Path, policy_extra: str = "", **kw: Any) -> None:
        accounts = kw.pop("accounts", [{"account_id": ACCOUNT, "created_at": OLD, "plan": "pro", "verified": True}])
        settings = GatewaySettings(
            upstream=mock.url, policy=_policy(tmp_path, policy_extra), sink=str(tmp_path / "sink"),
            accounts=_accounts(tmp_path, accounts), keys=kw.pop("keys", {KEY: ACCOUNT}), live=kw.pop("live", False), **kw,
        )  # fmt: skip
        self.gateway: Gateway = build_gateway(settings)
        self.server = ServerThread(create_app(self.gateway))

    def __enter__(self) -> tuple[Gateway, str]:
        self.server.__enter__()
        return self.gateway, self.server.url

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(None, None, None)


def test_openai_sdk_sync_async_and_streaming(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path) as (_, url):
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hello there"}], max_tokens=20)
        assert r.choices[0].message.content and r.usage is not None and 0 < r.usage.completion_tokens <= 20
        chunks = list(client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "stream please"}], stream=True, stream_options={"include_usage": True}))  # fmt: skip
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) and chunks[-1].usage is not None
        plain = list(client.chat.completions.create(model="m", messages=[{"role": "user", "content": "no usage"}], stream=True))
        assert all(c.usage is None for c in plain)  # the usage chunk the gateway asked for is cut out again

        async def go() -> str:
            a = openai.AsyncOpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
            out = await a.chat.completions.create(model="m", messages=[{"role": "user", "content": "async"}])
            await a.close()
            return out.choices[0].message.content or ""

        assert asyncio.run(go())
        assert [m.id for m in client.models.list()]


def test_anthropic_sdk_sync_async_and_streaming(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path) as (_, url):
        client = anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0)
        r = client.messages.create(model="m", max_tokens=16, messages=[{"role": "user", "content": "hello"}])
        assert r.content[0].type == "text" and r.usage.output_tokens <= 16 and r.stop_reason in ("end_turn", "max_tokens")
        with client.messages.stream(model="m", max_tokens=32, messages=[{"role": "user", "content": "stream"}]) as s:
            text = "".join(s.text_stream)
            final = s.get_final_message()
        assert text and final.usage.output_tokens > 0

        async def go() -> int:
            a = anthropic.AsyncAnthropic(base_url=url, api_key=KEY, max_retries=0)
            out = await a.messages.create(model="m", max_tokens=8, messages=[{"role": "user", "content": "async"}])
            await a.close()
            return out.usage.output_tokens

        assert asyncio.run(go()) > 0


def test_unknown_keys_get_each_apis_authentication_error(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path) as (_, url):
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=url + "/v1", api_key="nope", max_retries=0).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "x"}])  # fmt: skip
        with pytest.raises(anthropic.AuthenticationError):
            anthropic.Anthropic(base_url=url, api_key="nope", max_retries=0).messages.create(
                model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}])  # fmt: skip


def test_a_daily_quota_is_never_overshot_and_mostly_used(mock: ServerThread, tmp_path: Path) -> None:
    accounts = [{"account_id": "acct_new", "created_at": dt.datetime.now(dt.UTC).isoformat(), "plan": "free"}]
    extra = "release: {stages: [{age_days: 0, share: 0.05}, {age_days: 14, share: 1.0}], trust: {verified: 0.0, paid: 0.0, clean_days: {days: 30, share: 0.0}}, cluster: true}\n"
    with _Gw(mock, tmp_path, extra, accounts=accounts, keys={"k-new": "acct_new"}) as (gw, url):
        client = openai.OpenAI(base_url=url + "/v1", api_key="k-new", max_retries=0)
        served = refused = 0
        for i in range(200):  # bounded; a new account's budget is 5 % of 200,000 tokens
            try:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"question {i} " * 20}], max_tokens=200)
                served += 1
            except openai.RateLimitError as e:
                refused += 1
                assert e.body is not None and "daily_tokens" in json.dumps(e.body)
                break
        usage = asyncio.run(gw.store.usage("acct:acct_new"))
        assert refused == 1 and served > 5
        assert usage["used"] <= 10_000  # never beyond the quota
        assert usage["used"] + 800 >= 10_000 * 0.5  # and not a limiter that refuses everything


def test_a_missing_max_tokens_gets_the_plans_cap_and_more_than_it_is_refused(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path) as (_gw, url):
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "no cap given"}])
        with pytest.raises(openai.BadRequestError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=100_000)
    rows = pl.concat([pl.from_arrow(b) for b in LogReader(tmp_path / "sink").exchange_batches()])  # type: ignore[misc]
    assert isinstance(rows, pl.DataFrame)
    assert rows["max_tokens"].to_list() == [1024]  # the pro plan's cap, never unlimited


def test_a_campaign_member_is_refused_with_a_reason_and_an_appeal_reference(
    mock: ServerThread, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    hunt = tmp_path / "hunt"
    hunt.mkdir()
    pl.DataFrame({"account_id": [ACCOUNT], "risk": [0.95], "flagged": [True], "campaign": ["C001"], "decision": ["block"]}).write_parquet(
        hunt / "accounts.parquet")  # fmt: skip
    extra = "actions: {block: {appeal_url: 'https://example.com/appeal'}}\n"
    settings_live = {"live": True, "decisions": [str(hunt)]}
    with _Gw(mock, tmp_path, extra, **settings_live) as (_, url):
        with pytest.raises(anthropic.PermissionDeniedError) as e, caplog.at_level(logging.INFO, "distillguard.gateway"):
            anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0).messages.create(
                model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}])  # fmt: skip
        assert "campaign_block" in str(e.value) and "https://example.com/appeal" in str(e.value) and "reference" in str(e.value)
    # the log line carries the reference the client was given, as JSON fields
    [record] = [r for r in caplog.records if getattr(r, FIELDS, {}).get("code") == "campaign_block"]
    line = json.loads(JsonFormatter().format(record))
    assert line["account"] == ACCOUNT and line["status"] == 403 and line["event"] == "refused" and line["ref"] in str(e.value)


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        ({"content-type": "application/json"}, b"{not json", 400),
        ({"content-type": "text/plain"}, b"{}", 415),
        ({"content-type": "application/json"}, b'{"model": "m", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400),
        ({"content-type": "application/json"}, b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "surprise": 1}', 400),
        ({"content-type": "application/json"}, b'{"model": "m", "messages": []}', 400),
        ({"content-type": "application/json"}, b"[1, 2]", 400),
        ({"content-type": "application/json"}, b'{"model": "m", "messages": [{"role": "user", "content": "' + b"x" * (5 << 20) + b'"}]}', 413),
    ],
)
def test_bad_requests_get_a_clear_4xx(mock: ServerThread, tmp_path: Path, headers: dict[str, str], body: bytes, status: int) -> None:
    with _Gw(mock, tmp_path) as (_, url):
        r = httpx.post(url + "/v1/chat/completions", content=body, headers={**headers, "authorization": f"Bearer {KEY}"})
        assert r.status_code == status
        assert r.json()["error"]["message"]


def test_upstream_faults_give_each_apis_own_errors_and_settle(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path) as (gw, url):
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], extra_headers={"x-mock-fault": "error"})
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], extra_headers={"x-mock-fault": "reset"})
        usage = asyncio.run(gw.store.usage(f"acct:{ACCOUNT}"))
        assert usage["reserved"] == 0
    down = type("Down", (), {"url": "http://127.0.0.1:9"})()  # nothing listens on port 9
    with _Gw(down, tmp_path) as (_, url), pytest.raises(anthropic.InternalServerError):
        anthropic.Anthropic(base_url=url, api_key=KEY, max_retries=0).messages.create(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "x"}])  # fmt: skip


def test_a_client_leaving_mid_stream_cancels_upstream_and_settles(mock: ServerThread, tmp_path: Path) -> None:
    stats = mock.app.state.stats
    before = stats.streams_cancelled
    slow = ServerThread(create_mock_app(MockConfig(latency_ms=1, tokens_per_s=50, max_output_tokens=400)))
    with slow, _Gw(slow, tmp_path) as (gw, url):
        body = {"model": "m", "max_tokens": 400, "stream": True, "messages": [{"role": "user", "content": "long answer"}]}
        with httpx.stream("POST", url + "/v1/messages", json=body, headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"}) as r:
            for _ in r.iter_bytes():
                break  # leave after the first bytes
        time.sleep(0.5)  # the settle runs after the response, off the request path
        usage = asyncio.run(gw.store.usage(f"acct:{ACCOUNT}"))
        assert usage["reserved"] == 0 and 0 < usage["used"] < 400 + 200
        assert slow.app.state.stats.streams_cancelled >= 1
    assert stats.streams_cancelled == before


def test_metrics_and_health(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path) as (_, url):
        openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}])  # fmt: skip
        assert httpx.get(url + "/healthz").json() == {"ok": True, "state_store": "up"}
        text = httpx.get(url + "/metrics").text
        assert 'dg_requests_total{api="openai",status="200"} 1.0' in text and "dg_upstream_latency_seconds_bucket" in text


def test_metrics_count_the_live_rescorings(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path, live=True, rescore_s=3600) as (gw, url):
        assert gw.live is not None
        assert "dg_live_rescores 0.0" in httpx.get(url + "/metrics").text
        openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "x"}])  # fmt: skip
        deadline = time.monotonic() + 10
        while gw.live.rescore() == 0.0 and time.monotonic() < deadline:  # the row reaches the queue after the reply
            time.sleep(0.05)
        assert "dg_live_rescores 1.0" in httpx.get(url + "/metrics").text


def test_the_admin_api_creates_accounts_and_keys_kept_hashed(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path, admin_token="s3cret") as (gw, url):
        assert httpx.post(url + "/admin/accounts", json={"account_id": "acct_x"}).status_code == 401
        auth = {"authorization": "Bearer s3cret"}
        assert httpx.post(url + "/admin/accounts", json={"plan": "pro"}, headers=auth).status_code == 400
        r = httpx.post(url + "/admin/accounts", json={"account_id": "acct_x", "plan": "pro", "verified": True}, headers=auth)
        assert r.status_code == 201
        assert httpx.post(url + "/admin/accounts/acct_nobody/keys", headers=auth).status_code == 404
        key = httpx.post(url + "/admin/accounts/acct_x/keys", headers=auth).json()["key"]
        assert key not in gw.directory.keys and gw.directory.account_for_key(key) == "acct_x"  # stored as a hash
        out = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0).messages.create(
            model="m", max_tokens=8, messages=[{"role": "user", "content": "hi"}])  # fmt: skip
        assert out.usage.output_tokens > 0


def test_a_trusted_identity_header_names_the_account(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path, "identity: {header: X-Account-Id}\n", keys={}) as (gw, url):
        body = {"model": "m", "messages": [{"role": "user", "content": "x"}]}
        assert httpx.post(url + "/v1/chat/completions", json=body).status_code == 401
        r = httpx.post(url + "/v1/chat/completions", json=body, headers={"x-account-id": ACCOUNT})
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 0
        for _ in range(100):  # settling runs after the response, off the request path
            if asyncio.run(gw.store.usage("acct:" + ACCOUNT))["used"] > 0:
                break
            time.sleep(0.02)
        assert asyncio.run(gw.store.usage("acct:" + ACCOUNT))["used"] > 0


def test_two_replicas_on_one_redis_share_one_quota_and_never_overshoot(mock: ServerThread, tmp_path: Path, redis_server: Any) -> None:
    accounts = [{"account_id": "acct_new", "created_at": dt.datetime.now(dt.UTC).isoformat(), "plan": "free"}]
    extra = (
        "release: {stages: [{age_days: 0, share: 0.05}, {age_days: 14, share: 1.0}], trust: {verified: 0.0, paid: 0.0, clean_days: {days: 30, share: 0.0}}, cluster: true}\n"
        f"state: {{store: redis, url: '{redis_server.url}', on_store_error: closed}}\n"
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with _Gw(mock, tmp_path / "a", extra, accounts=accounts, keys={"k-new": "acct_new"}) as (_, url_a), \
            _Gw(mock, tmp_path / "b", extra, accounts=accounts, keys={"k-new": "acct_new"}) as (_, url_b):  # fmt: skip
        clients = [openai.OpenAI(base_url=u + "/v1", api_key="k-new", max_retries=0) for u in (url_a, url_b)]
        served = 0
        for i in range(200):  # bounded; alternating replicas
            try:
                clients[i % 2].chat.completions.create(model="m", messages=[{"role": "user", "content": f"q {i} " * 20}], max_tokens=200)
                served += 1
            except openai.RateLimitError as e:
                assert e.body is not None and "daily_tokens" in json.dumps(e.body)
                break
        time.sleep(0.3)  # the last settle runs after its response

        async def read() -> dict[str, int]:
            reader = make_store("redis", redis_server.url, "closed")  # the replicas' clients live on their own loops
            try:
                return await reader.usage("acct:acct_new")
            finally:
                await reader.close()

        usage = asyncio.run(read())
        assert served > 5 and 0 < usage["used"] <= 10_000 and usage["reserved"] == 0


def test_a_verdict_reached_by_one_replica_reaches_the_others_within_a_second(mock: ServerThread, tmp_path: Path, redis_server: Any) -> None:
    from distillguard.gateway.live import AccountVerdict

    extra = f"state: {{store: redis, url: '{redis_server.url}', on_store_error: closed}}\n"
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with _Gw(mock, tmp_path / "a", extra, live=True, rescore_s=3600) as (gw_a, _), \
            _Gw(mock, tmp_path / "b", extra, live=True, rescore_s=3600) as (gw_b, url_b):  # fmt: skip
        assert gw_a.bus is not None and gw_b.bus is not None and gw_b.live is not None and gw_a.live is not None
        client = openai.OpenAI(base_url=url_b + "/v1", api_key=KEY, max_retries=0)
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "before"}])
        time.sleep(0.5)  # both subscribers are listening
        gw_a.live.live = {ACCOUNT: AccountVerdict("block", 0.97, True, "C007", "live")}
        sent = time.monotonic()
        assert gw_a.bus.publish(gw_a.live.live) == 1
        while gw_b.live.verdict(ACCOUNT) is None and time.monotonic() - sent < 5:
            time.sleep(0.01)
        assert time.monotonic() - sent < 1.0
        with pytest.raises(openai.PermissionDeniedError) as e:
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "after"}])
        assert "campaign_block" in str(e.value)
        # cleared on the sender: cleared everywhere
        gw_a.live.live = {}
        gw_a.bus.publish(gw_a.live.live)
        deadline = time.monotonic() + 5
        while gw_b.live.verdict(ACCOUNT) is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gw_b.live.verdict(ACCOUNT) is None


def test_a_request_no_budget_could_ever_hold_is_refused_up_front(mock: ServerThread, tmp_path: Path) -> None:
    accounts = [{"account_id": "acct_new", "created_at": dt.datetime.now(dt.UTC).isoformat(), "plan": "free"}]
    extra = "release: {stages: [{age_days: 0, share: 0.005}, {age_days: 14, share: 1.0}], trust: {verified: 0.0, paid: 0.0, clean_days: {days: 30, share: 0.0}}, cluster: true}\n"
    with _Gw(mock, tmp_path, extra, accounts=accounts, keys={"k-new": "acct_new"}) as (_, url):  # daily budget 1,000
        client = anthropic.Anthropic(base_url=url, api_key="k-new", max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as e:
            client.messages.create(model="m", max_tokens=200, messages=[{"role": "user", "content": "x " * 600}])
        assert "request_exceeds_limit" in str(e.value)
        out = client.messages.create(model="m", max_tokens=20, messages=[{"role": "user", "content": "short"}])
        assert out.usage.output_tokens > 0


@pytest.mark.parametrize("mode", ["closed", "open"])
def test_an_unreachable_store_gets_the_configured_behaviour_and_never_a_5xx(mock: ServerThread, tmp_path: Path, mode: str) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    extra = f"state: {{store: redis, url: 'redis://127.0.0.1:{dead}/0', on_store_error: {mode}}}\n"
    with _Gw(mock, tmp_path, extra) as (gw, url):
        r = httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                       json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})  # fmt: skip
        if mode == "closed":
            assert r.status_code == 429 and r.json()["error"]["code"] == "state_store_down" and r.headers["retry-after"] == "1"
        else:
            assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]
        assert gw.store.errors >= 1
        assert "dg_state_store_errors 1.0" in httpx.get(url + "/metrics").text


def test_an_upstream_that_does_not_answer_in_time_gets_a_504_in_the_apis_shape(tmp_path: Path) -> None:
    slow = ServerThread(create_mock_app(MockConfig(latency_ms=100, tokens_per_s=20_000)))
    with slow, _Gw(slow, tmp_path, timeout_s=0.3) as (gw, url):
        r = httpx.post(url + "/v1/messages", headers={"x-api-key": KEY, "anthropic-version": "2023-06-01", "x-mock-fault": "slow"},
                       json={"model": "m", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})  # fmt: skip
        assert r.status_code == 504 and r.json()["type"] == "error" and "upstream_timeout" in r.json()["error"]["message"]
        assert asyncio.run(gw.store.usage(f"acct:{ACCOUNT}"))["reserved"] == 0


def test_a_client_gone_before_its_body_arrived_is_no_server_error(mock: ServerThread, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with _Gw(mock, tmp_path) as (_, url), caplog.at_level(logging.ERROR):
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                      + f"authorization: Bearer {KEY}\r\ncontent-length: 1000\r\n\r\n".encode() + b'{"model": "m"')  # fmt: skip
        deadline = time.monotonic() + 5
        while "499" not in httpx.get(url + "/metrics").text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert 'dg_requests_total{api="openai",status="499"} 1.0' in httpx.get(url + "/metrics").text
        r = httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {KEY}"},
                       json={"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8})  # fmt: skip
        assert r.status_code == 200
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_the_edges_asn_header_reaches_the_log(mock: ServerThread, tmp_path: Path) -> None:
    with _Gw(mock, tmp_path, "identity: {asn_header: x-client-asn}\n") as (_, url):
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        for asn in ("AS16509", "13335", "not-a-number"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], max_tokens=4,
                                           extra_headers={"x-client-asn": asn})  # fmt: skip
    rows = pl.concat([pl.from_arrow(b) for b in LogReader(tmp_path / "sink").exchange_batches()])  # type: ignore[misc]
    assert isinstance(rows, pl.DataFrame)
    assert sorted(rows["asn"].to_list(), key=str) == sorted([16509, 13335, None], key=str)


def test_a_template_on_the_blocklist_is_refused_at_the_door(mock: ServerThread, tmp_path: Path) -> None:
    """Signatures as the hunt's evidence prints them (opening words, or a ``#`` id): the same
    template with other fill-ins is refused (``blocklist_template``); other prompts pass."""
    from distillguard.signals.template_repetition import prompt_signatures

    wrapper = "Solve the following problem step by step and explain each step carefully: {}"
    sig = sorted(s for s in prompt_signatures([wrapper.format("what is 3 + 4?")])[0] if " " not in s)[0]
    extra = f'blocklists:\n  templates: ["solve the following problem step by", "#{sig.upper()}"]\n'
    auth = {"authorization": f"Bearer {KEY}"}
    with _Gw(mock, tmp_path, extra) as (gw, url):
        assert gw.policy.reads_prompt
        for text, status in ((wrapper.format("how many legs do 9 spiders have?"), 403), (wrapper.format("what is 3 + 4?"), 403),
                             ("Tell me a story about a lighthouse keeper and a cat.", 200)):  # fmt: skip
            body = {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 8}
            r = httpx.post(url + "/v1/chat/completions", json=body, headers=auth)
            assert r.status_code == status, r.text
            assert status == 200 or "blocklist_template" in r.text
    with _Gw(mock, tmp_path, f'blocklists:\n  templates: ["#{sig}"]\n') as (gw, url):  # one id alone
        body = {"model": "m", "messages": [{"role": "user", "content": wrapper.format("what is 3 + 4?")}], "max_tokens": 8}
        assert httpx.post(url + "/v1/chat/completions", json=body, headers=auth).status_code == 403
