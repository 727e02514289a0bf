"""The three tables of ``docs/exchange-log.md`` as Arrow schemas.

Readers normalise whatever they read to these schemas (missing optional columns
become nulls, unknown extra columns are kept at the end); writers write them.
"""

from __future__ import annotations

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")

EXCHANGES = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("api_key_id", pa.string()),
        pa.field("ip", pa.string()),
        pa.field("ip_prefix", pa.string()),
        pa.field("asn", pa.int64()),
        pa.field("user_agent", pa.string()),
        pa.field("device_fp", pa.string()),
        pa.field("endpoint", pa.string()),
        pa.field("model", pa.string()),
        pa.field("system", pa.string()),
        pa.field("prompt", pa.string()),
        pa.field("n_messages", pa.int32()),
        pa.field("has_tools", pa.bool_()),
        pa.field("max_tokens", pa.int32()),
        pa.field("input_tokens", pa.int64(), nullable=False),
        pa.field("output_tokens", pa.int64(), nullable=False),
        pa.field("stop_reason", pa.string()),
        pa.field("status", pa.int32()),
        pa.field("latency_ms", pa.int64()),
        pa.field("response", pa.string()),
    ]
)

ACCOUNTS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("created_at", TS, nullable=False),
        pa.field("email", pa.string()),
        pa.field("email_domain", pa.string()),
        pa.field("phone_hash", pa.string()),
        pa.field("payment_fp", pa.string()),
        pa.field("signup_ip", pa.string()),
        pa.field("country", pa.string()),
        pa.field("org_id", pa.string()),
        pa.field("verified", pa.bool_()),
        pa.field("plan", pa.string()),
    ]
)

LABELS = pa.schema(
    [
        pa.field("account_id", pa.string(), nullable=False),
        pa.field("campaign_id", pa.string()),
        pa.field("archetype", pa.string()),
    ]
)

TABLES: dict[str, pa.Schema] = {"exchanges": EXCHANGES, "accounts": ACCOUNTS, "labels": LABELS}


def required(schema: pa.Schema) -> list[str]:
    """Columns a reader must find (the spec's 'required: yes')."""
    return [f.name for f in schema if not f.nullable]


# Identifier columns that privacy mode may replace by keyed HMACs.
IDENTIFIERS: dict[str, tuple[str, ...]] = {
    "exchanges": ("account_id", "api_key_id", "ip", "ip_prefix", "device_fp"),
    "accounts": ("account_id", "email", "email_domain", "phone_hash", "payment_fp", "signup_ip", "org_id"),
    "labels": ("account_id",),
}
