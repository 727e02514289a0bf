"""The shared scorer process: workers' traffic pooled into one hunt whose verdicts reach every
worker and equal the batch hunt's; a gateway whose parent is killed leaves no scorer behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from distillguard.gateway.directory import Account
from distillguard.gateway.scorer import ScorerClient, ScorerProcess
from tests.gateway.test_live import batch_decisions
from tests.hunt.population import population


def _wait(cond: object, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_workers_traffic_is_scored_as_one_and_both_get_the_batch_hunts_verdicts() -> None:
    ex, acc, arche = population(seed=3)
    expected = batch_decisions(ex, acc)
    assert expected

    with ScorerProcess(every_s=1.0) as proc:
        workers = [ScorerClient(proc.address, proc.authkey, every_s=1.0).start() for _ in range(2)]
        try:
            for r in acc.iter_rows(named=True):
                for w in workers:
                    w.account_seen(Account.from_row(r))
            rows = list(ex.iter_rows(named=True))
            for i, r in enumerate(rows):  # half the traffic through each worker
                workers[i % 2].observe(r)
            _wait(lambda: all(w.sent_rows for w in workers))
            _wait(lambda: all({a: v.decision for a, v in w.live.items()} == expected for w in workers))
        finally:
            for w in workers:
                w.close()
    assert sum(w.sent_rows for w in workers) == len(rows) and all(w.dropped_rows == 0 for w in workers)
    campaign = {a for a, k in arche.items() if k == "naive_scraper"}
    assert campaign <= {a for a, v in workers[0].live.items() if v.flagged}


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="Linux scheduling policies")
def test_the_scorer_runs_only_on_cpu_time_the_workers_leave() -> None:
    with ScorerProcess(every_s=60.0) as proc:
        pid = proc.process.pid
        assert os.sched_getscheduler(pid) == os.SCHED_IDLE
        assert os.getpriority(os.PRIO_PROCESS, pid) == 19


def test_a_client_without_its_scorer_keeps_serving_and_counts_the_error() -> None:
    client = ScorerClient("/nonexistent/distillguard.sock", b"k" * 32, every_s=1.0)
    client.observe({"account_id": "a"})
    assert client.push() == 0 and client.dropped_rows == 1 and client.errors == 1
    assert client.verdict("a") is None


def test_a_gateway_killed_with_9_leaves_no_scorer_process(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cmd = [sys.executable, "-m", "distillguard.cli", "serve", "--upstream", "http://127.0.0.1:9", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: _answers(port), 120)
        children = _children(proc.pid)
        assert children, "serve started no scorer process"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    _wait(lambda: not any(_alive(c) for c in children), 10)


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


if sys.platform != "linux":  # /proc is read above
    pytestmark = pytest.mark.skip(reason="reads /proc")
