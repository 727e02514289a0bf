"""Property: for any mix of good and broken rows, in any format, every good row is kept and
every broken row is reported with its row number (Hypothesis)."""

from __future__ import annotations

import csv
import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from distillguard.io import LogReader

BREAKS = {
    "not_a_number": ("output_tokens", "lots"),
    "negative": ("input_tokens", "-3"),
    "no_account": ("account_id", ""),
    "bad_time": ("ts", "yesterday at noon"),
    "absurd": ("output_tokens", "99999999999"),
}
COLUMNS = ["request_id", "ts", "account_id", "prompt", "input_tokens", "output_tokens"]

rows_strategy = st.lists(
    st.tuples(st.sampled_from([None, *BREAKS]), st.text(max_size=30)), min_size=1, max_size=40
)


def _write(root: Path, fmt: str, rows: list[dict[str, str]]) -> None:
    (root / "exchanges").mkdir(parents=True)
    (root / "accounts").mkdir()
    (root / "accounts" / "a.csv").write_text("account_id,created_at\nacct,2026-01-01T00:00:00Z\n")
    path = root / "exchanges" / f"part.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.table({c: [r[c] for r in rows] for c in COLUMNS}), path)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    else:
        with path.open("w", newline="") as fh:
            w = csv.DictWriter(fh, COLUMNS)
            w.writeheader()
            w.writerows(rows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows_strategy, fmt=st.sampled_from(["parquet", "jsonl", "csv"]))
def test_good_rows_kept_broken_rows_reported(rows: list[tuple[str | None, str]], fmt: str) -> None:
    records, broken = [], {}
    for i, (kind, prompt) in enumerate(rows):
        r = {"request_id": f"r{i}", "ts": f"2026-04-22T10:{i % 60:02d}:00Z", "account_id": "acct",
             "prompt": prompt, "input_tokens": "5", "output_tokens": "7"}  # fmt: skip
        if kind is not None:
            column, value = BREAKS[kind]
            r[column] = value
            broken[i] = column
        records.append(r)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, fmt, records)
        reader = LogReader(root)
        kept = {rid for b in reader.exchange_batches() for rid in b.column("request_id").to_pylist()}
        assert kept == {f"r{i}" for i in range(len(rows)) if i not in broken}
        errors = {(i.source.row, i.source.column) for i in reader.issues.issues if i.severity == "error"}
        for i, column in broken.items():
            assert (i, column) in errors, (i, column, reader.issues.issues)
        assert reader.lost.rows.get("exchanges", 0) == len(broken)
