"""Quotas under concurrency and a quota store that fails, through real servers on loopback.

The CI-sized run of ``benchmarks/bench_gateway_quota.py`` (the same code): ``redis-server``,
``distillguard mock-upstream`` (a stand-in model, since no model can be served here; what it
served is the ground truth) and ``distillguard serve`` replicas, each a process. The benchmark
reports the numbers (1,000 trials, measured recovery times); these tests assert the behaviour.
"""

from __future__ import annotations

import asyncio
import os

import pytest
from benchmarks.bench_gateway_quota import policy_yaml, quota_trials, stack, store_fault

from tests.gateway.redis_server import have_redis_server

QUOTA = 5_000  # 50 requests of ~200 tokens on average ask for twice this


@pytest.fixture(autouse=True)
def _needs_redis_server() -> None:
    if not have_redis_server():
        if os.environ.get("CI"):
            pytest.fail("redis-server is not installed; `bash scripts/redis-server.sh install`")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")


@pytest.mark.slow
def test_concurrent_requests_on_replicas_get_no_token_beyond_the_quota_and_most_of_it() -> None:
    policy = policy_yaml("{redis_url}", daily_tokens=QUOTA, on_store_error="closed")
    with stack([policy] * 3) as st:
        trials, _ = asyncio.run(
            quota_trials(st, trials=3, quota=QUOTA, concurrency=50, seed=1, timeout_s=30)
        )
    assert len(trials) == 3
    for t in trials:
        assert t.quiet, t.to_dict()  # every reservation settled, nothing left in flight
        assert t.served <= QUOTA and t.used <= QUOTA, t.to_dict()
        assert t.served >= 0.5 * QUOTA, t.to_dict()  # a limiter that refuses everything fails here
        # no 5xx; an attempt with no answer at all ("0") is left out: a rare connection teardown
        # on loopback (ReadError here, ClientDisconnect while reading the body in the gateway)
        assert not any(s.startswith("5") for s in t.attempts), t.to_dict()
        assert t.codes.get("daily_tokens", 0) > 0  # the budget was contested
    assert sum(t.hung_up for t in trials) > 0  # clients hanging up mid-stream were part of it
    assert sum(t.retries for t in trials) > 0


@pytest.mark.slow
def test_redis_stopped_mid_load_gives_the_configured_answers_and_recovers() -> None:
    policies = [
        policy_yaml("{redis_url}", daily_tokens=10**12, on_store_error=mode)
        for mode in ("closed", "open")
    ]
    with stack(policies) as st:
        runs = [
            asyncio.run(
                store_fault(st, ["closed", "open"], kind=kind, before_s=1, down_s=2, after_s=5)
            )
            for kind in ("kill", "hang")
        ]
    for run in runs:
        closed, opened = run["replicas"]
        for replica in (closed, opened):
            seen = (run["kind"], run["down_s"], replica)  # the replica first: a long repr is cut
            assert replica["five_xx"] == 0 and replica["no_answer"] == 0, seen
            assert replica["while_down_as_configured"], seen  # 429 state_store_down / served
        assert set(closed["while_down"]) == {"429 state_store_down"}
        # recovery, polled with a 5 s deadline (the benchmark reports the time itself)
        assert closed["recovery_s"] is not None, run
        if run["kind"] == "kill":
            assert opened["recovery_s"] is not None, run  # its grants are checked again
