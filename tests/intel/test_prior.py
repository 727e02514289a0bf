from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.intel.evidence import collect
from distillguard.intel.export import build_bundle, write_bundle
from distillguard.intel.ingest import IntelSet, ingest
from distillguard.intel.match import IntelMatcher
from distillguard.intel.prior import apply_prior
from distillguard.policy import Policy
from distillguard.verdicts import Verdicts
from tests.intel.conftest import KEY
from tests.intel.test_ingest import NOW


def _verdicts(log: Path) -> Verdicts:
    ids = pq.read_table(next((log / "accounts").glob("*.parquet")))["account_id"].to_pylist()
    rows = [{"account_id": a, "risk": 0.7 if a.startswith("acct_c1") else 0.2, "flagged": a.startswith("acct_c1"),
             "campaign": "C001" if a.startswith("acct_c1") else None, "evidence": ["own"], "decision": "verify" if a.startswith("acct_c1") else "allow"}
            for a in ids]  # fmt: skip
    return Verdicts(pa.Table.from_pylist(rows))


def test_holders_of_a_reported_value_start_higher_and_say_why(hunt_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    log, hunt = hunt_dirs
    b = tmp_path / "peer-b.json"
    write_bundle(build_bundle(collect(hunt), KEY, producer="Provider B"), b)
    before = _verdicts(log)
    after = apply_prior(_verdicts(log), IntelMatcher(ingest([b], now=NOW), KEY), [log], Policy()).accounts.to_pylist()
    old = {r["account_id"]: r for r in before.accounts.to_pylist()}
    raised = {r["account_id"] for r in after if r["risk"] > old[r["account_id"]]["risk"]}
    assert raised == {a for a in old if a.startswith(("acct_c1", "acct_c2"))}
    for r in after:
        if r["account_id"] in raised:
            assert "Provider B" in r["evidence"][-1] and "peer-b.json" in r["evidence"][-1] and r["evidence"][0] == "own"
            assert (r["risk"] >= 0.5) == r["flagged"]  # a peer's word never makes a campaign member
        else:
            assert r == old[r["account_id"]]


def test_no_matching_intel_changes_nothing(hunt_dirs: tuple[Path, Path]) -> None:
    log, _ = hunt_dirs
    out = apply_prior(_verdicts(log), IntelMatcher(IntelSet(), None), [log], Policy())
    assert out.accounts.equals(_verdicts(log).accounts)


def test_hunt_intel_option(hunt_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log, hunt = hunt_dirs
    b = tmp_path / "peer.json"
    write_bundle(build_bundle(collect(hunt), KEY, producer="Provider B"), b)
    ingest([b], now=NOW).save(tmp_path / "intel.json")
    monkeypatch.setenv("DISTILLGUARD_INTEL_KEY", KEY.secret.hex())
    runner = CliRunner()
    plain = runner.invoke(app, ["hunt", str(log), "--out", str(tmp_path / "h0")])
    assert plain.exit_code == 0, plain.output
    got = runner.invoke(app, ["hunt", str(log), "--out", str(tmp_path / "h1"), "--intel", str(tmp_path / "intel.json")])
    assert got.exit_code == 0, got.output
    a = pq.read_table(tmp_path / "h0" / "accounts.parquet").to_pylist()
    c = {r["account_id"]: r for r in pq.read_table(tmp_path / "h1" / "accounts.parquet").to_pylist()}
    changed = {r["account_id"] for r in a if c[r["account_id"]]["risk"] != r["risk"]}
    assert changed == {r["account_id"] for r in a if r["account_id"].startswith(("acct_c1", "acct_c2"))}


def test_template_sketches_alone_raise_the_accounts_that_send_the_template(hunt_dirs: tuple[Path, Path], tmp_path: Path) -> None:
    """A peer's keyed template sketch (no address, device or domain) finds the accounts whose
    prompts carry the template, and only those."""
    log, hunt = hunt_dirs
    b = tmp_path / "peer-t.json"
    write_bundle(build_bundle(collect(hunt), KEY, producer="Provider T"), b)
    intel = ingest([b], now=NOW)
    assert intel.sketches
    intel.clear, intel.keyed = {}, {}
    before = {r["account_id"]: r for r in _verdicts(log).accounts.to_pylist()}
    after = apply_prior(_verdicts(log), IntelMatcher(intel, KEY), [log], Policy()).accounts.to_pylist()
    raised = {r["account_id"] for r in after if r["risk"] > before[r["account_id"]]["risk"]}
    assert raised == {a for a in before if a.startswith("acct_c1")}
    assert all("matching a template that Provider T reported" in r["evidence"][-1] for r in after if r["account_id"] in raised)
