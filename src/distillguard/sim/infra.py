"""Identifiers, networks, devices and registration data, drawn the same way for everyone.

Why one module: every identifier (account, key, request, device fingerprint,
phone and payment hashes) comes from the same seeded generators whatever the
archetype, so no id format, length or order can give a label away; attackers
differ only in *how they reuse* these artifacts. ASNs are real numbers of the
right kind (hosting, residential broadband, mobile, university, business
transit); IP blocks inside them are synthetic but consistent (a /24 belongs to
one ASN).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

__all__ = ["ASNS", "COUNTRIES", "Devices", "Nets", "rand_ids", "rand_words"]

# Real ASNs by kind. Hosting/cloud: AWS, AWS-2, Google, Google Cloud, Microsoft, DigitalOcean,
# OVH, Hetzner, Linode/Akamai, Vultr, Alibaba, Tencent, Oracle, Leaseweb, Contabo, M247.
DATACENTER = (16509, 14618, 15169, 396982, 8075, 14061, 16276, 24940, 63949, 20473, 45102, 132203, 31898,
              60781, 51167, 9009)
UNIVERSITY = {"US": (3, 32, 25, 87, 3582), "GB": (786,), "DE": (680,), "CN": (4538,), "IN": (55824,),
              "CH": (559,), "JP": (2907,), "CA": (271,), "AU": (7575,), "FR": (2200,)}
BUSINESS = (174, 3356, 6461, 1299, 2914, 6939, 3257, 701)
# country: (utc offset hours, weight, residential ASNs, mobile ASNs)
COUNTRIES: dict[str, tuple[float, float, tuple[int, ...], tuple[int, ...]]] = {
    "US": (-6.0, 30, (7922, 7018, 701, 20115, 22773, 209), (21928, 6167, 20057)),
    "IN": (5.5, 10, (9498, 24560, 45609), (55836, 45271)),
    "GB": (0.0, 6, (2856, 5089, 5607), (12576, 25135)),
    "DE": (1.0, 6, (3320, 3209, 6805), (29562,)),
    "FR": (1.0, 4, (3215, 12322, 5410), (51207,)),
    "BR": (-3.0, 5, (28573, 18881, 8167), (26599,)),
    "JP": (9.0, 5, (4713, 2516, 17676), (9605,)),
    "KR": (9.0, 3, (4766, 9318, 3786), (17858,)),
    "CA": (-5.0, 4, (812, 577, 6327), (22652,)),
    "AU": (10.0, 3, (1221, 4804, 7545), (4804,)),
    "SG": (8.0, 2, (9506, 4773), (10091,)),
    "NL": (1.0, 2, (1136, 33915), (50266,)),
    "ES": (1.0, 2, (3352, 12479), (12430,)),
    "ID": (7.0, 3, (7713, 17974), (23693,)),
    "MX": (-6.0, 2, (8151, 28548), (28403,)),
    "PL": (1.0, 2, (5617, 12741), (29314,)),
    "VN": (7.0, 2, (45899, 7552), (131445,)),
    "TR": (3.0, 2, (9121, 47331), (16135,)),
    "HK": (8.0, 2, (4760, 9269), (10103,)),
    "MY": (8.0, 1, (4788, 9930), (45960,)),
    "CH": (1.0, 1, (3303, 6730), (15796,)),
    "CN": (8.0, 2, (4134, 4837, 9808), (9808, 56040)),
}
ASNS = {"datacenter": DATACENTER, "business": BUSINESS,
        "university": tuple(a for v in UNIVERSITY.values() for a in v)}

WEBMAIL = ("gmail.com", "outlook.com", "hotmail.com", "yahoo.com", "icloud.com", "proton.me", "qq.com",
           "163.com", "gmx.de", "yandex.ru", "naver.com", "mail.ru", "live.com", "aol.com", "web.de")
WEBMAIL_W = np.array([40, 12, 6, 6, 6, 3, 3, 2, 2, 2, 2, 1, 2, 1, 1], float)

_SYL = ("ka", "lo", "mi", "ra", "ne", "to", "sa", "vi", "da", "ren", "mar", "tel", "gen", "cor", "lux",
        "nova", "ax", "ion", "ber", "lin", "qu", "zen", "tri", "el", "on", "is", "ta", "ver", "sol", "dyn",
        "par", "fin", "hal", "mer", "ost", "pin", "rol", "sig", "tam", "ul", "wen", "yor", "bri", "cal")
_CO_SUFFIX = ("labs", "tech", "systems", "data", "ai", "soft", "works", "digital", "cloud", "analytics",
              "group", "solutions", "io", "dev", "consulting", "partners", "networks", "bio", "capital")
_TLD = ("com", "com", "com", "io", "ai", "co", "net", "de", "co.uk", "fr", "sg", "jp", "in", "com.br")
_UNI = ("edu", "edu", "ac.uk", "edu.au", "ac.jp", "edu.cn", "de", "ch", "ca", "fr")

# SDK and tool user agents: (template, endpoint family) - versions are drawn per device.
_UA = (
    ("anthropic-python/0.{a}.{b}", "messages"),
    ("anthropic-typescript/0.{a}.{b}", "messages"),
    ("OpenAI/Python 1.{a}.{b}", "chat"),
    ("OpenAI/JS 4.{a}.{b}", "chat"),
    ("python-httpx/0.{c}.{b}", "either"),
    ("python-requests/2.{a}.{b}", "either"),
    ("curl/8.{c}.{b}", "either"),
    ("Go-http-client/1.1", "either"),
    ("axios/1.{c}.{b}", "either"),
    ("langchain-python/0.{c}.{b}", "chat"),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/13{c}.0.0.0 Safari/537.36", "either"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/13{c}.0.0.0 Safari/537.36", "either"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:13{c}.0) Gecko/20100101 Firefox/13{c}.0", "either"),
)

_ALNUM = np.frombuffer(b"0123456789abcdefghijklmnopqrstuvwxyz", dtype=np.uint8)
_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def rand_ids(rng: np.random.Generator, n: int, prefix: str, length: int, hexa: bool = False) -> pa.Array:
    """``n`` random ids ``prefix + length chars``, vectorised (no per-row Python)."""
    alphabet = _HEX if hexa else _ALNUM
    codes = alphabet[rng.integers(0, len(alphabet), size=(n, length), dtype=np.uint8)]
    pre = np.frombuffer(prefix.encode(), dtype=np.uint8)
    buf = np.concatenate([np.broadcast_to(pre, (n, len(pre))), codes], axis=1)
    width = len(pre) + length
    raw = np.ascontiguousarray(buf).view(f"S{width}").ravel()
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(raw.tobytes()))


def rand_words(rng: np.random.Generator, n: int, lo: int = 2, hi: int = 3) -> list[str]:
    """Pronounceable random names (local parts, company and university names)."""
    k = rng.integers(lo, hi + 1, size=n)
    syl = rng.integers(0, len(_SYL), size=(n, hi))
    return ["".join(_SYL[j] for j in syl[i, : k[i]]) for i in range(n)]


def company_domains(rng: np.random.Generator, n: int) -> list[str]:
    """Plausible corporate domains (benign companies and attacker fronts alike)."""
    names = rand_words(rng, n, 2, 3)
    suf = rng.integers(0, len(_CO_SUFFIX), n)
    tld = rng.integers(0, len(_TLD), n)
    style = rng.random(n)
    out = []
    for i in range(n):
        if style[i] < 0.45:
            out.append(f"{names[i]}.{_TLD[tld[i]]}")
        elif style[i] < 0.8:
            out.append(f"{names[i]}{_CO_SUFFIX[suf[i]]}.{_TLD[tld[i]]}")
        else:
            out.append(f"{names[i]}-{_CO_SUFFIX[suf[i]]}.{_TLD[tld[i]]}")
    return out


def university_domains(rng: np.random.Generator, n: int) -> list[str]:
    names = rand_words(rng, n, 2, 3)
    tld = rng.integers(0, len(_UNI), n)
    return [f"{names[i]}.{_UNI[tld[i]]}" for i in range(n)]


def emails(rng: np.random.Generator, domains: list[str]) -> list[str]:
    """Addresses at the given domains; local parts drawn alike for every account."""
    n = len(domains)
    first = rand_words(rng, n, 2, 2)
    last = rand_words(rng, n, 1, 2)
    style = rng.integers(0, 4, n)
    num = rng.integers(1, 9999, n)
    out = []
    for i in range(n):
        s = style[i]
        local = (f"{first[i]}.{last[i]}", f"{first[i][0]}{last[i]}", f"{first[i]}{num[i]}", f"{first[i]}_{last[i]}{num[i] % 100}")[s]
        out.append(f"{local}@{domains[i]}")
    return out


def webmail(rng: np.random.Generator, n: int) -> list[str]:
    idx = rng.choice(len(WEBMAIL), size=n, p=WEBMAIL_W / WEBMAIL_W.sum())
    return [WEBMAIL[i] for i in idx]


def countries(rng: np.random.Generator, n: int, only: tuple[str, ...] | None = None) -> list[str]:
    keys = list(only) if only else list(COUNTRIES)
    w = np.array([COUNTRIES[k][1] for k in keys], float)
    idx = rng.choice(len(keys), size=n, p=w / w.sum())
    return [keys[i] for i in idx]


def tz_of(country: list[str], rng: np.random.Generator) -> np.ndarray:
    """UTC offset (hours) per account; US/CA/BR/AU/CN span several zones or none, jitter ±1-3 h there."""
    base = np.array([COUNTRIES[c][0] for c in country])
    wide = np.isin(np.array(country), ["US", "CA", "BR", "AU", "MX", "ID"])
    base = base + np.where(wide, rng.integers(-2, 2, len(country)), 0)
    return base


@dataclass
class Nets:
    """Growable pool of client networks: ``ip``, ``/24`` prefix and ASN per entry.

    Each ASN owns a few /16 blocks drawn once from public unicast space, so a /24
    always maps to one ASN, as in the real routing table.
    """

    rng: np.random.Generator
    ip: list[str] = field(default_factory=list)
    prefix: list[str] = field(default_factory=list)
    asn: list[int] = field(default_factory=list)
    _blocks: dict[int, np.ndarray] = field(default_factory=dict)

    def _blocks_of(self, asn: int) -> np.ndarray:
        b = self._blocks.get(asn)
        if b is None:
            first = self.rng.choice(_PUBLIC_FIRST, size=4)
            b = np.stack([first, self.rng.integers(0, 256, 4)], axis=1)
            self._blocks[asn] = b
        return b

    def add_many(self, asns: np.ndarray, prefix_of: np.ndarray | None = None) -> np.ndarray:
        """One address per entry of ``asns``; entries with equal ``prefix_of`` share a /24."""
        n = len(asns)
        start = len(self.ip)
        ab = np.empty((n, 2), np.int64)
        for a in np.unique(asns):
            m = asns == a
            blocks = self._blocks_of(int(a))
            ab[m] = blocks[self.rng.integers(0, len(blocks), int(m.sum()))]
        c = self.rng.integers(0, 256, n)
        if prefix_of is not None:
            _, first = np.unique(prefix_of, return_index=True)
            _, inv = np.unique(prefix_of, return_inverse=True)
            ab = ab[first][inv]
            c = c[first][inv]
        d = self.rng.integers(1, 255, n)
        pre = [f"{x}.{y}.{z}" for x, y, z in zip(ab[:, 0].tolist(), ab[:, 1].tolist(), c.tolist(), strict=True)]
        self.ip += [f"{p}.{q}" for p, q in zip(pre, d.tolist(), strict=True)]
        self.prefix += [f"{p}.0/24" for p in pre]
        self.asn += asns.astype(np.int64).tolist()
        return np.arange(start, start + n)

    def add(self, asn: int, n: int = 1, same_prefix: bool = False) -> np.ndarray:
        """``n`` new addresses in ``asn`` (all in one /24 when ``same_prefix``)."""
        return self.add_many(np.full(n, asn), np.zeros(n) if same_prefix else None)

    def residential_asns(self, country: list[str] | np.ndarray, mobile_share: float = 0.25) -> np.ndarray:
        """A home or mobile ASN of each given country (vectorised over accounts)."""
        ctry = np.asarray(country)
        out = np.empty(len(ctry), np.int64)
        mob = self.rng.random(len(ctry)) < mobile_share
        for c in np.unique(ctry):
            m = ctry == c
            _, _, res, mobs = COUNTRIES[str(c)]
            k = int(m.sum())
            r = np.asarray(res)[self.rng.integers(0, len(res), k)]
            mm = np.asarray(mobs)[self.rng.integers(0, len(mobs), k)]
            out[m] = np.where(mob[m], mm, r)
        return out

    def residential(self, country: str, n: int = 1, mobile_share: float = 0.25) -> np.ndarray:
        return self.add_many(self.residential_asns([country] * n, mobile_share))

    def datacenter(self, n: int = 1, asns: tuple[int, ...] = DATACENTER, same_prefix: bool = False) -> np.ndarray:
        pick = np.asarray(asns)[self.rng.integers(0, len(asns), n)]
        if same_prefix:
            pick[:] = pick[0]
            return self.add_many(pick, np.zeros(n))
        return self.add_many(pick)

    def arrays(self) -> tuple[pa.Array, pa.Array, pa.Array]:
        return pa.array(self.ip, pa.string()), pa.array(self.prefix, pa.string()), pa.array(self.asn, pa.int64())


_PUBLIC_FIRST = np.array([a for a in range(11, 224) if a not in (100, 127, 169, 172, 192, 198, 203)])


@dataclass
class Devices:
    """Growable pool of client devices: fingerprint (JA4-like), user agent and API family."""

    rng: np.random.Generator
    fp: list[str] = field(default_factory=list)
    ua: list[str] = field(default_factory=list)
    family: list[int] = field(default_factory=list)  # 0 messages, 1 chat, 2 either

    def add(self, n: int, ua_weights: np.ndarray | None = None) -> np.ndarray:
        """``n`` new devices; the user agent mix is a behaviour (people vs scripts)."""
        start = len(self.fp)
        w = ua_weights if ua_weights is not None else np.ones(len(_UA))
        kinds = self.rng.choice(len(_UA), size=n, p=w / w.sum())
        fps = rand_ids(self.rng, n, "", 24, hexa=True).to_pylist()
        tls = np.array(["t13d1516h2", "t13d1517h2", "t13d1715h2", "t12d1209h1", "t13d0912h2"])[
            self.rng.integers(0, 5, n)]
        va, vb, vc = (self.rng.integers(20, 60, n), self.rng.integers(0, 12, n), self.rng.integers(0, 9, n))
        fam = {"messages": 0, "chat": 1, "either": 2}
        for i in range(n):
            h = fps[i]
            self.fp.append(f"{tls[i]}_{h[:12]}_{h[12:]}")
            tpl, f = _UA[kinds[i]]
            self.ua.append(tpl.format(a=va[i], b=vb[i], c=vc[i]))
            self.family.append(fam[f])
        return np.arange(start, start + n)

    def arrays(self) -> tuple[pa.Array, pa.Array, np.ndarray]:
        return pa.array(self.fp, pa.string()), pa.array(self.ua, pa.string()), np.asarray(self.family, np.int8)


UA_HUMAN = np.array([4, 2, 4, 2, 1, 1, 0.5, 0.3, 0.5, 1, 2, 2, 0.6])
"""User-agent mix of people calling the API (SDKs first, some browsers/tools)."""
UA_SCRIPT = np.array([2, 0.5, 3, 0.5, 3, 3, 1.5, 1.5, 0.5, 1, 0.2, 0.2, 0.1])
"""User-agent mix of scripted clients (more raw HTTP libraries)."""
