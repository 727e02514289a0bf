"""Dashboard tokens, sessions and the origin check."""

from __future__ import annotations

import time

import pytest

from distillguard.ui.auth import Sessions, Tokens, same_origin


def test_tokens_are_named_or_not_and_never_short() -> None:
    t = Tokens(["alice:0123456789ab", "bob:ab:cd:ef:0123", "not a/name:0123456"])
    assert t.match("0123456789ab").name == "alice"  # type: ignore[union-attr]
    assert t.match("ab:cd:ef:0123").name == "bob"  # type: ignore[union-attr]  # only the first colon splits
    assert t.match("not a/name:0123456").name is None  # type: ignore[union-attr]  # not NAME:SECRET
    assert t.match("alice:0123456789ab") is None and t.match("") is None
    with pytest.raises(ValueError, match="12 characters"):
        Tokens(["carol:short"])
    with pytest.raises(ValueError, match="no dashboard token"):
        Tokens([" ", ""])


def test_tokens_come_from_the_options_then_the_environment_else_a_new_one() -> None:
    t, new = Tokens.from_env(["alice:given-token-123"], "bob:env-token-12345")
    assert new is None and t.match("given-token-123") and not t.match("env-token-12345")
    t, new = Tokens.from_env([], "bob:env-token-12345, carol:other-token-12")
    assert new is None and t.match("other-token-12").name == "carol"  # type: ignore[union-attr]
    t, new = Tokens.from_env([], None)
    assert new is not None and len(new) >= 24 and t.match(new) is not None
    assert Tokens.from_env([], None)[1] != new


def test_sessions_expire_and_carry_their_csrf_token() -> None:
    s = Sessions(ttl_s=0.2)
    a = s.new("alice")
    assert s.get(a.id) is a and s.get("nope") is None and s.get(None) is None
    assert a.csrf_ok(a.csrf) and not a.csrf_ok(None) and not a.csrf_ok(a.csrf[:-1]) and a.csrf != a.id
    time.sleep(0.25)
    assert s.get(a.id) is None
    b = s.new("bob")
    s.drop(b.id)
    assert s.get(b.id) is None


@pytest.mark.parametrize(
    ("origin", "site", "ok"),
    [
        (None, None, True),  # no word from the browser: the CSRF token decides
        ("http://127.0.0.1:8090", "same-origin", True),
        (None, "none", True),  # typed into the address bar
        ("http://127.0.0.1:8091", None, False),
        ("http://evil.example", "cross-site", False),
        (None, "same-site", False),
        ("null", None, False),
    ],
)
def test_same_origin(origin: str | None, site: str | None, ok: bool) -> None:
    assert same_origin(origin, site, "http", "127.0.0.1:8090") is ok
