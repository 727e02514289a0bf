"""Keys and accounts made through one gateway's admin API serve on every gateway sharing its Redis
(``state.store: redis``): two in-process gateways on one real Redis, and ``serve --workers 2``."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from distillguard.gateway.app import Gateway, create_app
from distillguard.gateway.directory import Account, Directory, generate_key, hash_key
from distillguard.gateway.directory_sync import DirectorySync
from distillguard.gateway.mock_upstream import MockConfig, create_mock_app
from distillguard.gateway.server import BackgroundServer, GatewaySettings, build_gateway
from tests.gateway.redis_server import RedisServer, free_port

ADMIN = {"authorization": "Bearer s3cret"}
OLD = (dt.datetime.now(dt.UTC) - dt.timedelta(days=60)).replace(microsecond=0)
CHANNEL = "dg:directory"


@pytest.fixture(scope="module")
def mock() -> Iterator[BackgroundServer]:
    with BackgroundServer(create_mock_app(MockConfig(latency_ms=1, tokens_per_s=50_000, max_output_tokens=32))) as s:
        yield s


@pytest.fixture
def clean_redis(redis_server: RedisServer) -> RedisServer:
    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server


def _policy(tmp_path: Path, url: str, on_error: str = "closed") -> str:
    p = tmp_path / "policy.yaml"
    p.write_text(
        "plans:\n"
        "  free: {daily_tokens: 2000000, requests_per_minute: 100000, tokens_per_minute: 10000000, max_tokens: 256}\n"
        "  pro: {daily_tokens: 5000000, requests_per_minute: 100000, tokens_per_minute: 10000000, max_tokens: 1024}\n"
        "  enterprise: {daily_tokens: 50000000, requests_per_minute: 6000, tokens_per_minute: 2000000, max_tokens: 32768}\n"
        f"state: {{store: redis, url: '{url}', on_store_error: {on_error}}}\n"
    )
    return str(p)


class _Gw:
    """One gateway (its own process-like state: directory, sync, quota client) served in a thread."""

    def __init__(self, mock: BackgroundServer, policy: str, keys: dict[str, str] | None = None) -> None:
        settings = GatewaySettings(upstream=mock.url, policy=policy, keys=keys or {}, live=False, admin_token="s3cret")
        self.gateway: Gateway = build_gateway(settings)
        self.server = BackgroundServer(create_app(self.gateway))

    def __enter__(self) -> tuple[Gateway, str]:
        self.server.__enter__()
        return self.gateway, self.server.url

    def __exit__(self, *exc: object) -> None:
        self.server.__exit__(None, None, None)


def _chat(url: str, key: str, max_tokens: int = 16) -> httpx.Response:
    body = {"model": "m", "max_tokens": max_tokens, "messages": [{"role": "user", "content": "hi"}]}
    return httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"})


def _until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _account_and_key(url: str, account: dict[str, Any]) -> str:
    assert httpx.post(url + "/admin/accounts", json=account, headers=ADMIN).status_code == 201
    r = httpx.post(url + f"/admin/accounts/{account['account_id']}/keys", headers=ADMIN)
    assert r.status_code == 201 and r.json()["key_sha256"] == hash_key(r.json()["key"])
    return str(r.json()["key"])


def test_a_key_made_on_one_gateway_serves_on_another_at_once_and_after_its_restart(
    mock: BackgroundServer, clean_redis: RedisServer, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, clean_redis.url)
    with _Gw(mock, policy) as (_, url_a), _Gw(mock, policy) as (gw_b, url_b):
        key = _account_and_key(url_a, {"account_id": "acct_a", "plan": "pro", "created_at": OLD.isoformat()})
        assert _chat(url_b, key).status_code == 200  # no wait: from B's copy, or its one lookup
        assert gw_b.directory.account_for_key(key) == "acct_a"
        assert _chat(url_b, "dg-" + "x" * 43).status_code == 401
    with _Gw(mock, policy) as (gw_b2, url_b2):  # B again, new process state: loaded from Redis at start
        assert gw_b2.directory.account_for_key(key) == "acct_a"
        assert gw_b2.directory.accounts["acct_a"] == Account("acct_a", created_at=OLD, plan="pro")
        assert _chat(url_b2, key).status_code == 200
        assert gw_b2.directory_sync is not None and gw_b2.directory_sync.lookups == 0


def test_an_account_upserted_on_one_gateway_gets_its_plan_on_another(
    mock: BackgroundServer, clean_redis: RedisServer, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, clean_redis.url)
    with _Gw(mock, policy) as (_, url_a), _Gw(mock, policy) as (gw_b, url_b):
        key = _account_and_key(url_a, {"account_id": "acct_p", "plan": "pro", "created_at": OLD.isoformat()})
        assert _chat(url_b, key, max_tokens=800).status_code == 200  # pro: up to 1024
        # A downgrade without created_at keeps the stored sign-up time, on every replica.
        assert httpx.post(url_a + "/admin/accounts", json={"account_id": "acct_p", "plan": "free"}, headers=ADMIN).status_code == 201
        assert _until(lambda: gw_b.directory.accounts["acct_p"].plan == "free")
        assert gw_b.directory.accounts["acct_p"].created_at == OLD
        refused = _chat(url_b, key, max_tokens=800)  # free: up to 256
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "max_tokens_above_plan"


def test_only_hashes_of_keys_reach_redis_and_its_channel(
    mock: BackgroundServer, clean_redis: RedisServer, tmp_path: Path
) -> None:
    client: Any = redis.Redis.from_url(clean_redis.url, decode_responses=True)
    listener = client.pubsub(ignore_subscribe_messages=True)
    listener.subscribe(CHANNEL)
    with _Gw(mock, _policy(tmp_path, clean_redis.url)) as (_, url):
        key = _account_and_key(url, {"account_id": "acct_h", "plan": "pro"})
        assert _chat(url, key).status_code == 200
    stored: list[str] = []
    for name in client.scan_iter("*"):
        kind = client.type(name)
        stored.append(name)
        if kind == "hash":
            stored += [part for item in client.hgetall(name).items() for part in item]
        elif kind == "string":
            stored.append(client.get(name) or "")
        else:
            stored.append(repr(client.dump(name)))
    published: list[str] = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # None for the subscribe confirmation too: read to the deadline
        msg = listener.get_message(timeout=0.2)
        if msg is not None:
            published.append(msg["data"])
        elif len(published) >= 2:
            break
    listener.close()
    assert client.hget("dg:dir:keys", hash_key(key)) == "acct_h"
    assert len(published) == 2  # the account, then the key
    assert not [s for s in stored + published if key in s or key[3:] in s]


def test_a_revoked_key_is_refused_everywhere_even_one_from_settings(
    mock: BackgroundServer, clean_redis: RedisServer, tmp_path: Path
) -> None:
    policy = _policy(tmp_path, clean_redis.url)
    static = generate_key()  # given to gateway B in its settings (never in Redis)
    with _Gw(mock, policy) as (gw_a, url_a), _Gw(mock, policy, keys={static: "acct_s"}) as (_, url_b):
        key = _account_and_key(url_a, {"account_id": "acct_r", "plan": "pro"})
        assert _chat(url_b, key).status_code == 200 and _chat(url_b, static).status_code == 200
        assert httpx.delete(url_b + "/admin/keys/nothex", headers=ADMIN).status_code == 400
        assert httpx.delete(url_b + f"/admin/keys/{'0' * 64}", headers=ADMIN).status_code == 404
        for k in (key, static):
            assert httpx.delete(url_b + f"/admin/keys/{hash_key(k)}", headers=ADMIN).json() == {"key_sha256": hash_key(k), "revoked": True}
        assert _chat(url_b, key).status_code == 401 and _chat(url_b, static).status_code == 401  # B answered after applying
        assert _until(lambda: gw_a.directory.account_for_key(key) is None)
        assert _chat(url_a, key).status_code == 401
    # A replica that was down meanwhile: its settings still name the key, the tombstone wins.
    with _Gw(mock, policy, keys={static: "acct_s"}) as (_, url_c):
        assert _chat(url_c, static).status_code == 401 and _chat(url_c, key).status_code == 401


def test_a_key_unknown_locally_is_asked_of_redis_once_then_cached(clean_redis: RedisServer) -> None:
    async def go() -> None:
        writer = DirectorySync(clean_redis.url, Directory())
        reader = DirectorySync(clean_redis.url, Directory())  # never started: hears no messages
        await writer.start()
        await writer.upsert(Account("acct_l", plan="pro"))
        key = await writer.new_key("acct_l")
        assert key is not None and await writer.new_key("acct_nobody") is None
        assert await reader.account_for_key(key) == "acct_l" and reader.lookups == 1
        assert reader.directory.accounts["acct_l"].plan == "pro"  # the account came with it
        assert await reader.account_for_key(key) == "acct_l" and reader.lookups == 1  # cached
        made_up = "dg-" + "y" * 43
        assert await reader.account_for_key(made_up) is None and reader.lookups == 2
        assert await reader.account_for_key(made_up) is None and reader.lookups == 2  # the miss is remembered
        assert await reader.account_for_key("sk-not-ours") is None and reader.lookups == 2  # not a gateway key: not asked
        await writer.close()
        await reader.close()

    asyncio.run(go())


def test_with_redis_down_known_keys_serve_and_admin_writes_are_refused_with_429(mock: BackgroundServer, tmp_path: Path) -> None:
    with RedisServer() as own:
        policy = _policy(tmp_path, own.url, on_error="open")  # quotas open: only the directory is under test
        with _Gw(mock, policy) as (gw, url):
            key = _account_and_key(url, {"account_id": "acct_d", "plan": "pro"})
            own.stop()
            assert _chat(url, key).status_code == 200  # from memory
            assert _chat(url, "dg-" + "z" * 43).status_code == 401  # cannot be checked: unknown
            r = httpx.post(url + "/admin/accounts", json={"account_id": "acct_e"}, headers=ADMIN)
            assert r.status_code == 429 and r.json()["code"] == "state_store_down" and r.headers["retry-after"] == "1"
            assert httpx.post(url + "/admin/accounts/acct_d/keys", headers=ADMIN).status_code == 429
            metrics = httpx.get(url + "/metrics").text
            errors = [line for line in metrics.splitlines() if line.startswith("dg_directory_sync_errors ")]
            assert errors and float(errors[0].split()[1]) >= 2
            own.start()  # back, empty: keys known here stay, writes work again
            assert gw.directory_sync is not None
            assert _until(lambda: gw.directory_sync is not None and gw.directory_sync.loads >= 2)
            assert _chat(url, key).status_code == 200
            assert httpx.post(url + "/admin/accounts", json={"account_id": "acct_e"}, headers=ADMIN).status_code == 201


def test_serve_with_two_workers_serves_an_admin_made_key_on_both(tmp_path: Path, clean_redis: RedisServer) -> None:
    policy = _policy(tmp_path, clean_redis.url)
    port = free_port()
    with BackgroundServer(create_mock_app(MockConfig(latency_ms=1, tokens_per_s=50_000))) as upstream:
        cli = str(Path(sys.executable).parent / "distillguard")  # the console script beside this Python
        cmd = [cli, "serve", "--upstream", upstream.url, "--policy", policy, "--port", str(port), "--workers", "2", "--rescore", "3600"]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "DISTILLGUARD_ADMIN_TOKEN": "s3cret"}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            url = f"http://127.0.0.1:{port}"

            def up() -> bool:
                try:
                    return httpx.get(url + "/healthz", timeout=1).status_code == 200
                except httpx.HTTPError:
                    return False

            assert _until(up, 60)
            with httpx.Client(base_url=url, headers={"connection": "close"}) as client:  # new connections: both workers
                assert client.post("/admin/accounts", json={"account_id": "acct_w", "plan": "pro"}, headers=ADMIN).status_code == 201
                key = client.post("/admin/accounts/acct_w/keys", headers=ADMIN).json()["key"]
                body = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
                # Each worker's /metrics counts its own: two distinct counts, none 0, that add up to
                # the requests sent say both served the key. Which worker takes a new connection is
                # the kernel's choice (a busy machine can hand a burst to one), so send until both did.
                codes: list[int] = []
                served: set[int] = set()
                for _ in range(200):
                    codes.append(client.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}).status_code)
                    served = {_served(client.get("/metrics").text) for _ in range(10)}
                    if len(served) == 2 and sum(served) == len(codes) and 0 not in served:
                        break
            assert codes == [200] * len(codes)
            assert len(served) == 2 and sum(served) == len(codes) and 0 not in served, (served, len(codes))
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
        assert "Traceback" not in out, out


def _served(metrics: str) -> int:
    """Chat requests this worker answered with 200 (its own /metrics)."""
    for line in metrics.splitlines():
        if line.startswith('dg_requests_total{api="openai",status="200"}'):
            return int(float(line.split()[-1]))
    return 0
