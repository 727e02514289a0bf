from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from distillguard.errors import ConfigError
from distillguard.intel.keyed import ConsortiumKey, canonical, load_key


@pytest.mark.parametrize(
    ("secret", "why"),
    [(b"short-key", "9 bytes"), (b"changeme" * 5, "placeholder"), (b"z" * 40, "repeats"), (b"your-key-here-" * 3, "placeholder")],
)
def test_a_weak_key_is_refused_naming_the_option(tmp_path: Path, secret: bytes, why: str) -> None:
    f = tmp_path / "k"
    f.write_bytes(secret)
    with pytest.raises(ConfigError, match=f"--key-file {f}.*{why}"):
        load_key(f)


def test_no_key_is_refused_naming_both_ways(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISTILLGUARD_INTEL_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"--key-file.*DISTILLGUARD_INTEL_KEY.*no default key"):
        load_key(None)
    monkeypatch.setenv("DISTILLGUARD_INTEL_KEY", "secret")
    with pytest.raises(ConfigError, match=r"\$DISTILLGUARD_INTEL_KEY"):
        load_key(None)


def test_hex_and_raw_keys_load(tmp_path: Path) -> None:
    f = tmp_path / "k"
    secret = hashlib.sha256(b"k").digest()
    f.write_text(secret.hex() + "\n")
    assert load_key(f, epoch=2).secret == secret
    f.write_bytes(secret)
    assert load_key(f).secret == secret


def test_canonical_forms_match_across_spellings() -> None:
    k = ConsortiumKey(bytes(range(32)), epoch=1)
    assert k.digest("ipv6-addr", "2001:0DB8::0001") == k.digest("ipv6-addr", "2001:db8:0:0:0:0:0:1")
    assert k.digest("ipv4-addr", "::ffff:10.0.0.1") == k.digest("ipv4-addr", "10.0.0.1")
    assert k.digest("email-addr", "Bob@EXAMPLE.com") == k.digest("email-addr", "bob@example.com")
    assert k.digest("phone", "+44 (20) 7946-0958") == k.digest("phone", "00442079460958")
    assert canonical("ipv4-addr", "2001:db8::1") is None and canonical("phone", "020 7946 0958") is None


def test_epochs_and_keys_and_kinds_separate_digests() -> None:
    a, b = ConsortiumKey(bytes(range(32)), 1), ConsortiumKey(bytes(range(32)), 2)
    c = ConsortiumKey(bytes(range(1, 33)), 1)
    d = a.digest("ipv4-addr", "10.0.0.1")
    assert d != b.digest("ipv4-addr", "10.0.0.1") and d != c.digest("ipv4-addr", "10.0.0.1")
    assert a.digest("device-fp", "x") != a.digest("payment", "x")
    assert a.key_id == b.key_id != c.key_id
