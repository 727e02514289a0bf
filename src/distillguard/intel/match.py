"""Matching what we see against imported intel: clear values as they are, keyed ones by
hashing what we see with the consortium key, once per epoch the intel holds.

Shared by the gateway (a request's address, network, device and the account's mail
domain, :meth:`IntelMatcher.request`) and the hunt's prior evidence (every artifact of
every account, :mod:`.prior`). Networks are hashed the way exports hash them: the /24 of
an IPv4 address and the /48 of an IPv6 one (the log's ``ip_prefix``); clear prefixes of
any length match.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence

import numpy as np

from distillguard.errors import ConfigError
from distillguard.intel.ingest import IntelSet, Source
from distillguard.intel.keyed import ConsortiumKey, canonical, ip_kind
from distillguard.intel.sketch import sketch_many

__all__ = ["REASONS", "IntelMatcher"]

REASONS = {"ip": "intel_ip", "prefix": "intel_prefix", "device": "intel_device", "email_domain": "intel_email_domain",
           "template": "intel_template"}
"""The gateway's reason code per kind of match."""


class IntelMatcher:
    """Lookups against one :class:`IntelSet` with one key (None when it holds no keyed entry)."""

    def __init__(self, intel: IntelSet, key: ConsortiumKey | None) -> None:
        if (intel.keyed or intel.sketches) and key is None:
            raise ConfigError("the intel holds keyed indicators: a consortium key is needed (--key-file or $DISTILLGUARD_INTEL_KEY)")
        if key is not None and intel.key_ids and key.key_id not in intel.key_ids:
            raise ConfigError(
                f"the consortium key (key_id {key.key_id}) is not the one the intel was made with "
                f"({', '.join(sorted(intel.key_ids))}): its keyed indicators could never match"
            )
        self.intel, self.key = intel, key
        self.epochs = sorted(intel.keyed)
        self._clear_nets = {
            k: [ipaddress.ip_network(v) for v in intel.clear.get(k, {})] for k in ("ipv4-prefix", "ipv6-prefix")
        }
        self.lookup = functools.lru_cache(maxsize=65536)(self._lookup)

    def _lookup(self, kind: str, value: str) -> Source | None:
        """The source naming ``value`` as ``kind`` (canonicalised here), clear or keyed."""
        norm = canonical(kind, value)
        if norm is None:
            return None
        hit = self.intel.clear.get(kind, {}).get(norm)
        if hit is not None:
            return hit
        if self.key is not None:
            for e in self.epochs:
                got = self.intel.keyed[e].get(self.key.digest_canonical(kind, norm, e))
                if got is not None and got[0] == kind:
                    return got[1]
        return None

    def ip(self, ip: str | None) -> tuple[str, Source] | None:
        """``("ip" | "prefix", source)`` for an address on the intel, or None."""
        kind = ip_kind(ip) if ip else None
        if ip is None or kind is None:
            return None
        addr = ipaddress.ip_address(canonical(kind, ip) or ip)
        hit = self.lookup(kind, str(addr))
        if hit is not None:
            return "ip", hit
        pkind = kind.replace("-addr", "-prefix")
        net = ipaddress.ip_network((addr, 24 if addr.version == 4 else 48), strict=False)
        hit = self.lookup(pkind, str(net))
        if hit is not None:
            return "prefix", hit
        for n in self._clear_nets[pkind]:
            if addr in n:
                return "prefix", self.intel.clear[pkind][str(n)]
        return None

    def request(self, ip: str | None, device_fp: str | None, email_domain: str | None) -> tuple[str, Source] | None:
        """The first match of a request (address, network, device, then mail domain and its parents)."""
        got = self.ip(ip)
        if got is not None:
            return got
        if device_fp:
            hit = self.lookup("device-fp", device_fp)
            if hit is not None:
                return "device", hit
        if email_domain:
            parts = email_domain.lower().strip(".").split(".")
            for i in range(len(parts) - 1):  # a listed domain also covers its subdomains
                hit = self.lookup("email-domain", ".".join(parts[i:]))
                if hit is not None:
                    return "email_domain", hit
        return None

    def template(self, text: str) -> Source | None:
        """The source of a template sketch ``text`` matches (same key, same epoch), or None."""
        return self.templates([text])[0]

    def templates(self, texts: Sequence[str | None]) -> list[Source | None]:
        """Per text, the source of the imported template sketch it matches best (estimated
        Jaccard at or above the sketch's threshold), or None. Sketched once per epoch, all
        texts at a time; compared in chunks of at most 64 MiB."""
        out: list[Source | None] = [None] * len(texts)
        if self.key is None or not self.intel.sketches or not texts:
            return out
        best = np.zeros(len(texts))
        for epoch in sorted({e for e, *_ in self.intel.sketches}):
            rows = [(sk, th, src) for e, sk, th, src in self.intel.sketches if e == epoch]
            theirs = np.asarray([sk for sk, _, _ in rows], dtype=np.uint32)
            thresholds = np.asarray([th for _, th, _ in rows])
            mine, ok = sketch_many(texts, self.key, epoch)
            step = max(1, (1 << 26) // max(1, theirs.size))
            for lo in range(0, len(texts), step):
                sim = (mine[lo : lo + step, None, :] == theirs[None, :, :]).mean(axis=2)
                sim[~ok[lo : lo + step]] = 0.0
                sim[sim < thresholds[None, :]] = 0.0
                j = sim.argmax(axis=1)
                top = sim[np.arange(len(j)), j]
                for i in np.flatnonzero(top > best[lo : lo + step]):
                    best[lo + i], out[lo + i] = top[i], rows[j[i]][2]
        return out
