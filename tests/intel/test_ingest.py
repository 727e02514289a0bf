from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from distillguard.intel.evidence import collect
from distillguard.intel.export import build_bundle, write_bundle
from distillguard.intel.ingest import IntelSet, ingest
from distillguard.intel.match import IntelMatcher
from tests.intel.conftest import KEY

NOW = dt.datetime(2026, 4, 25, tzinfo=dt.UTC)


def _other_tool(path: Path) -> Path:
    def ind(i: int, pattern: str, **kw: object) -> dict[str, object]:
        return {"type": "indicator", "spec_version": "2.1", "id": f"indicator--00000000-0000-4000-8000-{i:012d}",
                "created": "2026-04-01T00:00:00Z", "modified": "2026-04-01T00:00:00Z", "pattern": pattern,
                "pattern_type": "stix", "valid_from": "2026-04-01T00:00:00Z", "created_by_ref": "identity--x", **kw}  # fmt: skip

    objs = [
        {"type": "identity", "spec_version": "2.1", "id": "identity--x", "created": "2026-04-01T00:00:00Z",
         "modified": "2026-04-01T00:00:00Z", "name": "Other Lab", "identity_class": "organization"},
        ind(1, "[ipv4-addr:value = '198.51.100.7']", confidence=60),
        ind(2, "[ipv4-addr:value ISSUBSET '203.0.113.0/24' OR ipv6-addr:value = '2001:DB8::9']"),
        ind(3, "[domain-name:value = 'Evil-Harvest.example']"),
        ind(4, "[email-addr:value LIKE '%@bad.example']"),
        ind(5, "[file:hashes.'SHA-256' = 'aa']"),  # not ours to match: skipped
        ind(6, "[ipv4-addr:value = '192.0.2.1']", valid_until="2026-04-10T00:00:00Z"),  # expired
        ind(7, "[ipv4-addr:value = '192.0.2.2']", revoked=True),
    ]  # fmt: skip
    path.write_text(json.dumps({"type": "bundle", "id": "bundle--00000000-0000-4000-8000-000000000000", "objects": objs}))
    return path


def test_other_tools_simple_indicators_are_read_and_the_rest_counted(tmp_path: Path) -> None:
    intel = ingest([_other_tool(tmp_path / "other.json")], now=NOW)
    assert set(intel.clear) == {"ipv4-addr", "ipv4-prefix", "ipv6-addr", "email-domain"}
    assert intel.clear["ipv6-addr"] == {"2001:db8::9": intel.clear["ipv6-addr"]["2001:db8::9"]}
    assert set(intel.clear["email-domain"]) == {"evil-harvest.example", "bad.example"}
    assert intel.stats["skipped"] == 1 and intel.stats["expired"] == 1 and intel.stats["revoked"] == 1
    m = IntelMatcher(intel, None)
    got = m.request("198.51.100.7", None, None)
    assert got is not None and got[0] == "ip" and got[1].producer == "Other Lab" and got[1].confidence == 60
    assert m.request("203.0.113.99", None, None) is not None and m.request("::ffff:203.0.113.5", None, None) is not None
    hit = m.request("10.0.0.1", None, "mail.bad.example")
    assert hit is not None and hit[0] == "email_domain"
    assert m.request("10.0.0.1", "chrome", "good.example") is None


def test_our_keyed_bundle_round_trips_through_an_intel_file(hunt_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    _, hunt = hunt_dirs
    intel = collect(hunt)
    path = tmp_path / "ours.json"
    write_bundle(build_bundle(intel, KEY, producer="Provider A"), path)
    got = ingest([path], now=NOW)
    got.save(tmp_path / "intel.json")
    loaded = IntelSet.load(tmp_path / "intel.json")
    assert len(loaded) == len(intel.artifacts) + len(intel.templates) and loaded.key_ids == {KEY.key_id}
    m = IntelMatcher(loaded, KEY)
    for a in intel.artifacts:
        assert m.lookup(a.kind, a.value) is not None, a
    hit = m.request("82.44.7.200", None, None)  # a new address in the campaign's /24
    assert hit is not None and hit[0] == "prefix" and hit[1].producer == "Provider A"
    assert m.request("82.44.9.1", "chrome", "gmail.com") is None
    assert m.template("Below is an instruction that describes a task, paired with an input that provides further "
                      "context. Write a response that appropriately completes the request about graph search for case 7.") is not None  # fmt: skip
    assert m.template("What is the capital of France and why is it famous for art?") is None
