"""The STIX extension for what STIX 2.1 lacks: keyed digests and keyed template sketches.

A keyed indicator cannot name its value in a standard pattern (``[ipv4-addr:value =
'…']`` needs the address), so its pattern is ``[x-distillguard-keyed:digest = '…' AND
x-distillguard-keyed:kind = '…' AND x-distillguard-keyed:epoch = N]``: valid STIX that no
tool mistakes for an address. The same facts, plus what a partner needs to match, sit in a
*property extension* on the indicator, published in every bundle as an
``extension-definition`` whose ``schema`` is the JSON Schema below (:data:`SCHEMA`), so
the bundle documents itself. ``docs/intel.md`` describes it for people.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

__all__ = ["AUTHOR_ID", "EXTENSION_ID", "EXTENSION_NAME", "EXTENSION_VERSION", "SCHEMA", "author", "definition"]

EXTENSION_NAME = "distillguard keyed indicator"
EXTENSION_VERSION = "1.0.0"
# Fixed, so that every producer's bundles name the same extension (UUIDv5 of its name).
_NS = uuid.UUID("00abedb4-aa42-466c-9c01-fed23315a9b7")


def _v4(name: str) -> str:
    return str(uuid.UUID(bytes=uuid.uuid5(_NS, name).bytes, version=4))


EXTENSION_ID = "extension-definition--" + _v4("distillguard/intel/keyed-indicator/v1")

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "distillguard keyed indicator (STIX 2.1 property extension on indicator)",
    "description": (
        "An identifier shared without its value. digest = hex HMAC-SHA-256(epoch_key, kind || 0x00 || canonical value), "
        "epoch_key = HMAC-SHA-256(consortium key, 'distillguard-intel/v1/epoch/' || epoch). Canonical values: IPs in "
        "compressed form (IPv4-mapped IPv6 as IPv4), prefixes as network/length, e-mail and domains lower case, phones "
        "E.164. A template is a keyed MinHash: each content word (lower case, digit runs as 0, punctuation and filler "
        "words removed) hashed by keyed BLAKE2b-64 (key = epoch_key, person 'dg-intel-words'), num_perm minima of "
        "(a*h+b mod 2^64)>>32 with (a, b) drawn from numpy's default_rng seeded by HMAC-SHA-256(epoch_key, "
        "'minhash-permutations')[:16] (little-endian); a prompt matches when the share of equal minima is at least "
        "match_threshold. key_id = HMAC-SHA-256(consortium key, 'distillguard-intel/v1/key-id')[:8] in hex."
    ),
    "type": "object",
    "required": ["extension_type", "kind", "algorithm", "epoch", "key_id"],
    "properties": {
        "extension_type": {"const": "property-extension"},
        "kind": {"enum": ["ipv4-addr", "ipv6-addr", "ipv4-prefix", "ipv6-prefix", "email-addr", "email-domain",
                          "phone", "payment", "device-fp", "template"]},
        "algorithm": {"enum": ["hmac-sha256", "keyed-minhash-blake2b"]},
        "epoch": {"type": "integer", "minimum": 0},
        "key_id": {"type": "string", "pattern": "^[0-9a-f]{16}$"},
        "digest": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
        "sketch": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 4294967295}},
        "num_perm": {"type": "integer", "minimum": 1},
        "match_threshold": {"type": "number", "minimum": 0, "maximum": 1},
        "carriers": {"type": "integer", "minimum": 0, "description": "campaign accounts holding the value"},
        "carriers_total": {"type": "integer", "minimum": 0, "description": "accounts in the producer's log holding it"},
        "campaign": {"type": "string", "description": "the producer's campaign id (C001...)"},
    },
    "allOf": [
        {"if": {"properties": {"algorithm": {"const": "hmac-sha256"}}}, "then": {"required": ["digest"]}},
        {"if": {"properties": {"algorithm": {"const": "keyed-minhash-blake2b"}}},
         "then": {"required": ["sketch", "num_perm", "match_threshold"]}},
    ],
}


AUTHOR_ID = "identity--" + _v4("distillguard")
CREATED = "2026-05-01T00:00:00.000Z"


def author() -> dict[str, Any]:
    """The identity that defines the extension: the project, the same in every bundle."""
    return {"type": "identity", "spec_version": "2.1", "id": AUTHOR_ID, "created": CREATED, "modified": CREATED,
            "name": "distillguard", "identity_class": "system",
            "description": "The open-source distillation-attack detector that defines the keyed-indicator extension."}  # fmt: skip


def definition() -> dict[str, Any]:
    """The ``extension-definition`` object: fixed id, author and time, so that every producer's
    bundles carry the identical object and a TAXII collection holds one version of it."""
    return {
        "type": "extension-definition",
        "spec_version": "2.1",
        "id": EXTENSION_ID,
        "created_by_ref": AUTHOR_ID,
        "created": CREATED,
        "modified": CREATED,
        "name": EXTENSION_NAME,
        "description": "Identifiers shared as keyed digests and prompt templates as keyed MinHash sketches.",
        "schema": json.dumps(SCHEMA, separators=(",", ":")),
        "version": EXTENSION_VERSION,
        "extension_types": ["property-extension"],
    }
