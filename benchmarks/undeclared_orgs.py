"""The hunt on a log whose accounts table declares no organisation: what a provider that keeps no ``org_id`` sees.

    python benchmarks/undeclared_orgs.py LOG --out DIR [--json OUT]

``org_id`` is optional in the exchange-log spec, and the hunt leaves a declared
organisation's shared card and domain out of its identity webs. A provider that records
none hands the hunt every company as a web of accounts sharing a card and a domain. This
writes ``DIR/log`` (LOG's exchanges and labels linked, its accounts table with ``org_id``
emptied), hunts it (``DIR/hunt``, as ``distillguard hunt`` does) and scores the verdicts
against the labels as ``benchmarks/score_hunt.py`` does, adding the share of each benign
archetype flagged (the organisations trap is ``org_member``). The hunt never reads labels.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import polars as pl

from distillguard.hunt import run_hunt
from distillguard.io import LogReader

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for benchmarks.score_hunt

from benchmarks import score_hunt  # noqa: E402


def undeclared_copy(log: Path, out: Path) -> Path:
    """``out`` as ``log`` with every ``org_id`` emptied: the accounts table rewritten, every
    other table linked."""
    out.mkdir(parents=True, exist_ok=True)
    for child in log.iterdir():
        if child.name == "accounts" or child.name.startswith("."):
            continue
        link = out / child.name
        if not link.exists():
            link.symlink_to(child.resolve())
    accounts = pl.from_arrow(LogReader(log).accounts())
    assert isinstance(accounts, pl.DataFrame)
    if "org_id" in accounts.columns:
        accounts = accounts.with_columns(org_id=pl.lit(None, accounts.schema["org_id"]))
    (out / "accounts").mkdir(exist_ok=True)
    accounts.write_parquet(out / "accounts" / "part-00000.parquet")
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    copy = undeclared_copy(args.log, args.out / "log")
    run_hunt([copy], out=args.out / "hunt", progress=False)
    with contextlib.redirect_stdout(io.StringIO()):
        scored: dict[str, Any] = score_hunt.main([str(copy), str(args.out / "hunt")])
    scored["log"] = str(args.log)
    scored["org_id"] = "emptied"
    scored["benign_flagged_share"] = {
        k: v["flagged"] / v["accounts"] for k, v in scored["per_archetype"].items() if v["accounts"] and k in _benign(copy)
    }
    text = json.dumps(scored, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    return scored


def _benign(log: Path) -> set[str]:
    labels = pl.from_arrow(LogReader(log).labels())
    assert isinstance(labels, pl.DataFrame)
    return set(labels.filter(pl.col("campaign_id").is_null())["archetype"].unique().to_list())


if __name__ == "__main__":
    main(sys.argv[1:])
