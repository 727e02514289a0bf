"""The attacker's sweep of IPv4 space against the exported IP indicators.

The whole 2^32 sweep takes about 50 CPU-minutes here (8 unkeyed digests per address), too
long for CI: this test sweeps the /8 (2^24 addresses) that holds every exported address;
``benchmarks/bench_intel.py --sweep-bits 32`` runs the full space.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distillguard.intel.evidence import collect
from distillguard.intel.export import build_bundle
from distillguard.intel.extension import EXTENSION_ID
from distillguard.intel.sweep import available, run_sweep
from tests.intel.conftest import KEY

pytestmark = pytest.mark.skipif(available() is not None, reason=f"IPv4 sweep unavailable: {available()}")


def test_no_unkeyed_hash_of_any_address_in_the_slice_equals_an_exported_one(hunt_dirs: tuple[Path, Path]) -> None:
    _, hunt = hunt_dirs
    intel = collect(hunt)
    objs = json.loads(build_bundle(intel, KEY, producer="P").serialize())["objects"]
    digests = [o["extensions"][EXTENSION_ID]["digest"] for o in objs
               if o["type"] == "indicator" and o["extensions"][EXTENSION_ID]["kind"] == "ipv4-addr"]  # fmt: skip
    ips = sorted(a.value for a in intel.artifacts if a.kind == "ipv4-addr")
    assert len(digests) == len(ips) >= 5 and all(ip.startswith("82.") for ip in ips)
    start, count = 82 << 24, 1 << 24
    attack = run_sweep(digests, start, count)
    assert attack.hits == [] and attack.hashed == 8 * count
    partner = run_sweep(digests, start, count, key=KEY.epoch_key())
    assert sorted(ip for _, ip in partner.hits) == ips
    print(f"2^24 sweep: {attack.hashed:,} unkeyed digests in {attack.seconds:.1f} s, none matched; "
          f"the key holder's sweep found all {len(ips)} in {partner.seconds:.1f} s")
