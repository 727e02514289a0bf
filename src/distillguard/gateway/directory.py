"""Who is calling: gateway-issued API keys (stored hashed) mapped to accounts, and the accounts'
metadata (created_at, plan, verification, org: the spec's accounts table) that drives policy.

A key is shown once, when it is created; only its SHA-256 is kept, so a leaked directory (a
Redis dump, a backup) gives no usable key. Keys are long random tokens, so an unsalted fast
hash is the right tool here (salting and slow hashing are for low-entropy passwords). With a
trusted identity header (``identity.header`` in the policy) the auth layer in front has
already said who is calling and keys are not used.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = ["IDENTITY_FIELDS", "Account", "Directory", "generate_key", "hash_key"]

KEY_PREFIX = "dg-"
KEY_LENGTH = len(KEY_PREFIX) + 43  # token_urlsafe(32): 43 characters


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    """A fresh gateway key: the prefix and 256 random bits."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


IDENTITY_FIELDS = ("email", "phone_hash", "payment_fp", "signup_ip", "country")


@dataclass(frozen=True)
class Account:
    """An account as the policy sees it (columns of the spec's accounts table)."""

    account_id: str
    created_at: dt.datetime | None = None
    plan: str | None = None
    verified: bool = False
    paid: bool = False
    org_id: str | None = None
    email_domain: str | None = None
    # What the hunt links accounts by (its identity webs, sign-up networks, claimed place):
    # without them the live hunt could not see a fleet the batch hunt finds (replayed through
    # the gateway, a stealth fleet the offline replay flags at 39 h was never acted on).
    email: str | None = None
    phone_hash: str | None = None
    payment_fp: str | None = None
    signup_ip: str | None = None
    country: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Account:
        email = row.get("email") or ""
        domain = row.get("email_domain") or (email.split("@", 1)[1] if "@" in email else None)
        created = row.get("created_at")
        if isinstance(created, str):
            created = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
        if isinstance(created, dt.datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=dt.UTC)
        return cls(
            account_id=str(row["account_id"]),
            created_at=created,
            plan=row.get("plan"),
            verified=bool(row.get("verified") or False),
            paid=bool(row.get("paid") or False),
            org_id=row.get("org_id"),
            email_domain=domain,
            **{name: _text(row, name) for name in IDENTITY_FIELDS},
        )

    def to_row(self) -> dict[str, Any]:
        """The fields that are set, as JSON-ready values (``from_row`` reads them back)."""
        row: dict[str, Any] = {"account_id": self.account_id, "verified": self.verified, "paid": self.paid}
        if self.created_at is not None:
            row["created_at"] = self.created_at.isoformat()
        for name in ("plan", "org_id", "email_domain", *IDENTITY_FIELDS):
            if getattr(self, name) is not None:
                row[name] = getattr(self, name)
        return row


def _text(row: Mapping[str, Any], name: str) -> str | None:
    value = row.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name}: expected a string, got {value!r}")
    return value


@dataclass
class Directory:
    """Accounts by id and key hashes to account ids, in process.

    Several replicas share accounts by loading one accounts file at start (``--accounts``),
    and with ``state.store: redis`` whatever any replica's admin API writes: each process's
    directory is then a local copy kept in step by ``directory_sync.DirectorySync``. An
    account unknown to the directory but named by a trusted header gets the default plan
    and is treated as new.
    """

    accounts: dict[str, Account] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # sha256(key) -> account_id

    def load(self, rows: Iterable[Mapping[str, Any]]) -> int:
        n = 0
        for row in rows:
            a = Account.from_row(row)
            self.accounts[a.account_id] = a
            n += 1
        return n

    def upsert(self, account: Account) -> Account:
        old = self.accounts.get(account.account_id)
        if old is not None and account.created_at is None:
            account = replace(account, created_at=old.created_at)
        self.accounts[account.account_id] = account
        return account

    def new_key(self, account_id: str) -> str:
        """A fresh key for ``account_id`` (returned once, kept hashed)."""
        key = generate_key()
        self.keys[hash_key(key)] = account_id
        return key

    def add_key(self, key: str, account_id: str) -> None:
        self.keys[hash_key(key)] = account_id

    def revoke_key(self, key_sha256: str) -> bool:
        """Forget a key by its SHA-256 (hex); False when it was not known."""
        return self.keys.pop(key_sha256, None) is not None

    def account_for_key(self, key: str) -> str | None:
        return self.keys.get(hash_key(key))

    def account(self, account_id: str, now: dt.datetime | None = None) -> Account:
        """The account, or a new one on the default plan first seen ``now``."""
        found = self.accounts.get(account_id)
        if found is None:
            found = self.accounts.setdefault(account_id, Account(account_id, created_at=now or dt.datetime.now(dt.UTC)))
        return found
