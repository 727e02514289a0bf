"""Registration: sign-up bursts and reused email domains, phones, payment methods, sign-up IPs.

Read from the accounts table, not from exchanges. Every shared registration attribute is
an artifact for the link step; a sign-up burst is the artifact "created in the same
window". Webmail domains and busy sign-up hours are shared by thousands of ordinary
accounts, so the link step, which weighs each artifact by how its carriers behave,
gives them no weight without special-casing them here.
"""

from __future__ import annotations

from typing import ClassVar

import polars as pl

from distillguard.signals.base import ARTIFACTS_SCHEMA, ArtifactKind, Finding, Signal, State
from distillguard.signals.infrastructure import network_of

REG_ARTIFACTS = ("email_domain", "phone_hash", "payment_fp", "signup_prefix")
# Days between sign-ups with one number after which the later one is the carrier's reissue
# to someone else, not the same holder: carriers hold a disconnected number 45-90 days (US)
# before handing it out again, so a real reissue clears a week many times over.
PHONE_REISSUE_DAYS = 7.0


def phone_held(accounts: pl.DataFrame, days: float = PHONE_REISSUE_DAYS) -> pl.DataFrame:
    """``accounts`` with ``phone_hash`` as one subscriber held it: the number itself, or
    ``NUMBER (reissued by DATE)`` from the first sign-up that came ``days`` or more after the
    last earlier sign-up with it (a new tenure starts at each such gap); rows in their order.

    Why: prepaid and SMS-farm numbers go back to the carrier and are reissued to strangers;
    a person who signs up with one weeks after a fleet last verified an account with it
    shares the fleet's number, not its operator. Identity rings (one operator's cells) are
    read on these values; the link step keeps the number itself and reads the reissue off
    the ``reissued`` feature, because careful fleets also reuse a number across sign-ups
    weeks apart (tactics-2026 at 0.5: 177 of t-careful's 731 successive sign-ups on one
    number came a week or more after the last), and as another value it cut them loose.
    """
    if "phone_hash" not in accounts.columns or "created_at" not in accounts.columns:
        return accounts
    held = (
        accounts.select("phone_hash", "created_at")
        .with_row_index("_row")
        .sort("phone_hash", "created_at", "_row", nulls_last=True)
        .with_columns(
            new=((pl.col("created_at") - pl.col("created_at").shift(1)) >= pl.duration(seconds=int(days * 86400)))
            .fill_null(False)
            & (pl.col("phone_hash") == pl.col("phone_hash").shift(1)).fill_null(False)
        )
        .with_columns(began=pl.when("new").then(pl.col("created_at")).forward_fill().over("phone_hash"))
        .with_columns(
            phone_hash=pl.when(pl.col("began").is_null())
            .then(pl.col("phone_hash"))
            .otherwise(pl.format("{} (reissued by {})", pl.col("phone_hash"), pl.col("began").dt.strftime("%Y-%m-%d")))
        )
        .sort("_row")
    )
    return accounts.with_columns(held["phone_hash"])


def signup_network(signup_ip: pl.Expr, created_at: pl.Expr) -> pl.Expr:
    """The ``signup_prefix`` artifact's text: the /24 an account registered from (the address
    itself where it is not IPv4) and the week it registered, e.g. ``45.77.1.0/24 in the week
    of 2026-04-20``. The hunt links on it and the report draws it, so both say the same."""
    week = " in the week of " + created_at.dt.truncate("1w").dt.strftime("%Y-%m-%d")
    return pl.coalesce(network_of(signup_ip), signup_ip) + pl.coalesce(week, pl.lit(""))


class RegistrationSignal(Signal):
    """Reads the accounts table (:meth:`finalize_accounts`); keeps no per-exchange state."""

    name: ClassVar[str] = "registration"
    # ``reissued``: the account signed up with a phone number a week or more after the last
    # earlier sign-up with it (:func:`phone_held`), so its tie through that number may be a
    # stranger's; association asks such an account to behave like the campaign first.
    features: ClassVar[tuple[str, ...]] = ("created_at", "email_domain", "verified", "org_id", "reissued")
    artifact_kinds: ClassVar[dict[str, ArtifactKind]] = {
        "email_domain": ArtifactKind("email domain", identity=True, origin=True),
        "phone_hash": ArtifactKind("phone number", identity=True, origin=True),
        "payment_fp": ArtifactKind("payment method", identity=True, origin=True),
        # The network and the week: a wave registered from one proxy /24 within hours shares
        # it; a home user who signed up from that /24 months before the fleet used it as an
        # exit does not (counted as a second tie beside the /24 itself, it flagged such users).
        "signup_prefix": ArtifactKind("sign-up network and week", bystander=True, cohort=True, origin=True),
        "signup_burst": ArtifactKind("sign-up hour", links=False),
    }

    # The artifact kind whose values ``reissued`` speaks of (the link step reads it from here).
    reissued_kind: ClassVar[str] = "phone_hash"

    def __init__(self, burst_minutes: int = 60) -> None:
        # No reissue setting here: the lived-time rings read the same tenures
        # (``phone_held`` at ``PHONE_REISSUE_DAYS``), and two settings could disagree.
        self.burst_minutes = burst_minutes
        # The last accounts table read and its finding: the live re-score reads an unchanged
        # table every few seconds (0.3-0.45 s a time at 196,017 accounts; comparing: 0.03 s).
        self._last: tuple[pl.DataFrame, Finding] | None = None

    def update(self, state: State, rows: pl.DataFrame) -> State:
        return state

    def finalize(self, state: State, n_accounts: int) -> Finding:
        return Finding(pl.DataFrame(schema={"account": pl.UInt32}))

    def finalize_accounts(self, accounts: pl.DataFrame) -> Finding:
        if self._last is not None and self._last[0].equals(accounts):
            return self._last[1]
        found = self._finalize_accounts(accounts)
        self._last = (accounts, found)
        return found

    def _finalize_accounts(self, accounts: pl.DataFrame) -> Finding:
        held = phone_held(accounts)["phone_hash"]
        a = accounts.with_columns(
            reissued=(held != pl.col("phone_hash")).fill_null(False),
            email_domain=pl.coalesce(pl.col("email_domain"), pl.col("email").str.extract(r"@(.+)$", 1)).str.to_lowercase(),
            signup_prefix=signup_network(pl.col("signup_ip"), pl.col("created_at")),
            burst=(pl.col("created_at").dt.epoch("s") // (self.burst_minutes * 60)),
        )
        arts = [
            a.filter(pl.col(c).is_not_null()).select("account", kind=pl.lit(c), value=pl.col(c).hash(31), share=pl.lit(1.0))
            for c in REG_ARTIFACTS
        ]
        texts = [a.select(value=pl.col(c).hash(31), text=pl.col(c)).drop_nulls("text").unique("value") for c in REG_ARTIFACTS]
        texts.append(
            a.drop_nulls("burst")
            .select(value=pl.col("burst").hash(32), text=(pl.col("created_at").dt.truncate(f"{self.burst_minutes}m")).dt.strftime("%Y-%m-%d %H:%M UTC"))
            .unique("value")
        )
        arts.append(
            a.filter(pl.col("burst").is_not_null()).select(
                "account", kind=pl.lit("signup_burst"), value=pl.col("burst").hash(32), share=pl.lit(1.0)
            )
        )
        feats = a.select("account", "created_at", "email_domain", "verified", "org_id", "reissued")
        return Finding(feats, pl.concat(arts).cast(ARTIFACTS_SCHEMA), texts=pl.concat(texts))  # type: ignore[arg-type]
