"""A hunt's campaigns as a STIX 2.1 bundle for other model providers (built with ``stix2``).

Per bundle: the publishing provider's ``identity``, the TLP marking, the extension's
author and ``extension-definition`` (:mod:`.extension`). Per campaign: a ``campaign``
(counts and first/last seen, never a member id) that ``targets`` the provider (it was
the victim: ``attributed-to`` would name the provider as the attacker). Per shared value
(:mod:`.evidence`): an ``indicator`` that ``indicates`` the campaign, valid from the
value's first sighting to ``valid_days`` after its last, with a ``confidence`` of the
campaign's risk times the share of the value's holders that are members, and a
``sighting`` with how often and from when to when the provider saw it.

Personal values leave keyed (:mod:`.keyed`) unless ``clear``; templates always leave as
keyed sketches (:mod:`.sketch`); phones and payment fingerprints always keyed (STIX has no
object for them, and the log usually holds a provider's own HMAC of them). With ``clear``,
each campaign also gets an ``observed-data`` over the clear addresses' SCOs.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import stix2

from distillguard.errors import ConfigError
from distillguard.intel import extension
from distillguard.intel.evidence import Artifact, Campaign, HuntIntel, Template
from distillguard.intel.keyed import ConsortiumKey
from distillguard.intel.sketch import MATCH_THRESHOLD, NUM_PERM, sketch

__all__ = ["TLP", "build_bundle", "write_bundle"]

TLP = {"white": stix2.TLP_WHITE, "clear": stix2.TLP_WHITE, "green": stix2.TLP_GREEN,
       "amber": stix2.TLP_AMBER, "red": stix2.TLP_RED}  # fmt: skip
ALWAYS_KEYED = frozenset({"phone", "payment", "email-addr"})
_NS = uuid.UUID("6f1c0b0e-4a43-4b8e-9a51-9d1d52bc2f6e")
_LABEL = {"ipv4-addr": "IPv4 address", "ipv6-addr": "IPv6 address", "ipv4-prefix": "IPv4 prefix",
          "ipv6-prefix": "IPv6 prefix", "email-domain": "e-mail domain", "email-addr": "e-mail address",
          "phone": "phone number", "payment": "payment fingerprint", "device-fp": "device fingerprint"}  # fmt: skip


def _id(kind: str, *parts: str) -> str:
    """Deterministic ids: the same hunt exported twice gives the same objects (TAXII keeps one).
    Shaped as UUIDv4, as STIX recommends for SDOs and SROs (the bits are a name hash's)."""
    return f"{kind}--{uuid.UUID(bytes=uuid.uuid5(_NS, '/'.join(parts)).bytes, version=4)}"


def _clear_pattern(kind: str, value: str) -> str:
    v = value.replace("\\", "\\\\").replace("'", "\\'")
    if kind in ("ipv4-addr", "ipv6-addr"):
        return f"[{kind}:value = '{v}']"
    if kind in ("ipv4-prefix", "ipv6-prefix"):
        return f"[{kind.replace('prefix', 'addr')}:value ISSUBSET '{v}']"
    if kind == "email-domain":
        return f"[email-addr:value LIKE '%@{v}']"
    if kind == "device-fp":
        return f"[x-distillguard-device:fingerprint = '{v}']"
    raise ValueError(kind)


def _keyed_pattern(kind: str, digest: str, epoch: int) -> str:
    return f"[x-distillguard-keyed:digest = '{digest}' AND x-distillguard-keyed:kind = '{kind}' AND x-distillguard-keyed:epoch = {epoch}]"


def build_bundle(
    intel: HuntIntel,
    key: ConsortiumKey | None,
    *,
    producer: str,
    tlp: str = "amber",
    clear: bool = False,
    valid_days: float = 30.0,
) -> stix2.Bundle:
    """The bundle for ``intel``; ``key`` may be None only when ``clear`` and there is nothing
    that must be keyed (no phone, card or template)."""
    if tlp not in TLP:
        raise ConfigError(f"--tlp has value {tlp!r}; expected one of {', '.join(TLP)}")
    marking = TLP[tlp]
    now = (intel.generated_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).replace(microsecond=0)
    ident = stix2.Identity(
        id=_id("identity", "producer", producer), name=producer, identity_class="organization", created=now, modified=now,
        description="A model provider sharing distillation-campaign indicators.", object_marking_refs=[marking.id],
    )  # fmt: skip
    common: dict[str, Any] = {"created_by_ref": ident.id, "object_marking_refs": [marking.id], "created": now, "modified": now}
    objects: list[Any] = [marking, ident, extension.author(), extension.definition()]
    valid = dt.timedelta(days=valid_days)
    for camp in intel.campaigns:
        cid = _id("campaign", producer, camp.id, now.isoformat())
        objects.append(
            stix2.Campaign(
                id=cid, name=f"distillation campaign {camp.id} seen by {producer}", first_seen=camp.first_seen,
                last_seen=camp.last_seen, confidence=round(100 * camp.risk),
                objective="harvest a served model's outputs at scale to train a copy (distillation)",
                description=f"{camp.size:,} accounts acting as one, {camp.exchanges:,} exchanges; risk {camp.risk:.2f} "
                f"from the hunt's population tests (distillguard).", **common,
            )
        )  # fmt: skip
        objects.append(stix2.Relationship(id=_id("relationship", cid, "targets"), relationship_type="targets",
                                          source_ref=cid, target_ref=ident.id, **common))  # fmt: skip
        arts = [a for a in intel.artifacts if a.campaign == camp.id]
        tpls = [t for t in intel.templates if t.campaign == camp.id]
        scos: list[Any] = []
        for a in arts:
            objects.extend(_artifact_objects(a, camp, cid, key, clear, valid, common, ident.id, scos))
        for t in tpls:
            objects.extend(_template_objects(t, camp, cid, key, valid, common, ident.id))
        if scos:
            objects.extend(scos)
            objects.append(
                stix2.ObservedData(
                    id=_id("observed-data", cid), first_observed=camp.first_seen, last_observed=camp.last_seen,
                    number_observed=max(1, min(camp.exchanges, 999_999_999)), object_refs=[s.id for s in scos], **common,
                )
            )  # fmt: skip
    return stix2.Bundle(objects=objects, allow_custom=True)


def _confidence(camp: Campaign, carriers: int, total: int) -> int:
    return max(1, round(100 * camp.risk * min(1.0, carriers / max(total, 1))))


def _artifact_objects(
    a: Artifact, camp: Campaign, cid: str, key: ConsortiumKey | None, clear: bool, valid: dt.timedelta,
    common: dict[str, Any], ident: str, scos: list[Any],
) -> Iterable[Any]:  # fmt: skip
    keyed = not clear or a.kind in ALWAYS_KEYED
    ext: dict[str, Any] = {}
    if keyed:
        if key is None:
            raise ConfigError("a consortium key is needed: pass --key-file FILE or set DISTILLGUARD_INTEL_KEY")
        digest = key.digest_canonical(a.kind, a.value)
        pattern = _keyed_pattern(a.kind, digest, key.epoch)
        ext = {extension.EXTENSION_ID: {
            "extension_type": "property-extension", "kind": a.kind, "algorithm": "hmac-sha256", "epoch": key.epoch,
            "key_id": key.key_id, "digest": digest, "carriers": a.carriers, "carriers_total": a.carriers_total,
            "campaign": camp.id}}  # fmt: skip
        name = f"keyed {_LABEL[a.kind]} (epoch {key.epoch})"
        seed = digest
    else:
        pattern = _clear_pattern(a.kind, a.value)
        name = f"{_LABEL[a.kind]} {a.value}"
        seed = a.value
        if a.kind in ("ipv4-addr", "ipv6-addr"):
            cls = stix2.IPv4Address if a.kind == "ipv4-addr" else stix2.IPv6Address
            scos.append(cls(value=a.value))
    iid = _id("indicator", cid, a.kind, seed)
    yield stix2.Indicator(
        id=iid, name=name, pattern=pattern, pattern_type="stix", indicator_types=["malicious-activity"],
        description=f"Held by {a.carriers:,} accounts of campaign {camp.id} ({a.carriers_total:,} in the producer's log).",
        valid_from=a.first_seen, valid_until=a.last_seen + valid, confidence=_confidence(camp, a.carriers, a.carriers_total),
        extensions=ext or None, allow_custom=True, **common,
    )  # fmt: skip
    yield stix2.Relationship(id=_id("relationship", iid, "indicates"), relationship_type="indicates", source_ref=iid, target_ref=cid, **common)
    yield stix2.Sighting(
        id=_id("sighting", iid), sighting_of_ref=iid, first_seen=a.first_seen, last_seen=max(a.last_seen, a.first_seen),
        count=max(1, min(a.exchanges or a.carriers, 999_999_999)), where_sighted_refs=[ident], **common,
    )  # fmt: skip


def _template_objects(
    t: Template, camp: Campaign, cid: str, key: ConsortiumKey | None, valid: dt.timedelta, common: dict[str, Any], ident: str
) -> Iterable[Any]:
    if key is None:
        raise ConfigError("a consortium key is needed for template sketches: pass --key-file FILE or set DISTILLGUARD_INTEL_KEY")
    sk = sketch(t.text, key)
    if sk is None:
        return
    sid = uuid.uuid5(_NS, json.dumps(sk)).hex
    iid = _id("indicator", cid, "template", sid)
    ext = {extension.EXTENSION_ID: {
        "extension_type": "property-extension", "kind": "template", "algorithm": "keyed-minhash-blake2b",
        "epoch": key.epoch, "key_id": key.key_id, "sketch": sk, "num_perm": NUM_PERM,
        "match_threshold": MATCH_THRESHOLD, "carriers": t.carriers, "campaign": camp.id}}  # fmt: skip
    yield stix2.Indicator(
        id=iid, name=f"keyed prompt-template sketch (epoch {key.epoch})", indicator_types=["malicious-activity"],
        pattern=f"[x-distillguard-template:sketch_id = '{sid}' AND x-distillguard-template:epoch = {key.epoch}]",
        pattern_type="stix", description=f"{t.label}, sent by {t.carriers:,} accounts of campaign {camp.id}.",
        valid_from=t.first_seen, valid_until=t.last_seen + valid, confidence=_confidence(camp, 1, 1),
        extensions=ext, allow_custom=True, **common,
    )  # fmt: skip
    yield stix2.Relationship(id=_id("relationship", iid, "indicates"), relationship_type="indicates", source_ref=iid, target_ref=cid, **common)
    yield stix2.Sighting(id=_id("sighting", iid), sighting_of_ref=iid, first_seen=t.first_seen, last_seen=t.last_seen,
                         count=max(1, min(t.exchanges, 999_999_999)), where_sighted_refs=[ident], **common)  # fmt: skip


def write_bundle(bundle: stix2.Bundle, out: Path) -> int:
    """Write ``bundle`` as JSON; returns its size in bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    text = bundle.serialize(pretty=False)
    out.write_text(text)
    return len(text.encode())
