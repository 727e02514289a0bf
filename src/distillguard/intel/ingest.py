"""Peers' STIX bundles into one intel file: clear values, keyed digests and sketches, each
with the bundle and the producer it came from.

Read: our own indicators (the keyed extension, :mod:`.extension`) and plain STIX 2.1
indicators from other tools whose pattern is one comparison, or comparisons joined by
``OR``, on ``ipv4-addr:value`` / ``ipv6-addr:value`` (``=`` an address, ``ISSUBSET`` a
prefix), ``email-addr:value`` (``=`` an address, ``LIKE '%@domain'`` a mail domain) or
``domain-name:value`` (a domain a peer calls malicious, matched against account mail
domains). Anything else is counted as skipped, never guessed at; revoked and expired
indicators are left out.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distillguard.errors import ConfigError
from distillguard.intel.extension import EXTENSION_ID
from distillguard.intel.keyed import canonical

__all__ = ["IntelSet", "Source", "ingest"]

VERSION = 1
_CMP = re.compile(
    r"(ipv4-addr|ipv6-addr|email-addr|domain-name|x-distillguard-device):(?:value|fingerprint)\s*(=|ISSUBSET|LIKE)\s*'((?:[^'\\]|\\.)*)'"
)
_ONLY = re.compile(r"^\[\s*(?:" + _CMP.pattern + r")(?:\s+OR\s+" + _CMP.pattern + r")*\s*\]$")


@dataclass(frozen=True)
class Source:
    """Where an entry came from: what the evidence and a reviewer are told."""

    bundle: str
    producer: str
    indicator: str
    confidence: int


@dataclass
class IntelSet:
    """Imported intel. ``clear[kind][value]``, ``keyed[epoch][digest]`` (the digest hashes the
    kind in), ``sketches`` (epoch, sketch, threshold, source)."""

    clear: dict[str, dict[str, Source]] = field(default_factory=dict)
    keyed: dict[int, dict[str, tuple[str, Source]]] = field(default_factory=dict)
    sketches: list[tuple[int, list[int], float, Source]] = field(default_factory=list)
    key_ids: set[str] = field(default_factory=set)
    stats: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(map(len, self.clear.values())) + sum(map(len, self.keyed.values())) + len(self.sketches)

    def to_dict(self) -> dict[str, Any]:
        def src(s: Source) -> list[Any]:
            return [s.bundle, s.producer, s.indicator, s.confidence]

        return {
            "version": VERSION,
            "key_ids": sorted(self.key_ids),
            "stats": self.stats,
            "clear": {k: {v: src(s) for v, s in sorted(d.items())} for k, d in sorted(self.clear.items())},
            "keyed": {str(e): {h: [kind, *src(s)] for h, (kind, s) in sorted(d.items())} for e, d in sorted(self.keyed.items())},
            "sketches": [[e, sk, th, *src(s)] for e, sk, th, s in self.sketches],
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path | str) -> IntelSet:
        """Read an intel file (``distillguard intel import --out``); a wrong file is a ConfigError."""
        p = Path(path)
        try:
            doc = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"intel file {p}: cannot read it ({exc})") from None
        if not isinstance(doc, dict) or doc.get("version") != VERSION:
            raise ConfigError(f"intel file {p}: not a distillguard intel file (version {VERSION}); make it with `distillguard intel import`")
        out = cls(key_ids=set(doc.get("key_ids", [])), stats=doc.get("stats", {}))
        for kind, d in doc.get("clear", {}).items():
            out.clear[kind] = {v: Source(*s) for v, s in d.items()}
        for e, d in doc.get("keyed", {}).items():
            out.keyed[int(e)] = {h: (s[0], Source(*s[1:])) for h, s in d.items()}
        out.sketches = [(int(r[0]), list(r[1]), float(r[2]), Source(*r[3:])) for r in doc.get("sketches", [])]
        return out


def _plain(pattern: str) -> list[tuple[str, str]] | None:
    """``(kind, canonical value)`` of a simple pattern, or None when it is not one."""
    if not _ONLY.match(pattern.strip()):
        return None
    out = []
    for obj, op, raw in _CMP.findall(pattern):
        value = raw.replace("\\'", "'").replace("\\\\", "\\")
        if obj in ("ipv4-addr", "ipv6-addr"):
            kind = obj if op == "=" else obj.replace("addr", "prefix") if op == "ISSUBSET" else None
        elif obj == "email-addr":
            kind = "email-addr" if op == "=" else None
            if op == "LIKE" and value.startswith("%@") and "%" not in value[2:] and "_" not in value[2:]:
                kind, value = "email-domain", value[2:]
        elif obj == "x-distillguard-device":
            kind = "device-fp" if op == "=" else None
        else:
            kind = "email-domain" if op == "=" else None
        norm = canonical(kind, value) if kind else None
        if kind is None or norm is None:
            return None
        out.append((kind, norm))
    return out


def _when(s: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00")) if s else None


def ingest(paths: list[Path], now: dt.datetime | None = None, into: IntelSet | None = None, keep_expired: bool = False) -> IntelSet:
    """Read every bundle in ``paths`` (a bundle, or a JSON list of objects, as TAXII returns them).

    ``keep_expired``: keep indicators past ``valid_until`` (to hunt an old log with what was
    known then)."""
    now = now or dt.datetime.now(dt.UTC)
    out = into or IntelSet()
    stats = {k: out.stats.get(k, 0) for k in ("indicators", "keyed", "clear", "sketches", "skipped", "expired", "revoked")}
    for path in paths:
        try:
            doc = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"bundle {path}: cannot read it as JSON ({exc})") from None
        objects = doc.get("objects", []) if isinstance(doc, dict) else doc if isinstance(doc, list) else None
        if objects is None:
            raise ConfigError(f"bundle {path}: not a STIX bundle (no objects)")
        names = {o["id"]: o.get("name", o["id"]) for o in objects if isinstance(o, dict) and o.get("type") == "identity"}
        for o in objects:
            if not isinstance(o, dict) or o.get("type") != "indicator":
                continue
            stats["indicators"] += 1
            if o.get("revoked"):
                stats["revoked"] += 1
                continue
            until = _when(o.get("valid_until"))
            if until is not None and until < now and not keep_expired:
                stats["expired"] += 1
                continue
            producer = names.get(o.get("created_by_ref", ""), o.get("created_by_ref", "unknown producer"))
            src = Source(str(path), str(producer), o["id"], int(o.get("confidence", 50)))
            ext = (o.get("extensions") or {}).get(EXTENSION_ID)
            if ext is not None:
                epoch, kind = int(ext["epoch"]), str(ext["kind"])
                out.key_ids.add(str(ext["key_id"]))
                if ext.get("algorithm") == "hmac-sha256":
                    out.keyed.setdefault(epoch, {})[str(ext["digest"])] = (kind, src)
                    stats["keyed"] += 1
                elif ext.get("algorithm") == "keyed-minhash-blake2b":
                    out.sketches.append((epoch, [int(x) for x in ext["sketch"]], float(ext["match_threshold"]), src))
                    stats["sketches"] += 1
                else:
                    stats["skipped"] += 1
                continue
            if o.get("pattern_type", "stix") != "stix":
                stats["skipped"] += 1
                continue
            found = _plain(str(o.get("pattern", "")))
            if found is None:
                stats["skipped"] += 1
                continue
            for kind, value in found:
                out.clear.setdefault(kind, {})[value] = src
            stats["clear"] += 1
    out.stats = stats
    return out
