"""Privacy by construction: the consortium key, its epochs, and keyed digests of identifiers.

Indicators name people's addresses, mail domains, phones, cards and devices. Shared in
clear they would be personal data handed to every partner; shared as a plain hash they
still would be, since IPv4 space (2^32) or a phone plan's numbers can be hashed in
full in minutes (:mod:`distillguard.intel.sweep` does it, as an attacker would). So every
identifier leaves as ``HMAC-SHA-256(epoch_key, kind || 0x00 || canonical value)``, where
``epoch_key = HMAC-SHA-256(consortium key, "distillguard-intel/v1/epoch/<N>")``: a partner
holding the consortium key hashes what it sees the same way and compares; nobody else
can test a guess.

Epochs and rotation. The epoch number travels with every digest (in the indicator's
extension and pattern). Partners agree on a schedule (e.g. a new epoch each month): a
digest from epoch N matches only values hashed for epoch N, so indicators of different
epochs cannot be joined into one long history by anyone, and a leaked *epoch* key exposes
one epoch only. A leaked *consortium* key exposes every epoch: replace the key (a new
``key_id``) and re-export. Within an epoch everyone matches; across a rotation, the
importer keeps digests per epoch and the gateway hashes each request once per epoch it
holds (a handful), so old indicators keep working until they expire (``valid_until``).

What counts as personal (never in clear unless ``--clear``): IP addresses and prefixes,
e-mail addresses, phones, payment fingerprints, device fingerprints, and e-mail domains
other than the big free-mail providers'. A free-mail domain (gmail.com, qq.com, ...) is
not personal, but it is not evidence either (every population uses them), so it is
never exported at all (:data:`FREE_MAIL`). A corporate or private domain is weakly
personal (it can name a small company or a person's own domain): keyed like the rest.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from distillguard.errors import ConfigError

__all__ = [
    "ENV_KEY",
    "FREE_MAIL",
    "KINDS",
    "MIN_KEY_BYTES",
    "PERSONAL",
    "ConsortiumKey",
    "canonical",
    "ip_kind",
    "load_key",
]

ENV_KEY = "DISTILLGUARD_INTEL_KEY"
"""Environment variable holding the consortium key when no key file is given."""

MIN_KEY_BYTES = 32
"""A shorter key can be guessed or was typed by hand: refused."""

KINDS = ("ipv4-addr", "ipv6-addr", "ipv4-prefix", "ipv6-prefix", "email-addr", "email-domain",
         "phone", "payment", "device-fp")  # fmt: skip
"""Identifier kinds an indicator can carry (templates are sketches: :mod:`.sketch`)."""

PERSONAL = frozenset(KINDS)
"""Every identifier kind is personal; only free-mail domains are not (and are not exported)."""

FREE_MAIL = frozenset(
    (  # noqa: SIM905 - a word list reads better as text
        "gmail.com googlemail.com outlook.com hotmail.com live.com msn.com yahoo.com yahoo.co.jp "
        "yahoo.co.uk ymail.com icloud.com me.com mac.com aol.com proton.me protonmail.com pm.me "
        "gmx.com gmx.de gmx.net web.de mail.com zoho.com yandex.ru yandex.com mail.ru bk.ru inbox.ru "
        "list.ru rambler.ru qq.com foxmail.com 163.com 126.com yeah.net sina.com sina.cn sohu.com "
        "aliyun.com naver.com daum.net hanmail.net kakao.com tutanota.com fastmail.com hey.com "
        "rediffmail.com seznam.cz orange.fr free.fr laposte.net libero.it t-online.de"
    ).split()
)
"""Big free-mail providers: not personal, and not evidence of anything."""

# Keys that people paste from documentation or leave in config files.
_PLACEHOLDERS = re.compile(
    r"^(?:(?:change[-_ ]?me|changeit|secret|password|example|test|default|placeholder|dummy|"
    r"your[-_ ]?key(?:[-_ ]?here)?|xxx+|todo|key|insecure)[-_ .0-9]*)+$",
    re.IGNORECASE,
)
_DOMAIN = b"distillguard-intel/v1/"


def _weak(secret: bytes) -> str | None:
    """Why ``secret`` is not a real key, or None."""
    if len(secret) < MIN_KEY_BYTES:
        return f"it is {len(secret)} bytes; at least {MIN_KEY_BYTES} random bytes are needed"
    if len(set(secret)) <= 4:
        return "it repeats a few bytes (not random)"
    text = secret.decode("utf-8", "replace")
    if _PLACEHOLDERS.match(text) or "changeme" in text.lower().replace("-", "").replace("_", ""):
        return "it is a placeholder, not a secret"
    return None


@dataclass(frozen=True)
class ConsortiumKey:
    """The shared secret and the epoch digests are made for.

    Examples
    --------
    >>> k = ConsortiumKey(bytes(range(32)), epoch=3)
    >>> d = k.digest("ipv4-addr", "203.0.113.7")
    >>> d == k.digest("ipv4-addr", " 203.0.113.007".replace("007", "7")), len(d)
    (True, 64)
    >>> d == ConsortiumKey(bytes(range(32)), epoch=4).digest("ipv4-addr", "203.0.113.7")
    False
    """

    secret: bytes = field(repr=False)
    epoch: int = 0

    def __post_init__(self) -> None:
        if self.epoch < 0:
            raise ConfigError(f"--epoch has value {self.epoch}; expected an integer >= 0")

    @property
    def key_id(self) -> str:
        """A public name for the key (partners see which key a digest needs; reveals nothing)."""
        return hmac.new(self.secret, _DOMAIN + b"key-id", hashlib.sha256).hexdigest()[:16]

    def epoch_key(self, epoch: int | None = None) -> bytes:
        """The key of one epoch: digests of two epochs never match."""
        n = self.epoch if epoch is None else epoch
        return hmac.new(self.secret, _DOMAIN + f"epoch/{n}".encode(), hashlib.sha256).digest()

    def digest(self, kind: str, value: str, epoch: int | None = None) -> str:
        """The keyed digest (64 hex) of ``value`` as ``kind``, after :func:`canonical`.

        Raises ValueError when the value is not a ``kind`` (an IP that does not parse).
        """
        norm = canonical(kind, value)
        if norm is None:
            raise ValueError(f"{value!r} is not a valid {kind}")
        return self.digest_canonical(kind, norm, epoch)

    def digest_canonical(self, kind: str, norm: str, epoch: int | None = None) -> str:
        """:meth:`digest` of a value already in canonical form (the hot path)."""
        msg = kind.encode() + b"\x00" + norm.encode("utf-8")
        return hmac.new(self.epoch_key(epoch), msg, hashlib.sha256).hexdigest()


def load_key(key_file: Path | None, epoch: int = 0, env: str = ENV_KEY) -> ConsortiumKey:
    """The consortium key from ``key_file`` (raw bytes, or hex text) else ``$DISTILLGUARD_INTEL_KEY``.

    There is no default key: a missing, short, repetitive or placeholder key is a
    :class:`ConfigError` naming the option, since exporting under a guessable key is
    exporting in clear.
    """
    if key_file is not None:
        where = f"--key-file {key_file}"
        try:
            raw = key_file.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read it ({exc.strerror})") from None
    else:
        where = f"${env}"
        value = os.environ.get(env)
        if not value:
            raise ConfigError(
                f"no consortium key: pass --key-file FILE or set {env} "
                f"(at least {MIN_KEY_BYTES} random bytes shared with your partners; there is no default key)"
            )
        raw = value.encode("utf-8")
    secret = raw.strip()
    text = secret.decode("ascii", "replace")
    if len(text) % 2 == 0 and re.fullmatch(r"[0-9a-fA-F]+", text):
        secret = bytes.fromhex(text)  # hex text: its bytes (what `openssl rand -hex 32` prints)
    why = _weak(secret)
    if why is not None:
        raise ConfigError(f"{where}: not a usable consortium key: {why}")
    return ConsortiumKey(secret, epoch)


def ip_kind(value: str) -> str | None:
    """``ipv4-addr`` / ``ipv6-addr`` (an IPv4-mapped IPv6 address is IPv4), or None."""
    try:
        ip = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return "ipv6-addr"
    return "ipv4-addr"


def canonical(kind: str, value: str) -> str | None:
    """The one spelling of ``value`` two partners both hash, or None when it is not a ``kind``.

    IPs: :mod:`ipaddress`'s compressed form, IPv4-mapped IPv6 as IPv4; prefixes: the
    network address and length; e-mail and domains: lower case, no trailing dot; phones:
    E.164 (``+`` and digits; ``00`` becomes ``+``; a number without a country code cannot
    be made E.164 and is refused), or, when the log holds a phone's HMAC already (the
    spec's ``phone_hash``), that value lower-cased; device and payment fingerprints:
    trimmed (device lower-cased).

    >>> canonical("ipv6-addr", "2001:DB8:0:0::1"), canonical("ipv4-addr", "::ffff:10.0.0.1")
    ('2001:db8::1', '10.0.0.1')
    >>> canonical("ipv4-prefix", "10.1.2.3/24"), canonical("phone", "0044 20 7946 0958")
    ('10.1.2.0/24', '+442079460958')
    >>> canonical("email-addr", " Bob@Example.COM "), canonical("phone", "020 7946 0958") is None
    ('bob@example.com', True)
    """
    v = value.strip()
    if not v:
        return None
    if kind in ("ipv4-addr", "ipv6-addr"):
        try:
            ip = ipaddress.ip_address(v)
        except ValueError:
            return None
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return str(ip) if f"ipv{ip.version}-addr" == kind else None
    if kind in ("ipv4-prefix", "ipv6-prefix"):
        try:
            net = ipaddress.ip_network(v, strict=False)
        except ValueError:
            return None
        return str(net) if f"ipv{net.version}-prefix" == kind else None
    if kind == "email-addr":
        v = v.lower()
        return v if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", v) else None
    if kind == "email-domain":
        v = v.lower().lstrip("@").rstrip(".")
        return v if re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", v.encode("idna").decode()) else None
    if kind == "phone":
        digits = re.sub(r"[\s().\-/]", "", v)
        if digits.startswith("00"):
            digits = "+" + digits[2:]
        if re.fullmatch(r"\+[1-9]\d{6,14}", digits):
            return digits
        if re.fullmatch(r"[0-9a-fA-F]{16,}|[A-Za-z0-9_:+/=-]{16,}", v) and not v.isdigit():
            return v.lower()  # already a provider's HMAC: matches only that provider's own
        return None
    if kind == "device-fp":
        return v.lower()
    if kind == "payment":
        return v
    raise ValueError(f"unknown identifier kind {kind!r}; expected one of {', '.join(KINDS)}")
