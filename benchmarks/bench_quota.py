"""What a quota check costs a request: one reserve + settle, in process and in Redis on loopback.

    PYTHONPATH=src python benchmarks/bench_quota.py [--n 20000] [--concurrency 16]

Latency: ``--n`` sequential reserve+settle pairs per case (after 500 warm-up pairs), each
timed with ``time.perf_counter_ns``; median, p99 and mean microseconds. Cases: the memory
store and the Redis store (its own ``redis-server`` on 127.0.0.1, started by
``tests/gateway/redis_server.py``), each with one bucket (an account) and two (an account
and its cluster, charged in the same Lua call). Throughput: the same pairs from
``--concurrency`` tasks at once against one store, pairs per second. Limits are set high
so that every call is granted: this measures the path a normal request takes.

Writes ``benchmarks/results/gateway/quota.json``. The machine is shared (2 cores); the client
and redis-server compete for them, so absolute numbers are pessimistic.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.gateway.redis_server

from tests.gateway.redis_server import RedisServer  # noqa: E402

from distillguard.gateway.quota import Bucket, Grant, MemoryQuotaStore, QuotaStore, RedisQuotaStore  # noqa: E402

WARMUP = 500
BIG = 10**12


def _buckets(n_buckets: int, tag: str) -> list[Bucket]:
    keys = [f"acct:bench-{tag}", f"cluster:bench-{tag}"][:n_buckets]
    return [Bucket(key, BIG, BIG, BIG) for key in keys]


async def _pair(store: QuotaStore, buckets: list[Bucket]) -> None:
    grant = await store.reserve(buckets, 1_200)
    if not isinstance(grant, Grant):
        raise RuntimeError(f"benchmark call refused: {grant}")
    await store.settle(grant, 700)


async def latency(store: QuotaStore, buckets: list[Bucket], n: int) -> dict[str, float]:
    for _ in range(WARMUP):
        await _pair(store, buckets)
    samples = []
    for _ in range(n):
        start = time.perf_counter_ns()
        await _pair(store, buckets)
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return {
        "median_us": round(statistics.median(samples) / 1_000, 2),
        "p99_us": round(samples[int(0.99 * (len(samples) - 1))] / 1_000, 2),
        "mean_us": round(statistics.fmean(samples) / 1_000, 2),
    }


async def throughput(store: QuotaStore, buckets: list[Bucket], n: int, concurrency: int) -> float:
    per_task = n // concurrency

    async def worker() -> None:
        for _ in range(per_task):
            await _pair(store, buckets)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return round(per_task * concurrency / (time.perf_counter() - start), 1)


async def run(url: str, n: int, concurrency: int) -> dict[str, dict[str, dict[str, float]]]:
    results: dict[str, dict[str, dict[str, float]]] = {}
    for kind in ("memory", "redis"):
        results[kind] = {}
        for n_buckets in (1, 2):
            store: QuotaStore = MemoryQuotaStore() if kind == "memory" else RedisQuotaStore(url)
            try:
                case = await latency(store, _buckets(n_buckets, f"{kind}-lat"), n)
                pairs_per_s = await throughput(
                    store, _buckets(n_buckets, f"{kind}-tput"), n, concurrency
                )
                case["pairs_per_s_concurrent"] = pairs_per_s
                if store.errors:
                    raise RuntimeError(f"{kind}: {store.errors} store errors during the benchmark")
            finally:
                await store.close()
            results[kind][f"{n_buckets}_bucket" + ("s" if n_buckets > 1 else "")] = case
            print(kind, n_buckets, case, flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="timed reserve+settle pairs per case")
    parser.add_argument("--concurrency", type=int, default=16, help="tasks for the throughput run")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "gateway" / "quota.json")
    args = parser.parse_args()
    with RedisServer() as server:
        version = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True
        ).stdout.split()[2]
        results = asyncio.run(run(server.url, args.n, args.concurrency))
    report = {
        "command": " ".join(["PYTHONPATH=src python benchmarks/bench_quota.py", *sys.argv[1:]]),
        "what": "microseconds per reserve+settle pair, sequential; pairs/s with --concurrency tasks",
        "n": args.n,
        "warmup": WARMUP,
        "concurrency": args.concurrency,
        "python": platform.python_version(),
        "redis_server": version.removeprefix("v="),
        "cpus": os.cpu_count(),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
