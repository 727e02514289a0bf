"""Keyed pseudonymisation of identifier columns: a privacy-mode copy of a log.

Detection needs to know that two rows share an IP prefix, a device or an email
domain, never what they are. A keyed HMAC-SHA256 keeps equality (so joins and
sharing still work) and hides the values from anyone without the key. Each
identifier kind has its own domain, so an IP and an account id that happen to be
equal strings get different pseudonyms, while the same kind of identifier in
different tables (``ip`` and ``signup_ip``, ``account_id`` everywhere) links.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from distillguard import schema
from distillguard.errors import ConfigError

__all__ = [
    "ENV_KEY",
    "TEXT_COLUMNS",
    "ip_prefix",
    "load_key",
    "pseudonymise",
    "pseudonymise_log",
    "pseudonymise_table",
]

ENV_KEY = "DISTILLGUARD_HMAC_KEY"
"""Environment variable holding the HMAC key when none is passed."""

TEXT_COLUMNS: dict[str, tuple[str, ...]] = {"exchanges": ("system", "prompt", "response")}
"""Free-text columns that privacy mode drops (token counts stay)."""

DIGEST_BYTES = 16
"""Pseudonyms are the first 16 bytes of the HMAC, as 32 hex characters."""

# Identifier kind of each column: same kind, same pseudonym for the same value.
_DOMAIN: dict[str, str] = {
    "account_id": "account",
    "api_key_id": "api_key",
    "ip": "ip",
    "signup_ip": "ip",
    "ip_prefix": "ip_prefix",
    "device_fp": "device",
    "email": "email",
    "email_domain": "email_domain",
    "phone_hash": "phone",
    "payment_fp": "payment",
    "org_id": "org",
}


def load_key(key: bytes | str | None = None) -> bytes:
    """The HMAC key: ``key`` if given, else ``$DISTILLGUARD_HMAC_KEY``.

    Raises
    ------
    ConfigError
        When no key is given and the variable is unset or empty.
    """
    if key is None:
        key = os.environ.get(ENV_KEY, "")
        if not key:
            raise ConfigError(f"no HMAC key: pass one or set the environment variable {ENV_KEY}")
    out = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not out:
        raise ConfigError("HMAC key is empty")
    return out


def pseudonymise(
    col: pa.Array | pa.ChunkedArray, key: bytes, domain: str, nbytes: int = DIGEST_BYTES
) -> pa.Array:
    """Replace each value by its keyed HMAC (hex), hashing each distinct value once.

    Parameters
    ----------
    col
        Identifier values (cast to text); nulls stay null.
    key
        HMAC key; the same key gives the same pseudonym in every table and run.
    domain
        Identifier kind mixed into the MAC so different kinds never collide.
    nbytes
        Digest bytes kept.

    Examples
    --------
    >>> import pyarrow as pa
    >>> out = pseudonymise(pa.array(["a", "b", "a", None]), b"k", "account")
    >>> out[0] == out[2], out[0] == out[1], out[3].is_valid, len(out[0].as_py())
    (True, False, False, 32)
    """
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if pa.types.is_dictionary(col.type):
        col = col.dictionary_decode()
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    uniq = pc.unique(pc.drop_null(col))
    mac = hmac.new(key, domain.encode() + b"\x00", hashlib.sha256)
    digests = []
    for v in uniq.to_pylist():
        h = mac.copy()
        h.update(v.encode("utf-8"))
        digests.append(h.hexdigest()[: 2 * nbytes])
    table = pa.array(digests, pa.string())
    return table.take(pc.index_in(col, value_set=uniq))


def ip_prefix(ip: str) -> str | None:
    """The client network of an IP: /24 for v4, /48 for v6; None when it is not an IP."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    bits = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def _derived(col: pa.ChunkedArray | pa.Array, fn: str) -> pa.Array:
    """ip -> ip_prefix or email -> email_domain, computed once per distinct value."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    if not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
    uniq = pc.unique(pc.drop_null(col))
    if fn == "ip_prefix":
        values = [ip_prefix(v) for v in uniq.to_pylist()]
    else:
        values = [v.rsplit("@", 1)[1].lower() if "@" in v else None for v in uniq.to_pylist()]
    return pa.array(values, pa.string()).take(pc.index_in(col, value_set=uniq))


def pseudonymise_table(table: pa.Table, name: str, key: bytes, drop_text: bool = True) -> pa.Table:
    """Privacy-mode copy of one table (``exchanges``, ``accounts`` or ``labels``).

    Identifier columns (:data:`schema.IDENTIFIERS`) become HMACs. ``ip_prefix``
    and ``email_domain`` are filled from ``ip`` and ``email`` where missing and
    then hashed on their own, so accounts sharing a network or a domain still
    share a pseudonym. Free text is dropped when ``drop_text``.
    """
    derive = {"exchanges": [("ip_prefix", "ip")], "accounts": [("email_domain", "email")]}
    for target, source in derive.get(name, []):
        if source in table.column_names:
            derived = _derived(table.column(source), target)
            if target in table.column_names:
                derived = pc.coalesce(
                    table.column(target).combine_chunks().cast(pa.string()), derived
                )
                table = table.set_column(table.column_names.index(target), target, derived)
            else:
                table = table.append_column(target, derived)
    for column in schema.IDENTIFIERS.get(name, ()):
        if column in table.column_names:
            i = table.column_names.index(column)
            table = table.set_column(i, column, pseudonymise(table.column(i), key, _DOMAIN[column]))
    if drop_text:
        table = table.drop_columns(
            [c for c in TEXT_COLUMNS.get(name, ()) if c in table.column_names]
        )
    return table


def pseudonymise_log(
    src: Path | str,
    dst: Path | str,
    key: bytes | str | None = None,
    drop_text: bool = True,
    fmt: str = "parquet",
) -> Path:
    """Write a privacy-mode copy of the log at ``src`` to ``dst``, day by day.

    Parameters
    ----------
    src, dst
        Log folders; ``dst`` is replaced.
    key
        HMAC key; ``$DISTILLGUARD_HMAC_KEY`` when not given.
    drop_text
        Drop ``system``, ``prompt`` and ``response`` (token counts are kept).
    fmt
        Storage format of the copy.

    Returns
    -------
    Path
        ``dst``.
    """
    from distillguard.io import LogReader, LogWriter

    k = load_key(key)
    reader = LogReader(src)
    with LogWriter(dst, fmt=fmt, overwrite=True) as writer:
        writer.write_accounts(pseudonymise_table(reader.accounts(), "accounts", k, drop_text))
        labels = reader.labels()
        if labels is not None:
            writer.write_labels(pseudonymise_table(labels, "labels", k, drop_text))
        for batch in reader.exchange_batches():
            writer.write_exchanges(pseudonymise_table(batch, "exchanges", k, drop_text))
    return Path(dst)
