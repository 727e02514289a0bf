"""Who may use the dashboard, and proof that a state-changing request came from its own pages.

Access is by token: ``--token`` (repeatable) or ``DISTILLGUARD_UI_TOKEN`` (comma-separated),
each ``SECRET`` or ``NAME:SECRET``; a named token says who decides, an unnamed one asks for a
name at login. Tokens are compared as SHA-256 digests with :func:`hmac.compare_digest`, every
configured token each time, so neither the time taken nor an early exit says which came close.

A browser logs in once through a form and gets a session cookie (``HttpOnly``,
``SameSite=Strict``) naming a server-side session, which holds a CSRF token: every POST made
with the cookie must carry it in the form and, when the browser says where it came from
(``Origin``, ``Sec-Fetch-Site``), come from this origin. Scripts send ``Authorization: Bearer``
instead, which a browser never adds on its own, so they need no CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["ENV", "Session", "Sessions", "Token", "Tokens", "same_origin"]

ENV = "DISTILLGUARD_UI_TOKEN"
_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")


@dataclass(frozen=True)
class Token:
    name: str | None
    digest: bytes = field(repr=False)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class Tokens:
    """The accepted tokens.

    >>> t = Tokens(["alice:first-s3cret", "second-s3cret"])
    >>> t.match("first-s3cret"), t.match("second-s3cret"), t.match("nope")
    (Token(name='alice'), Token(name=None), None)
    """

    def __init__(self, specs: Iterable[str]) -> None:
        self.tokens: list[Token] = []
        for spec in specs:
            spec = spec.strip()
            if not spec:
                continue
            name, sep, secret = spec.partition(":")
            if not sep or not _NAME.fullmatch(name):
                name, secret = "", spec
            if len(secret) < 12:
                raise ValueError("a dashboard token must have at least 12 characters")
            self.tokens.append(Token(name or None, _digest(secret)))
        if not self.tokens:
            raise ValueError("no dashboard token given")

    @classmethod
    def from_env(cls, given: Iterable[str], env: str | None) -> tuple[Tokens, str | None]:
        """The tokens given, else those of the environment, else a new one (returned to print)."""
        specs = [s for s in given if s.strip()] or [s for s in (env or "").split(",") if s.strip()]
        if specs:
            return cls(specs), None
        secret = secrets.token_urlsafe(24)
        return cls([secret]), secret

    def match(self, presented: str) -> Token | None:
        d = _digest(presented)
        found = None
        for t in self.tokens:  # no early exit: each check costs the same
            if hmac.compare_digest(d, t.digest):
                found = t
        return found


@dataclass
class Session:
    id: str
    who: str
    csrf: str
    expires: float
    flash: list[str] = field(default_factory=list)

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class Sessions:
    """Logged-in browsers, in memory: a restart of the dashboard logs everyone out."""

    def __init__(self, ttl_s: float = 12 * 3600) -> None:
        self.ttl_s = ttl_s
        self._by_id: dict[str, Session] = {}

    def new(self, who: str) -> Session:
        now = time.time()
        self._by_id = {k: s for k, s in self._by_id.items() if s.expires > now}
        s = Session(secrets.token_urlsafe(32), who, secrets.token_urlsafe(32), now + self.ttl_s)
        self._by_id[s.id] = s
        return s

    def get(self, session_id: str | None) -> Session | None:
        s = self._by_id.get(session_id or "")
        if s is None or s.expires <= time.time():
            return None
        return s

    def drop(self, session_id: str | None) -> None:
        self._by_id.pop(session_id or "", None)


def same_origin(origin: str | None, fetch_site: str | None, scheme: str, host: str | None) -> bool:
    """Whether a browser's own account of a request's origin allows it (absent: no objection)."""
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    if origin is not None and origin != "null":
        return host is not None and origin == f"{scheme}://{host}"
    return origin != "null"
