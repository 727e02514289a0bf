"""Building a gateway from its settings and serving it with uvicorn (uvloop + httptools).

``--workers N`` runs N processes; uvicorn then needs an import string, so the settings travel
to each worker as JSON in the ``DISTILLGUARD_GATEWAY`` environment variable and
:func:`app_from_env` builds the app there. With several workers or replicas, quotas must live
in Redis (``state.store: redis`` in the policy): in-process counters are per process. The same Redis then shares the keys and
accounts made through any replica's admin API (``directory_sync.py``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any

import polars as pl
from starlette.applications import Starlette

from distillguard.errors import ConfigError
from distillguard.gateway.app import Gateway, create_app
from distillguard.gateway.bus import DecisionBus
from distillguard.gateway.clock import Clock, ReplayClock, WallClock
from distillguard.gateway.directory import Directory
from distillguard.gateway.directory_sync import DirectorySync
from distillguard.gateway.live import LiveScorer, LiveVerdicts
from distillguard.gateway.logs import configure as configure_logs
from distillguard.gateway.policy_file import GatewayPolicy
from distillguard.gateway.quota import make_store
from distillguard.gateway.scorer import ScorerClient, ScorerProcess
from distillguard.gateway.sink import ExchangeSink
from distillguard.review import LOG_NAME, ReviewFollower

__all__ = ["BackgroundServer", "GatewaySettings", "app_from_env", "build_gateway", "make_clock", "serve"]

ENV = "DISTILLGUARD_GATEWAY"


@dataclass
class GatewaySettings:
    upstream: str
    policy: str | None = None  # path of the policy YAML; None: the embedded defaults
    sink: str | None = None  # folder the exchanges are written to (the spec, Parquet)
    accounts: str | None = None  # an accounts table (Parquet/JSONL/CSV per the spec) loaded at start
    decisions: list[str] = field(default_factory=list)  # hunt outputs whose decisions load and reload
    keys: dict[str, str] = field(default_factory=dict)  # API key -> account id (demo and tests)
    admin_token: str | None = None
    upstream_key: str | None = None
    live: bool = True  # score the traffic online (decision files load either way)
    rescore_s: float = 5.0
    timeout_s: float = 600.0
    http_client: str = "aiohttp"  # the upstream client library (gateway/upstream.py)
    # The shared live scorer (gateway/scorer.py) that `serve` starts: its socket and key. None:
    # score in this process (tests, the demo, an app built by hand).
    scorer: str | None = None
    scorer_key: str | None = None
    log_format: str = "text"  # or json: one object per line (gateway/logs.py)
    log_level: str = "warning"
    # For replaying a log in compressed time (benchmarks), never in production: simulated time
    # starts at replay_start (ISO 8601 with an offset) when the gateway starts serving and runs
    # replay_speed times faster than the wall's; quotas, account ages and the hunt follow it.
    replay_start: str | None = None
    replay_speed: float = 1.0


def make_clock(s: GatewaySettings) -> Clock:
    """The wall clock, or a :class:`ReplayClock` when the settings replay a log."""
    if s.replay_start is None:
        if s.replay_speed != 1.0:
            raise ConfigError(f"replay_speed has value {s.replay_speed} but replay_start is not set; give both to replay a log")
        return WallClock()
    try:
        start = dt.datetime.fromisoformat(s.replay_start.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(f"replay_start has value {s.replay_start!r}; expected an ISO 8601 time such as 2026-04-22T00:00:00Z") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    if not (0 < s.replay_speed < float("inf")):
        raise ConfigError(f"replay_speed has value {s.replay_speed}; expected a positive number")
    return ReplayClock(start, s.replay_speed)


def build_gateway(s: GatewaySettings) -> Gateway:
    clock = make_clock(s)
    replaying = clock if isinstance(clock, ReplayClock) else None  # production scoring unchanged
    policy = GatewayPolicy.load(s.policy) if s.policy else GatewayPolicy.default()
    store = make_store(policy.store, policy.store_url, policy.on_store_error, policy.store_timeout_s)
    directory = Directory()
    if s.accounts:
        from distillguard.io import LogReader

        path = Path(s.accounts)
        if not path.exists():
            raise ConfigError(f"--accounts {path}: no such file or folder")
        if path.is_file():
            frame = pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ndjson(path)
            directory.load(frame.iter_rows(named=True))
        else:
            table = LogReader(path).accounts()
            directory.load(pl.DataFrame(pl.from_arrow(table)).iter_rows(named=True))
    for key, account in s.keys.items():
        directory.add_key(key, account)
    live: LiveVerdicts | None = None
    if s.live and s.scorer:
        live = ScorerClient(s.scorer, bytes.fromhex(s.scorer_key or ""), every_s=s.rescore_s, clock=replaying)
    elif s.live or s.decisions:
        live = LiveScorer(policy.risk, every_s=s.rescore_s, score=s.live, clock=replaying)
    if live is not None and s.live:
        # The whole directory, as the batch hunt reads the whole accounts table: accounts that
        # have not sent anything yet still count in the population (sign-ups, shared identities).
        for known in directory.accounts.values():
            live.account_seen(known)
    # Analysts' decisions (distillguard ui): DIR/analyst-decisions.jsonl of each hunt folder, or a
    # .jsonl given itself; followed even before it exists (distillguard/review.py).
    logs = [Path(p) / LOG_NAME if Path(p).is_dir() else Path(p) for p in s.decisions]
    reviews = ReviewFollower(p for p in logs if p.suffix == ".jsonl") if s.decisions else None
    if live is not None and s.decisions:
        live.watch(Path(p) for p in s.decisions if not p.endswith(".jsonl"))
    sink = ExchangeSink(s.sink) if s.sink else None
    # Several replicas on one Redis: each one's verdicts reach the others (gateway/bus.py).
    bus = DecisionBus(policy.store_url, live) if live is not None and policy.store == "redis" else None
    # ... and keys and accounts made through any replica's admin API reach all (gateway/directory_sync.py).
    sync = DirectorySync(policy.store_url, directory) if policy.store == "redis" else None
    admin = s.admin_token or os.environ.get("DISTILLGUARD_ADMIN_TOKEN")
    upstream_key = s.upstream_key or os.environ.get("DISTILLGUARD_UPSTREAM_KEY")
    return Gateway(s.upstream, policy, store, directory, sink, live, admin, upstream_key, s.timeout_s, bus, sync, http_client=s.http_client, reviews=reviews, clock=clock)


def app_from_env() -> Starlette:
    """The app of one worker process, from the settings in ``DISTILLGUARD_GATEWAY``."""
    raw = os.environ.get(ENV)
    if not raw:
        raise ConfigError(f"{ENV} is not set: start workers with `distillguard serve`")
    settings = GatewaySettings(**json.loads(raw))
    configure_logs(settings.log_format, settings.log_level)
    return create_app(build_gateway(settings))


SERVERS = ("uvicorn", "granian")


def serve(
    s: GatewaySettings, host: str = "127.0.0.1", port: int = 8080, workers: int = 1, scorer_process: bool = True,
    server: str = "uvicorn",
) -> None:  # fmt: skip
    """Serve with uvicorn; live scoring runs in one scorer process shared by the workers
    (``scorer_process=False``: in each worker's process, as a thread)."""
    if s.live and s.scorer is None and scorer_process:
        risk = (GatewayPolicy.load(s.policy) if s.policy else GatewayPolicy.default()).risk
        with ScorerProcess(risk, s.rescore_s) as scorer:
            _serve(replace(s, scorer=scorer.address, scorer_key=scorer.authkey.hex()), host, port, workers, server)
    else:
        _serve(s, host, port, workers, server)


def _serve(s: GatewaySettings, host: str, port: int, workers: int, server: str) -> None:
    if server == "granian":  # a Rust HTTP server; workers build the app from the environment
        from granian import Granian
        from granian.constants import Interfaces, Loops

        os.environ[ENV] = json.dumps(asdict(s))
        Granian(
            "distillguard.gateway.server:app_from_env", address=host, port=port, interface=Interfaces.ASGI,
            workers=workers, factory=True, loop=Loops.uvloop, log_access=False,
        ).serve()  # fmt: skip
        return
    if server != "uvicorn":
        raise ConfigError(f"server: expected one of {', '.join(SERVERS)}, got {server!r}")
    import uvicorn

    configure_logs(s.log_format, s.log_level)

    # Idle keep-alive connections are kept 75 s, longer than clients' pools keep them (httpx 5 s,
    # load balancers 60 s): a server closing first races the client's next request on that
    # connection, which then fails with no answer (49 of 200,000 requests in the quota trial).
    common = {"host": host, "port": port, "loop": "uvloop", "http": "httptools", "log_level": "warning", "access_log": False,
              "timeout_keep_alive": 75}  # fmt: skip
    if workers > 1:
        os.environ[ENV] = json.dumps(asdict(s))
        uvicorn.run("distillguard.gateway.server:app_from_env", factory=True, workers=workers, **common)  # type: ignore[arg-type]
    else:
        uvicorn.run(create_app(build_gateway(s)), **common)  # type: ignore[arg-type]


class BackgroundServer:
    """An ASGI app served by uvicorn in a thread on ``host`` and a free port: the demo's mock
    upstream and gateway, and the tests'. ``with BackgroundServer(app) as s: s.url``; stopped,
    lifespan shutdown included, when the block ends."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on", loop="asyncio")
        self.app = app
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="background-server", daemon=True)
        self.url = ""

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)
