"""Intel sharing: export size and time on a hunt, STIX validation, TAXII push/pull of many
indicators, and the attacker's IPv4 sweep against the exported IP indicators.

    PYTHONPATH=src python benchmarks/bench_intel.py [--hunt HUNT_DIR] [--indicators 100000] [--sweep-bits 32]

``--hunt``: a hunt output (e.g. of ``qwen-2026 --scale 0.05 --seed 303``); the export uses a
fresh random key; without it the export and the sweep are skipped. TAXII: an OpenTAXII 2.1
server (SQLite, ``tests/intel/taxii_server.py``) on 127.0.0.1; ``--indicators`` plain
indicators pushed in chunks and pulled back by pages, compared by id and by canonical JSON.
Sweep: ``2^sweep-bits`` addresses starting at the /8 of the first exported IPv4 indicator
(32: all of IPv4), 8 unkeyed digests each. The sections run replace those in
``benchmarks/results/intel/intel.json``; the others are kept.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import secrets
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # for tests.intel.taxii_server

from stix2validator import validate_file  # noqa: E402
from tests.intel.taxii_server import TaxiiServer, server_version  # noqa: E402
from tests.intel.test_taxii import indicators  # noqa: E402

from distillguard.intel.evidence import collect  # noqa: E402
from distillguard.intel.export import build_bundle, write_bundle  # noqa: E402
from distillguard.intel.extension import EXTENSION_ID  # noqa: E402
from distillguard.intel.keyed import ConsortiumKey  # noqa: E402
from distillguard.intel.sweep import run_sweep  # noqa: E402
from distillguard.intel.taxii import pull, push  # noqa: E402


def bench_export(hunt: Path, out: Path, key: ConsortiumKey) -> tuple[dict[str, object], tuple[list[str], int]]:
    t0 = time.perf_counter()
    intel = collect(hunt)
    t1 = time.perf_counter()
    bundle = build_bundle(intel, key, producer="benchmark provider")
    size = write_bundle(bundle, out)
    t2 = time.perf_counter()
    r = validate_file(str(out))
    errors = [str(e) for o in r.object_results for e in o.errors]
    warnings = [str(w) for o in r.object_results for w in o.warnings]
    objs = json.loads(out.read_text())["objects"]
    inds = [o for o in objs if o["type"] == "indicator"]
    kinds: dict[str, int] = {}
    for o in inds:
        k = o["extensions"][EXTENSION_ID]["kind"]
        kinds[k] = kinds.get(k, 0) + 1
    digests = [o["extensions"][EXTENSION_ID]["digest"] for o in inds if o["extensions"][EXTENSION_ID]["kind"] == "ipv4-addr"]
    first = min((int.from_bytes(bytes(map(int, a.value.split("."))), "big") for a in intel.artifacts if a.kind == "ipv4-addr"), default=0)
    return {
        "hunt": str(hunt), "campaigns": len(intel.campaigns), "objects": len(objs), "indicators": len(inds),
        "indicators_by_kind": kinds, "bytes": size, "collect_s": round(t1 - t0, 2), "build_and_write_s": round(t2 - t1, 2),
        "validator_errors": len(errors), "validator_warnings": len(warnings), "first_errors": errors[:5],
        "first_warnings": warnings[:5],
    }, (digests, first)  # fmt: skip


def bench_taxii(n: int, chunk: int, page: int) -> dict[str, object]:
    objs = indicators(n)
    t = time.perf_counter()
    with TaxiiServer() as s:
        t0 = time.perf_counter()
        pushed = push(objs, s.api_root, s.collection_id, s.user, s.password, chunk=chunk)
        t1 = time.perf_counter()
        back = pull(s.api_root, s.collection_id, s.user, s.password, per_request=page)
        t2 = time.perf_counter()
    sent = {str(o["id"]): json.dumps(o, sort_keys=True) for o in objs}
    got = {str(o["id"]): json.dumps(o, sort_keys=True) for o in back}
    return {"server": server_version(), "indicators": n, "chunk": chunk, "page": page, "start_s": round(t0 - t, 2),
            "push_s": round(t1 - t0, 2), "pull_s": round(t2 - t1, 2), "push_requests": pushed["requests"],
            "pull_requests": max(1, -(-n // page)), "pulled": len(back), "same_ids": len(back) == len(got) and got.keys() == sent.keys(),
            "identical": len(back) == len(got) and got == sent}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hunt", type=Path, default=None)
    ap.add_argument("--indicators", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=5000)
    ap.add_argument("--page", type=int, default=5000)
    ap.add_argument("--sweep-bits", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "intel" / "intel.json")
    args = ap.parse_args()
    key = ConsortiumKey(secrets.token_bytes(32), epoch=1)
    run: dict[str, object] = {
        "command": " ".join(["python", *sys.argv]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_avg_at_start": os.getloadavg(),
        },
    }
    result: dict[str, object] = json.loads(args.out.read_text()) if args.out.exists() else {}
    digests: list[str] = []
    first = 0
    if args.hunt:
        result.update(run)  # the top-level run is the one that made the export
        export, (digests, first) = bench_export(args.hunt, args.out.parent / "bench-bundle.json", key)
        (args.out.parent / "bench-bundle.json").unlink(missing_ok=True)
        result["export"] = export
        print(json.dumps(export, indent=1), flush=True)
    if args.indicators:
        result["taxii"] = {**bench_taxii(args.indicators, args.chunk, args.page), **run}
        print(json.dumps(result["taxii"], indent=1), flush=True)
    if args.sweep_bits and digests:
        bits = args.sweep_bits
        start = 0 if bits >= 32 else (first >> bits) << bits  # the block holding the first exported address
        t0 = time.perf_counter()
        attack = run_sweep(digests, start, 1 << bits, threads=args.threads)
        wall = time.perf_counter() - t0
        result["sweep"] = {"addresses": 1 << bits, "start": start, "exported_ipv4_indicators": len(digests),
                           "unkeyed_digests": attack.hashed, "hits": attack.hits, "seconds": round(attack.seconds, 1),
                           "wall_s": round(wall, 1), "digests_per_s": round(attack.hashed / max(attack.seconds, 1e-9)),
                           "algorithms": "sha256, sha1, md5, hmac-sha256(empty key), each over the address and over the keyed message"}  # fmt: skip
        print(json.dumps(result["sweep"], indent=1), flush=True)
        t0 = time.perf_counter()
        partner = run_sweep(digests, start, 1 << bits, key=key.epoch_key(), threads=args.threads)
        wall = time.perf_counter() - t0
        matched = {addr for _algo, addr in partner.hits}
        result["sweep"]["with_key"] = {"hmac_digests": partner.hashed, "matched_addresses": len(matched),
                                       "exported_ipv4_indicators": len(digests), "all_matched": len(matched) == len(digests),
                                       "seconds": round(partner.seconds, 1), "wall_s": round(wall, 1)}  # fmt: skip
        print(json.dumps(result["sweep"]["with_key"], indent=1), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
