"""Live scoring in a process of its own, shared by every worker of one ``distillguard serve``.

Scoring in the request process cost it about 2 ms of CPU per request at 500 requests/s
(``benchmarks/results/gateway/latency.json``, 10d4dcd: 3,868 against 1,895 µs with live
scoring off), and with ``--workers N`` each worker would have seen only its own share of the
traffic. So ``serve`` starts one scorer process (:class:`ScorerProcess`, at a lower CPU
priority than the workers) and each worker holds a :class:`ScorerClient`: requests still only
append to a queue; a thread sends the queue to the scorer every 0.2 s over a
Unix socket (``multiprocessing.connection``, authenticated with a random key, in a private
folder) and applies the verdicts the scorer broadcasts after each re-scoring. The scorer is
the same :class:`~distillguard.gateway.live.LiveScorer` as in process, so both agree.

If the scorer process dies, workers keep serving on the last verdicts (and decision files),
count the error for ``/metrics`` and reconnect when it is back; nothing on the request path
waits for it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import multiprocessing
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from types import TracebackType
from typing import Any

from distillguard.errors import ConfigError
from distillguard.gateway.clock import Clock
from distillguard.gateway.directory import Account
from distillguard.gateway.live import AccountVerdict, LiveScorer, LiveVerdicts
from distillguard.policy import Policy

__all__ = ["ScorerClient", "ScorerProcess"]

PUSH_S = 0.2
_NICE = 19  # the scorer yields the CPU to the workers, whose requests wait on it
# One thread for Polars and BLAS in the scorer: its bursts then take one core, not all, and the
# workers keep the rest (benchmarks/results/gateway/latency.json, `scorer_threads`).
_ONE_THREAD = {"POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


class ScorerClient(LiveVerdicts):
    """A worker's view of the shared scorer: the same surface as the in-process scorer."""

    def __init__(
        self, address: str, authkey: bytes, *, every_s: float = 5.0, score: bool = True, clock: Clock | None = None
    ) -> None:
        """``clock``: a replay clock whose time goes to the scorer with each batch."""
        super().__init__(every_s=every_s, score=score, clock=clock)
        self.address = address
        self.authkey = authkey
        self.sent_rows = 0
        self.dropped_rows = 0  # queued while the scorer was unreachable
        self._conn: Connection | None = None
        self._send_lock = threading.Lock()
        self._new_accounts: list[Account] = []

    def account_seen(self, account: Account) -> None:
        if self.score and self._accounts.get(account.account_id) != account:
            self._accounts[account.account_id] = account
            self._new_accounts.append(account)

    def push(self) -> int:
        """Send the queued exchanges and new accounts to the scorer; returns the rows sent."""
        accounts, self._new_accounts = self._new_accounts, []
        rows = self.drain()
        if not rows and not accounts:
            return 0
        conn = self._connected()
        if conn is None:
            self.dropped_rows += len(rows)
            self._new_accounts = accounts + self._new_accounts  # accounts are few: kept for later
            return 0
        try:
            with self._send_lock:
                if self.clock is not None:
                    conn.send(("clock", self.clock.now()))
                if accounts:
                    conn.send(("accounts", accounts))
                if rows:
                    conn.send(("rows", rows))
        except (OSError, EOFError, ValueError):
            self.errors += 1
            self.dropped_rows += len(rows)
            self._disconnect(conn)
            return 0
        self.sent_rows += len(rows)
        return len(rows)

    def _connected(self) -> Connection | None:
        if self._conn is not None:
            return self._conn
        try:
            conn = Client(self.address, family="AF_UNIX", authkey=self.authkey)
        except (OSError, EOFError, multiprocessing.AuthenticationError):
            self.errors += 1
            return None
        self._conn = conn
        threading.Thread(target=self._receive, args=(conn,), name="scorer-verdicts", daemon=True).start()
        return conn

    def _disconnect(self, conn: Connection) -> None:
        if self._conn is conn:
            self._conn = None
        with contextlib.suppress(OSError):
            conn.close()

    def _receive(self, conn: Connection) -> None:
        while not self._stop.is_set():
            try:
                kind, verdicts, seconds = conn.recv()
            except (OSError, EOFError, ValueError):
                if not self._stop.is_set():
                    self.errors += 1
                self._disconnect(conn)
                return
            if kind == "verdicts":
                self.live = verdicts  # one assignment: a request sees the old or the new set
                self.rescore_seconds = seconds
                self.rescores += 1
                if self.on_rescore is not None:
                    try:
                        self.on_rescore(verdicts)
                    except Exception:
                        self.errors += 1

    def close(self) -> None:
        super().close()
        if self._conn is not None:
            self._disconnect(self._conn)

    def _run(self) -> None:
        if self.score:
            self._connected()  # verdicts flow from the start, before any traffic
        # Small, frequent sends: pickling 2 s of traffic at once held this worker's GIL long
        # enough to show in its p99; the scorer still feeds its detector every ``ingest_s``.
        while not self._stop.wait(PUSH_S):
            try:
                self._reload()
                if self.score:
                    self.push()
            except Exception:  # never take the worker down; counted for /metrics
                self.errors += 1


class _Latest:
    """The last time a worker's replay clock sent (a replayed log's simulated time)."""

    def __init__(self, now: float) -> None:
        self.value = now

    def now(self) -> float:
        return self.value


class _Service:
    """The scorer process's side: accepts workers, feeds their traffic to one scorer, and
    sends every worker each new set of verdicts."""

    def __init__(self, scorer: LiveScorer, listener: Listener) -> None:
        self.scorer = scorer
        self.listener = listener
        self.conns: list[Connection] = []
        self.lock = threading.Lock()
        self.closed = False
        scorer.on_rescore = self.broadcast

    def accept(self) -> None:
        while True:
            try:
                conn = self.listener.accept()
            except (OSError, EOFError, multiprocessing.AuthenticationError):
                if self.closed:
                    return
                continue
            with self.lock:
                self.conns.append(conn)
                self._send(conn, self.scorer.live)
            threading.Thread(target=self.read, args=(conn,), daemon=True).start()

    def read(self, conn: Connection) -> None:
        while True:
            try:
                kind, items = conn.recv()
            except (OSError, EOFError, ValueError):
                with self.lock:
                    if conn in self.conns:
                        self.conns.remove(conn)
                return
            if kind == "rows":
                self.scorer.observe_many(items)
            elif kind == "clock":
                self.scorer.clock = _Latest(items)
            elif kind == "accounts":
                for account in items:
                    self.scorer.account_seen(account)

    def broadcast(self, verdicts: dict[str, AccountVerdict]) -> None:
        with self.lock:
            for conn in list(self.conns):
                self._send(conn, verdicts)

    def _send(self, conn: Connection, verdicts: dict[str, AccountVerdict]) -> None:
        try:
            conn.send(("verdicts", verdicts, self.scorer.rescore_seconds))
        except (OSError, ValueError):
            self.conns.remove(conn)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _yield_cpu() -> None:
    """Run the scorer only on CPU time nobody else wants: Linux's ``SCHED_IDLE`` (a waking
    worker preempts it at once, where a nice-19 task can keep the core for a scheduler
    slice), else nice 19."""
    with contextlib.suppress(OSError):
        os.nice(_NICE)
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies (``PR_SET_PDEATHSIG``).

    Why: at ``SCHED_IDLE`` the scorer gets almost no CPU while the host is busy, so noticing a
    parent killed with -9 and shutting down in Python could take minutes (a busy host is when
    a gateway is killed); a kernel signal needs no time of its own. Elsewhere the polling loop
    in :func:`_scorer_main` is the only watch."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _scorer_main(address: str, authkey: bytes, policy: Policy | None, every_s: float, parent: int) -> None:
    """The scorer process: one :class:`LiveScorer` fed by every worker, until its parent goes."""
    _die_with_parent()
    if os.getppid() != parent:  # the parent went before the kernel was asked to watch it
        return
    _yield_cpu()
    scorer = LiveScorer(policy, every_s=every_s)
    listener = Listener(address, family="AF_UNIX", authkey=authkey)
    service = _Service(scorer, listener)
    threading.Thread(target=service.accept, name="scorer-accept", daemon=True).start()
    scorer.start()
    try:
        while os.getppid() == parent:  # a parent killed with -9 leaves no scorer behind
            time.sleep(0.5)
    finally:
        service.closed = True
        scorer.close()
        listener.close()


class ScorerProcess:
    """Start and stop the shared scorer: ``with ScorerProcess(policy, 5.0) as p: p.address``."""

    def __init__(self, policy: Policy | None = None, every_s: float = 5.0, *, one_thread: bool = True) -> None:
        self.policy = policy
        self.every_s = every_s
        self.one_thread = one_thread
        self.folder = Path(tempfile.mkdtemp(prefix="distillguard-scorer-"))  # mode 0700
        self.address = str(self.folder / "scorer.sock")
        self.authkey = secrets.token_bytes(32)
        self.process: Any = None

    def start(self, wait_s: float = 120.0) -> ScorerProcess:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads and loops
        self.process = ctx.Process(
            target=_scorer_main, args=(self.address, self.authkey, self.policy, self.every_s, os.getpid()),
            name="distillguard-scorer", daemon=True,
        )  # fmt: skip
        saved = {k: os.environ.get(k) for k in _ONE_THREAD}
        if self.one_thread:  # read by the child's imports; the parent's libraries are loaded already
            os.environ.update(_ONE_THREAD)
        try:
            self.process.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        deadline = time.monotonic() + wait_s
        while not os.path.exists(self.address):
            if not self.process.is_alive():
                raise ConfigError(f"the live scorer process exited with {self.process.exitcode} before it listened")
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the live scorer process did not listen within {wait_s:g} s")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.process.terminate()
            self.process.join(10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join(5)
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> ScorerProcess:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
