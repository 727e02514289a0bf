"""A corpus of broken logs, made from a good one: every way of breaking input the readers
must survive, in every format. ``python -m tests.io.badlogs OUT`` writes it to look at.

Each :class:`Case` says how many exchange rows are good (the rows a reader must keep),
whether a whole file is lost, and what ``distillguard hunt`` must exit with (0, or 1 when
input was lost past ``--max-bad-rows`` or a file could not be read).
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from distillguard.io import LogWriter, write_log
from distillguard.schema import ACCOUNTS, EXCHANGES, LABELS

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
N_ACCOUNTS, PER_ACCOUNT, DAYS = 12, 20, 2
N = N_ACCOUNTS * PER_ACCOUNT  # exchanges in the good log
FORMATS = ("parquet", "jsonl", "csv")


@dataclass
class Case:
    name: str
    fmt: str
    logs: list[Path]
    good_rows: int  # exchange rows a reader must keep
    exit_code: int  # what `distillguard hunt` must return
    mapping: Path | None = None
    notes: list[str] = field(default_factory=list)


def good_tables() -> tuple[pa.Table, pa.Table, pa.Table]:
    ex, acc, lab = [], [], []
    for a in range(N_ACCOUNTS):
        aid = f"acct{a:02d}"
        acc.append({"account_id": aid, "created_at": T0 - dt.timedelta(days=30), "email_domain": "example.com"})
        lab.append({"account_id": aid, "campaign_id": None, "archetype": "casual"})
        for k in range(PER_ACCOUNT):
            ex.append(
                {"request_id": f"r{a:02d}-{k:03d}", "ts": T0 + dt.timedelta(days=k % DAYS, minutes=7 * k + a),
                 "account_id": aid, "prompt": f"how do I cook rice number {k}", "input_tokens": 10 + k,
                 "output_tokens": 100 + k, "model": "m-1", "ip_prefix": f"73.1.{a}.0/24"}
            )  # fmt: skip
    return (
        pa.Table.from_pylist(ex, schema=EXCHANGES),
        pa.Table.from_pylist(acc, schema=ACCOUNTS),
        pa.Table.from_pylist(lab, schema=LABELS),
    )


def _files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "exchanges").rglob("*") if p.is_file())


def _rows_in(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = [ln for ln in path.read_bytes().split(b"\n") if ln.strip()]
    return len(lines) - (1 if fmt == "csv" else 0)


def _edit_text(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert old in data, (path, old)
    path.write_bytes(data.replace(old, new, 1))


def _rewrite_parquet(path: Path, fn: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(fn(pq.read_table(path)), path)


def _set(t: pa.Table, column: str, row: int, value: object, typ: pa.DataType | None = None) -> pa.Table:
    vals = t.column(column).to_pylist()
    vals[row] = value
    i = t.schema.get_field_index(column)
    return t.set_column(i, pa.field(column, typ or t.schema.field(i).type), pa.array(vals, typ or t.schema.field(i).type))


def corpus(out: Path) -> list[Case]:
    """Write every case under ``out`` and describe each."""
    ex, acc, lab = good_tables()
    cases: list[Case] = []
    for fmt in FORMATS:

        def new(name: str, fmt: str = fmt) -> Path:
            """The good log, its exchanges in two files (days for Parquet, halves for text)."""
            root = out / fmt / name
            if root.exists():
                shutil.rmtree(root)
            with LogWriter(root, fmt=fmt, overwrite=True) as w:
                w.write_exchanges(ex.slice(0, N // 2))
                w.write_exchanges(ex.slice(N // 2))
                w.write_accounts(acc)
                w.write_labels(lab)
            return root

        cases.append(Case("clean", fmt, [new("clean")], N, 0))

        root = new("truncated")
        f = _files(root)[0]
        if fmt == "parquet":
            n_lost = _rows_in(f, fmt)
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
            cases.append(Case("truncated", fmt, [root], N - n_lost, 1, notes=["file lost"]))
        else:
            data = f.read_bytes().rstrip(b"\n")
            f.write_bytes(data[: len(data) - 25])  # the last record cut mid-way
            cases.append(Case("truncated", fmt, [root], N - 1, 1))

        root = new("garbage")
        f = _files(root)[0]
        n_lost = _rows_in(f, fmt)
        f.write_bytes(bytes(range(256)) * 8)
        cases.append(Case("garbage", fmt, [root], N - n_lost, 1, notes=["file or all its rows lost"]))

        root = new("header_typo")
        f = _files(root)[0]
        n_lost = _rows_in(f, fmt)
        if fmt == "parquet":
            _rewrite_parquet(f, lambda t: t.rename_columns(["acount_id" if c == "account_id" else c for c in t.column_names]))
        else:
            _edit_text(f, b'"account_id"' if fmt == "jsonl" else b"account_id", b'"acount_id"' if fmt == "jsonl" else b"acount_id")
            if fmt == "jsonl":  # every line names it
                f.write_bytes(f.read_bytes().replace(b'"account_id"', b'"acount_id"'))
        cases.append(Case("header_typo", fmt, [root], N - n_lost, 1, notes=["file skipped, did you mean"]))

        root = new("invalid_utf8")
        f = _files(root)[0]
        if fmt == "parquet":
            _rewrite_parquet(f, lambda t: _set(t.set_column(t.schema.get_field_index("prompt"), pa.field("prompt", pa.binary()),
                                                            t.column("prompt").cast(pa.binary())), "prompt", 1, b"bad \xff byte"))  # fmt: skip
        else:
            _edit_text(f, b"rice number 1", b"rice \xff number 1")
        cases.append(Case("invalid_utf8", fmt, [root], N, 0, notes=["value nulled, row kept"]))

        root = new("negative_tokens")
        f = _files(root)[0]
        if fmt == "parquet":
            _rewrite_parquet(f, lambda t: _set(t, "input_tokens", 0, -5))
            cases.append(Case("negative_tokens", fmt, [root], N - 1, 1))
        else:
            _edit_text(f, b'"input_tokens":10,' if fmt == "jsonl" else b",10,100,", b'"input_tokens":-10,' if fmt == "jsonl" else b",-10,100,")
            cases.append(Case("negative_tokens", fmt, [root], N - 1, 1))

        root = new("bad_type")
        f = _files(root)[0]
        if fmt == "parquet":
            _rewrite_parquet(f, lambda t: _set(t.set_column(t.schema.get_field_index("output_tokens"), pa.field("output_tokens", pa.string()),
                                                            t.column("output_tokens").cast(pa.string())), "output_tokens", 0, "abc"))  # fmt: skip
        else:
            _edit_text(f, b'"output_tokens":100' if fmt == "jsonl" else b",10,100,", b'"output_tokens":"abc"' if fmt == "jsonl" else b",10,abc,")
        cases.append(Case("bad_type", fmt, [root], N - 1, 1))

        root = new("before_created_and_future")
        ex2 = _set(_set(ex, "ts", 0, T0 - dt.timedelta(days=90)), "ts", 1, dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
        write_log(root, ex2, acc, lab, fmt=fmt)
        cases.append(Case("before_created_and_future", fmt, [root], N, 0, notes=["warnings, rows kept"]))

        root = new("unknown_account")
        write_log(root, _set(ex, "account_id", 3, "ghost"), acc, lab, fmt=fmt)
        cases.append(Case("unknown_account", fmt, [root], N, 0, notes=["warning names 'ghost'"]))

        root = new("duplicate_ids")
        write_log(root, pa.concat_tables([ex, ex.slice(0, 2)]), acc, lab, fmt=fmt)  # 2 rows repeated
        cases.append(Case("duplicate_ids", fmt, [root], N, 1, notes=["repeats dropped"]))

        root = new("optional_typo")
        write_log(root, ex.rename_columns(["promt" if c == "prompt" else c for c in ex.column_names]), acc, lab, fmt=fmt)
        cases.append(Case("optional_typo", fmt, [root], N, 0, notes=["did you mean 'prompt'"]))

        root = new("empty_file")
        (root / "exchanges" / f"empty{'.parquet' if fmt == 'parquet' else '.' + fmt}").write_bytes(b"")
        cases.append(Case("empty_file", fmt, [root], N, 0))

        root = new("given_twice")
        cases.append(Case("given_twice", fmt, [root, root], N, 1, notes=["second copy all duplicates"]))

        root = new("mapping_typo")
        mapping = out / fmt / "mapping_typo.yaml"
        mapping.write_text("exchanges: {prompt: user_text}\n")
        cases.append(Case("mapping_typo", fmt, [root], N, 0, mapping=mapping, notes=["mapping names no column"]))

        root = new("no_accounts")
        shutil.rmtree(root / "accounts")
        cases.append(Case("no_accounts", fmt, [root], N, 0))
    return cases


if __name__ == "__main__":
    for c in corpus(Path(sys.argv[1] if len(sys.argv) > 1 else "badlogs")):
        print(f"{c.fmt:8} {c.name:26} good rows {c.good_rows:4}  hunt exits {c.exit_code}  {'; '.join(c.notes)}")
