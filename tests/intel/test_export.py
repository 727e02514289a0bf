from __future__ import annotations

import json
from pathlib import Path

from stix2validator import validate_file

from distillguard.intel.evidence import collect
from distillguard.intel.export import build_bundle, write_bundle
from tests.intel.conftest import KEY


def _validate(path: Path) -> tuple[list[str], list[str]]:
    r = validate_file(str(path))
    errors = [str(e) for o in r.object_results for e in o.errors] + [str(e) for e in getattr(r, "fatal", []) or []]
    warnings = [str(w) for o in r.object_results for w in o.warnings]
    return errors, warnings


def test_keyed_and_clear_bundles_pass_the_stix_validator(hunt_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    _, hunt = hunt_dirs
    intel = collect(hunt)
    for clear in (False, True):
        path = tmp_path / f"b{clear}.json"
        write_bundle(build_bundle(intel, KEY, producer="Provider A", clear=clear), path)
        errors, warnings = _validate(path)
        assert errors == [], errors
        print(f"clear={clear}: {len(warnings)} validator warnings", warnings[:5])


def test_what_the_campaigns_share_leaves_and_nothing_personal_in_clear(hunt_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    _, hunt = hunt_dirs
    intel = collect(hunt)
    kinds = {(a.campaign, a.kind, a.value) for a in intel.artifacts}
    assert ("C001", "ipv4-prefix", "82.44.7.0/24") in kinds and ("C001", "email-domain", "torol-labs.com") in kinds
    assert ("C002", "phone", "+442079460958") in kinds and ("C002", "payment", "card_shared_77") in kinds
    assert not any(a.value in ("82.44.9.1", "gmail.com", "chrome") for a in intel.artifacts)  # NAT, free mail, bystanders' device
    assert [t.campaign for t in intel.templates] == ["C001"]
    bundle = build_bundle(intel, KEY, producer="Provider A")
    text = bundle.serialize()
    for a in intel.artifacts:
        assert a.value not in text
    assert "Below is an instruction" not in text and "acct_" not in text
    objs = json.loads(text)["objects"]
    types = {o["type"] for o in objs}
    assert {"identity", "campaign", "indicator", "relationship", "sighting", "marking-definition", "extension-definition"} <= types
    inds = [o for o in objs if o["type"] == "indicator"]
    assert all(0 < o["confidence"] <= 90 and o["valid_until"] > o["valid_from"] for o in inds)
    rels = {(o["relationship_type"], o["source_ref"].split("--")[0], o["target_ref"].split("--")[0]) for o in objs if o["type"] == "relationship"}
    assert rels == {("indicates", "indicator", "campaign"), ("targets", "campaign", "identity")}
    again = build_bundle(collect(hunt), KEY, producer="Provider A")
    assert sorted(o["id"] for o in json.loads(again.serialize())["objects"]) == sorted(o["id"] for o in objs)


def test_clear_mode_names_addresses_but_still_keys_phones_and_cards(hunt_dirs: tuple[Path, Path]) -> None:
    _, hunt = hunt_dirs
    text = build_bundle(collect(hunt), KEY, producer="P", clear=True).serialize()
    assert "[ipv4-addr:value ISSUBSET '82.44.7.0/24']" in text and "torol-labs.com" in text
    assert "+442079460958" not in text and "card_shared_77" not in text
