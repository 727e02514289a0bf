"""The gateway's ASGI app: OpenAI- and Anthropic-compatible, in front of any model served over
either API, enforcing the policy at the door.

One request, in order: parse and validate (each API's own error shape), identify the account
(a gateway key or a trusted header), decide (lists and overrides, then the hunt's verdict
through the core :class:`~distillguard.policy.Policy`), reserve an upper bound of what the
request can cost against every budget that applies (the account's, and its cluster's when the
hunt linked it), forward, and settle with the real usage after the reply, the stream's end or
the client's disconnect. The exchange goes to the sink and the live scorer after the reply,
off the request path. A streamed body is passed through as bytes (no JSON re-encoding); only
an OpenAI usage chunk the client did not ask for is cut out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from distillguard.gateway.api import (
    ApiError,
    ChatRequest,
    Flavor,
    StreamTap,
    Usage,
    error_response,
    parse_chat,
    read_json,
    upstream_body,
    usage_of,
)
from distillguard.gateway.bus import DecisionBus
from distillguard.gateway.clock import Clock, ReplayClock, WallClock, as_datetime
from distillguard.gateway.directory import Account, Directory, hash_key
from distillguard.gateway.directory_sync import DirectoryStoreDown, DirectorySync
from distillguard.gateway.live import LiveVerdicts
from distillguard.gateway.logs import FIELDS
from distillguard.gateway.policy_file import AccountFacts, GatewayPolicy, RequestFacts, Verdict
from distillguard.gateway.quota import Bucket, Grant, QuotaStore, Refusal
from distillguard.gateway.sink import ExchangeSink
from distillguard.gateway.upstream import Upstream, UpstreamError, UpstreamReply, make_upstream
from distillguard.privacy import ip_prefix
from distillguard.review import ReviewFollower

__all__ = ["Gateway", "create_app"]

log = logging.getLogger("distillguard.gateway")

# Request headers not passed to the upstream: hop-by-hop ones, the body's own (recomputed), and
# the client's credentials (the gateway's own replace them). Everything else goes on.
_KEEP_BACK = {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer",
              "proxy-authorization", "authorization", "x-api-key", "cookie", "accept-encoding"}  # fmt: skip
# Response headers not passed back (hop-by-hop, or recomputed by the server).
_DROP = {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding", "date", "server"}


class Metrics:
    """Prometheus series of one gateway process (its own registry: tests run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("dg_requests", "Requests by API and status", ["api", "status"], registry=r)
        self.decisions = Counter("dg_decisions", "Refusals and throttles by action and reason", ["action", "reason"], registry=r)
        self.tokens = Counter("dg_quota_tokens", "Tokens reserved and settled", ["kind"], registry=r)
        # labelled once: .labels() takes a lock and builds a key, on every request's path
        self.tokens_reserved = self.tokens.labels("reserved")
        self.tokens_settled = self.tokens.labels("settled")
        self.upstream = Histogram(
            "dg_upstream_latency_seconds", "Upstream time to response headers", ["api"], registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )  # fmt: skip
        self.store_errors = Gauge("dg_state_store_errors", "Quota store errors seen", registry=r)
        self.sink_dropped = Gauge("dg_sink_dropped_rows", "Exchange rows dropped by a full sink", registry=r)
        self.rescore = Gauge("dg_live_rescore_seconds", "Last live re-scoring time", registry=r)
        self.rescores = Gauge("dg_live_rescores", "Live re-scorings finished since start", registry=r)
        self.live_flagged = Gauge("dg_live_accounts_acted_on", "Accounts the live hunt acts on", registry=r)
        self.bus_errors = Gauge("dg_decision_bus_errors", "Decision fan-out errors (Redis pub/sub)", registry=r)
        self.remote = Gauge("dg_remote_verdicts", "Verdicts received from other replicas", registry=r)
        self.directory_errors = Gauge("dg_directory_sync_errors", "Key and account sync errors (Redis)", registry=r)
        self.directory_lookups = Gauge("dg_directory_key_lookups", "Locally unknown keys looked up in Redis", registry=r)


@dataclass
class Gateway:
    """Everything one gateway process holds."""

    upstream: str
    policy: GatewayPolicy
    store: QuotaStore
    directory: Directory = field(default_factory=Directory)
    sink: ExchangeSink | None = None
    live: LiveVerdicts | None = None
    admin_token: str | None = None
    upstream_key: str | None = None
    timeout_s: float = 600.0
    bus: DecisionBus | None = None
    directory_sync: DirectorySync | None = None  # keys and accounts shared through Redis
    metrics: Metrics = field(default_factory=Metrics)
    http_client: str = "aiohttp"  # the library the upstream is called with (gateway/upstream.py)
    client: Upstream | None = None
    reviews: ReviewFollower | None = None  # analysts' decisions (distillguard ui), above the hunt's
    clock: Clock = field(default_factory=WallClock)  # a ReplayClock only to replay a log (benchmarks)
    _pending: set[asyncio.Task[None]] = field(default_factory=set)
    _signature_cache: dict[str, frozenset[str]] = field(default_factory=dict)

    def _signatures(self, prompt: str) -> frozenset[str]:
        """The prompt's template signatures (hunt's fingerprints), cached for repeated prompts
        (scripts resend them); the cache is bounded and cleared when full."""
        got = self._signature_cache.get(prompt)
        if got is None:
            from distillguard.signals.template_repetition import prompt_signatures

            if len(self._signature_cache) >= 65536:
                self._signature_cache.clear()
            got = self._signature_cache[prompt] = prompt_signatures([prompt])[0]
        return got

    async def startup(self) -> None:
        if isinstance(self.clock, ReplayClock):  # simulated time starts with serving, not with building
            self.clock.restart()
        self.client = make_upstream(self.http_client, self.upstream, self.timeout_s)
        await self.client.start()
        if self.live is not None:
            self.live.start()
        if self.bus is not None:
            self.bus.start()
        if self.directory_sync is not None:
            await self.directory_sync.start()

    async def shutdown(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)
        if self.client is not None:
            await self.client.close()
        if self.live is not None:
            self.live.close()
        if self.bus is not None:
            self.bus.close()
        if self.directory_sync is not None:
            await self.directory_sync.close()
        if self.sink is not None:
            self.sink.close()
        await self.store.close()

    # -- identity and decision -------------------------------------------------------------
    async def identify(self, request: Request) -> str | None:
        header = self.policy.identity_header
        if header:
            return request.headers.get(header) or None
        key = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if not key and auth.lower().startswith("bearer "):
            key = auth[7:].strip()
        if not key:
            return None
        if self.directory_sync is not None:  # memory first; a key made elsewhere a moment ago: Redis once
            return await self.directory_sync.account_for_key(key)
        return self.directory.account_for_key(key)

    def decide(self, account: Account, facts: AccountFacts, request: Request, prompt: str | None = None) -> tuple[Verdict, str | None]:
        """The action for this request and the cluster whose budget it shares (if any)."""
        ip = request.client.host if request.client else None
        templates: frozenset[str] = frozenset()
        if self.policy.reads_prompt and prompt:
            templates = self._signatures(prompt) if self.policy.blocklists.templates else frozenset()
        else:
            prompt = None
        req = RequestFacts(ip=ip, device_fp=request.headers.get("x-device-fingerprint"), email_domain=account.email_domain,
                           templates=templates, prompt=prompt)  # fmt: skip
        hunt = self.live.verdict(account.account_id) if self.live is not None else None
        cluster = hunt.campaign if hunt is not None and hunt.flagged else None
        # An analyst's block refuses whatever else holds; their allow yields only to the policy
        # file's own overrides and lists (distillguard/review.py).
        analyst = self.reviews.get(account.account_id) if self.reviews is not None else None
        if analyst is not None and analyst.action == "block":
            return Verdict("block", "analyst_block", self.policy.actions.block_appeal_url), cluster
        at_door = self.policy.door(facts, req)
        if at_door is not None:
            return at_door, cluster
        if analyst is not None and analyst.action == "allow":
            return Verdict("allow", "analyst_allow"), None
        if hunt is None:
            return Verdict("allow", "allowed"), None
        outlier = hunt.decision == "throttle" and not hunt.flagged
        return self.policy.act(hunt.flagged, hunt.risk, outlier, facts), cluster

    # -- the chat endpoints ----------------------------------------------------------------
    async def chat(self, request: Request, flavor: Flavor, path: str) -> Response:
        t0 = time.perf_counter()
        now_s = self.clock.now()
        started = as_datetime(now_s)
        try:
            body = await read_json(request)
            req = parse_chat(body, flavor)
        except ApiError as e:
            return self._refuse(flavor, e.status, e.code, e.message, param=e.param)
        account_id = await self.identify(request)
        if account_id is None:
            return self._refuse(flavor, 401, "invalid_api_key", "unknown or missing API key")
        account = self.directory.account(account_id, started)
        if self.live is not None:
            self.live.account_seen(account)
        facts = _facts(account)
        verdict, cluster = self.decide(account, facts, request, req.prompt)
        if verdict.action in ("block", "verify"):
            self.metrics.decisions.labels(verdict.action, verdict.reason).inc()
            ref = uuid.uuid4().hex[:12]
            what = "blocked" if verdict.action == "block" else "needs verification before it can be served"
            appeal = f"; appeal at {verdict.appeal_url} quoting reference {ref}" if verdict.appeal_url else f"; reference {ref}"
            return self._refuse(flavor, 403, verdict.reason, f"this account {what} ({verdict.reason}){appeal}", account=account_id, ref=ref)
        if verdict.action == "throttle":
            self.metrics.decisions.labels("throttle", verdict.reason).inc()
        limits = self.policy.limits(facts, started, verdict.action)
        if req.max_tokens is not None and req.max_tokens > limits.max_tokens:
            return self._refuse(
                flavor, 400, "max_tokens_above_plan",
                f"max_tokens: {req.max_tokens} is above this account's limit of {limits.max_tokens}", param="max_tokens", account=account_id,
            )  # fmt: skip
        max_tokens = req.max_tokens or limits.max_tokens
        buckets = [Bucket(f"acct:{account_id}", limits.daily_tokens, limits.tokens_per_minute, limits.requests_per_minute)]
        if cluster is not None and self.policy.release.cluster:
            buckets.append(Bucket(f"cluster:{cluster}", limits.daily_tokens, limits.tokens_per_minute, limits.requests_per_minute))
        cost = req.input_token_bound + max_tokens * req.n_choices  # max_tokens bounds each choice
        whole = min(limits.daily_tokens, limits.tokens_per_minute)
        if cost > whole:  # no wait would let it through: say so now, not with a retry-after
            return self._refuse(
                flavor, 400, "request_exceeds_limit",
                f"this request may cost up to {cost:,} tokens (input bound plus max_tokens), more than this "
                f"account's limit of {whole:,}; send less input or a smaller max_tokens", param="max_tokens", account=account_id,
            )  # fmt: skip
        grant = await self.store.reserve(buckets, cost, now=now_s)
        if isinstance(grant, Refusal):
            self.metrics.decisions.labels("quota", grant.reason).inc()
            # A store that is down is refused with 429 too (never a 5xx of our own): clients'
            # retry logic backs off on it and the reason code says why.
            retry = f"{max(1, round(grant.retry_after_s))}"
            return self._refuse(
                flavor, 429, grant.reason, f"{grant.reason.replace('_', ' ')} limit reached for {grant.bucket}", retry=retry, account=account_id
            )  # fmt: skip
        self.metrics.tokens_reserved.inc(grant.tokens)
        ctx = _Exchange(self, flavor, path, req, account, grant, max_tokens, started, t0, request)
        try:
            return await ctx.forward(upstream_body(body, req, max_tokens))
        except Exception:  # never our own 5xx without settling: the grant is settled in full
            log.exception("gateway error on %s", path)
            await self.store.settle(grant, grant.tokens)
            return self._refuse(flavor, 502, "gateway_upstream_error", "the upstream call failed")

    def _refuse(
        self, flavor: Flavor, status: int, code: str, message: str, *, param: str | None = None, retry: str | None = None,
        account: str | None = None, ref: str | None = None,
    ) -> Response:  # fmt: skip
        self.metrics.requests.labels(flavor, str(status)).inc()
        if log.isEnabledFor(logging.INFO):
            fields = {"event": "refused", "api": flavor, "status": status, "code": code, "account": account, "ref": ref}
            log.info("refused %s %s: %s", status, code, message, extra={FIELDS: fields})
        return error_response(flavor, status, code, message, param=param, headers={"retry-after": retry} if retry else None)

    def after(self, coro: Any) -> None:
        """Run bookkeeping after the response, off the request path (kept until done)."""
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)


@dataclass
class _Exchange:
    """One forwarded request: the upstream call, then settling, the sink and the live scorer."""

    gw: Gateway
    flavor: Flavor
    path: str
    req: ChatRequest
    account: Account
    grant: Grant
    max_tokens: int
    started: dt.datetime
    t0: float
    request: Request

    def headers(self) -> dict[str, str]:
        drop = _KEEP_BACK | {self.gw.policy.identity_header or ""}
        h = {k: v for k, v in self.request.headers.items() if k.lower() not in drop}
        h["content-type"] = "application/json"
        if self.gw.upstream_key:
            if self.flavor == "anthropic":
                h["x-api-key"] = self.gw.upstream_key
            else:
                h["authorization"] = f"Bearer {self.gw.upstream_key}"
        return h

    async def forward(self, body: dict[str, Any]) -> Response:
        gw = self.gw
        assert gw.client is not None
        try:
            resp = await gw.client.post(self.path, orjson.dumps(body), self.headers())
        except UpstreamError as e:
            await self.finish(Usage(), 504 if e.kind == "timeout" else 502, full=True)
            if e.kind == "timeout":
                return gw._refuse(self.flavor, 504, "upstream_timeout", "the model did not answer in time", account=self.account.account_id)
            code = "upstream_unreachable" if e.kind == "unreachable" else "upstream_reset"
            return gw._refuse(self.flavor, 502, code, f"the model could not be reached ({e.detail})", account=self.account.account_id)
        gw.metrics.upstream.labels(self.flavor).observe(time.perf_counter() - self.t0)
        out_headers = {k: v for k, v in resp.headers if k.lower() not in _DROP}
        if not self.req.stream or resp.status != 200:
            try:
                content = await resp.read()
            except UpstreamError:
                await resp.close()
                await self.finish(Usage(), 502, full=True)
                return gw._refuse(
                    self.flavor, 502, "upstream_reset", "the model's connection broke before its answer", account=self.account.account_id
                )  # fmt: skip
            await resp.close()
            usage = Usage()
            if resp.status == 200:
                with contextlib.suppress(ValueError):
                    usage = usage_of(self.flavor, orjson.loads(content))
            gw.after(self.finish(usage, resp.status, full=resp.status == 200 and not (usage.complete and usage.usage_reported)))
            gw.metrics.requests.labels(self.flavor, str(resp.status)).inc()
            return Response(content, status_code=resp.status, headers=out_headers)
        tap = StreamTap(self.flavor, pass_usage_chunk=self.req.include_usage)
        gw.metrics.requests.labels(self.flavor, "200").inc()
        return StreamingResponse(self._relay(resp, tap), status_code=200, headers=out_headers)

    async def _relay(self, resp: UpstreamReply, tap: StreamTap) -> AsyncIterator[bytes]:
        """Pass the upstream's bytes on; whatever ends the stream (its end, a reset, the client
        going away), close the upstream call and settle what was used."""
        try:
            async for chunk in resp.iter_raw():
                out = tap.feed(chunk)
                if out:
                    yield out
            rest = tap.flush()
            if rest:
                yield rest
        except UpstreamError:
            pass  # the upstream broke mid-stream: the client sees the stream end; settled below
        finally:
            self.gw.after(self._close_and_finish(resp, tap.usage))

    async def _close_and_finish(self, resp: UpstreamReply, usage: Usage) -> None:
        await resp.close()
        await self.finish(usage, 200, full=False)

    async def finish(self, usage: Usage, status: int, *, full: bool) -> None:
        """Settle (the whole grant when what was used is unknown), then sink and live scorer."""
        gw = self.gw
        if full:
            used = self.grant.tokens
        elif usage.complete and usage.usage_reported:
            used = usage.input_tokens + usage.output_tokens
        else:  # cut short: what was read so far, bounded above (a token is at least a byte, 4 per char)
            inp = usage.input_tokens or self.req.input_token_bound
            cap = self.max_tokens * self.req.n_choices
            used = inp + min(cap, max(usage.output_tokens, 4 * usage.text_chars + 1))
        used = min(used, self.grant.tokens)
        try:
            await gw.store.settle(self.grant, used)
        except Exception:
            log.exception("settle failed")
        gw.metrics.tokens_settled.inc(used)
        row = self.row(usage, status)
        if gw.sink is not None:
            gw.sink.put(row)
        if gw.live is not None:
            gw.live.observe(row)

    def row(self, usage: Usage, status: int) -> dict[str, Any]:
        """The exchange, per the spec."""
        ip = self.request.client.host if self.request.client else None
        return {
            "request_id": uuid.uuid4().hex,
            "ts": self.started,
            "account_id": self.account.account_id,
            "ip": ip,
            "ip_prefix": ip_prefix(ip) if ip else None,
            "asn": _asn(self.request.headers.get(self.gw.policy.asn_header)) if self.gw.policy.asn_header else None,
            "user_agent": self.request.headers.get("user-agent"),
            "device_fp": self.request.headers.get("x-device-fingerprint"),
            "endpoint": self.path,
            "model": self.req.model,
            "system": self.req.system,
            "prompt": self.req.prompt,
            "n_messages": self.req.n_messages,
            "has_tools": self.req.has_tools,
            "max_tokens": self.max_tokens,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "stop_reason": usage.stop_reason,
            "status": status,
            "latency_ms": int((time.perf_counter() - self.t0) * 1000),
        }


def _facts(a: Account) -> AccountFacts:
    return AccountFacts(account_id=a.account_id, plan=a.plan, created_at=a.created_at, verified=a.verified, paid=a.paid, org_id=a.org_id)


def _asn(value: str | None) -> int | None:
    if value is None:
        return None
    value = value.strip().upper().removeprefix("AS")
    return int(value) if value.isdigit() and int(value) < 2**32 else None


def create_app(gw: Gateway) -> Starlette:
    """The ASGI app around one :class:`Gateway`."""

    async def openai_chat(request: Request) -> Response:
        return await gw.chat(request, "openai", "/v1/chat/completions")

    async def anthropic_messages(request: Request) -> Response:
        return await gw.chat(request, "anthropic", "/v1/messages")

    async def models(request: Request) -> Response:
        flavor: Flavor = "anthropic" if "anthropic-version" in request.headers else "openai"
        if await gw.identify(request) is None:
            return gw._refuse(flavor, 401, "invalid_api_key", "unknown or missing API key")
        assert gw.client is not None
        try:
            status, content = await gw.client.get("/v1/models", {k: v for k, v in request.headers.items() if k.lower() not in _KEEP_BACK})
        except UpstreamError:
            return gw._refuse(flavor, 502, "upstream_unreachable", "the model could not be reached")
        return Response(content, status_code=status, media_type="application/json")

    async def healthz(request: Request) -> Response:
        store_ok = await gw.store.ping()
        return JSONResponse({"ok": True, "state_store": "up" if store_ok else "down"})

    async def metrics(request: Request) -> Response:
        m = gw.metrics
        m.store_errors.set(gw.store.errors)
        if gw.sink is not None:
            m.sink_dropped.set(gw.sink.dropped)
        if gw.live is not None:
            m.rescore.set(gw.live.rescore_seconds or 0.0)
            m.rescores.set(gw.live.rescores)
            m.live_flagged.set(len(gw.live.live))
            m.remote.set(len(gw.live.remote))
        if gw.bus is not None:
            m.bus_errors.set(gw.bus.errors)
        if gw.directory_sync is not None:
            m.directory_errors.set(gw.directory_sync.errors)
            m.directory_lookups.set(gw.directory_sync.lookups)
        return Response(generate_latest(m.registry), media_type="text/plain; version=0.0.4")

    def admin_ok(request: Request) -> bool:
        token = gw.admin_token
        return bool(token) and request.headers.get("authorization", "") == f"Bearer {token}"

    async def admin_accounts(request: Request) -> Response:
        if not admin_ok(request):
            return JSONResponse({"error": "admin token required"}, status_code=401)
        try:
            data = orjson.loads(await request.body())
            if not isinstance(data, Mapping) or not isinstance(data.get("account_id"), str):
                raise ValueError("account_id: expected a string")
            account = Account.from_row(data)
        except (ValueError, TypeError, KeyError) as e:
            return JSONResponse({"error": f"bad account: {e}"}, status_code=400)
        try:
            account = await gw.directory_sync.upsert(account) if gw.directory_sync else gw.directory.upsert(account)
        except DirectoryStoreDown as e:
            return store_down(e)
        return JSONResponse({"account_id": account.account_id, "plan": account.plan}, status_code=201)

    async def admin_keys(request: Request) -> Response:
        if not admin_ok(request):
            return JSONResponse({"error": "admin token required"}, status_code=401)
        account_id = request.path_params["account_id"]
        try:
            if gw.directory_sync is not None:
                key = await gw.directory_sync.new_key(account_id)
            else:
                key = gw.directory.new_key(account_id) if account_id in gw.directory.accounts else None
        except DirectoryStoreDown as e:
            return store_down(e)
        if key is None:
            return JSONResponse({"error": f"no account {account_id!r}"}, status_code=404)
        return JSONResponse({"account_id": account_id, "key": key, "key_sha256": hash_key(key)}, status_code=201)

    async def admin_revoke(request: Request) -> Response:
        if not admin_ok(request):
            return JSONResponse({"error": "admin token required"}, status_code=401)
        sha = request.path_params["key_sha256"].lower()
        if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
            return JSONResponse({"error": "key_sha256: expected the key's SHA-256 as 64 hex digits"}, status_code=400)
        try:
            found = await gw.directory_sync.revoke_key(sha) if gw.directory_sync else gw.directory.revoke_key(sha)
        except DirectoryStoreDown as e:
            return store_down(e)
        if not found:
            return JSONResponse({"error": "no such key"}, status_code=404)
        return JSONResponse({"key_sha256": sha, "revoked": True})

    def store_down(e: DirectoryStoreDown) -> Response:
        # As the chat API does for a quota store that is down: 429 with a reason code, not a 5xx.
        return JSONResponse({"error": str(e), "code": "state_store_down"}, status_code=429, headers={"retry-after": "1"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gw.startup()
        try:
            yield
        finally:
            await gw.shutdown()

    routes = [
        Route("/v1/chat/completions", openai_chat, methods=["POST"]),
        Route("/v1/messages", anthropic_messages, methods=["POST"]),
        Route("/v1/models", models, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/admin/accounts", admin_accounts, methods=["POST"]),
        Route("/admin/accounts/{account_id}/keys", admin_keys, methods=["POST"]),
        Route("/admin/keys/{key_sha256}", admin_revoke, methods=["DELETE"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.gateway = gw
    return app
