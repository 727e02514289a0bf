"""The analysts' decision log: what it keeps, how a follower reads it as it grows, and where the
gateway's door puts an analyst's block and allow among the policy file's rules and the hunt's."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path

import pytest
from starlette.requests import Request

from distillguard.gateway.app import Gateway
from distillguard.gateway.directory import Account
from distillguard.gateway.live import AccountVerdict, LiveVerdicts
from distillguard.gateway.policy_file import AccountFacts, GatewayPolicy
from distillguard.gateway.quota import make_store
from distillguard.review import ReviewFollower, ReviewLog


def _decide(log: ReviewLog, action: str, *accounts: str, scope: str = "account", by: str = "alice") -> str:
    target = accounts[0] if scope == "account" else "C7"
    return log.append(by=by, reason=f"{action} because", action=action, scope=scope, target=target, accounts=accounts).id


def test_each_decision_is_one_line_with_who_why_when_and_what_stood_before(tmp_path: Path) -> None:
    log = ReviewLog(tmp_path / "d.jsonl")
    d = log.append(by=" bob ", reason=" pinned max_tokens ", action="block", scope="campaign", target="C7",
                   accounts=["a1", "a2"], previous={"a1": {"decision": "verify", "source": "hunt"}}, hunt="/h")  # fmt: skip
    (line,) = (tmp_path / "d.jsonl").read_text().splitlines()
    rec = json.loads(line)
    assert (rec["by"], rec["reason"], rec["accounts"], rec["previous"]["a1"]["decision"]) == ("bob", "pinned max_tokens", ["a1", "a2"], "verify")
    assert dt.datetime.fromisoformat(rec["at"]).tzinfo is not None and rec["id"] == d.id
    assert log.read() == [d]
    for bad in ({"reason": " "}, {"by": ""}, {"action": "delete"}, {"scope": "org"}, {"accounts": []}, {"reason": "x" * 2001}):
        args = {"by": "bob", "reason": "r", "action": "block", "scope": "account", "target": "a1", "accounts": ["a1"]} | bad
        with pytest.raises(ValueError):
            log.append(**args)  # type: ignore[arg-type]
    assert len(log.read()) == 1


def test_the_latest_block_or_allow_stands_and_an_appeal_stays_open_until_the_next(tmp_path: Path) -> None:
    log = ReviewLog(tmp_path / "d.jsonl")
    f = ReviewFollower([log.path], every_s=0.0)
    assert f.get("a1") is None
    _decide(log, "block", "a1", "a2", scope="campaign")
    s = f.get("a1")
    assert s is not None and s.action == "block" and s.appeal is None and f.get("a2") is not None
    appeal = _decide(log, "appeal", "a1")
    s = f.get("a1")
    assert s is not None and s.action == "block" and s.appeal is not None and s.appeal.id == appeal  # still blocked
    _decide(log, "allow", "a1")
    s = f.get("a1")
    assert s is not None and s.action == "allow" and s.appeal is None  # resolved
    assert f.get("a2").action == "block"  # type: ignore[union-attr]


def test_a_follower_reads_only_complete_lines_and_survives_a_bad_or_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = ReviewLog(path)
    f = ReviewFollower([path], every_s=0.0)
    _decide(log, "block", "a1")
    line = path.read_text()
    with path.open("a") as fh:  # a line being written: not read until it ends
        fh.write(line.replace("a1", "a9")[:40])
    assert f.get("a9") is None and f.get("a1") is not None
    with path.open("a") as fh:
        fh.write(line.replace("a1", "a9")[40:] + "not json\n")
    assert f.get("a9") is not None and f.errors == 1
    replaced = tmp_path / "new.jsonl"
    replaced.write_text(line.replace("a1", "b1"))
    os.replace(replaced, path)  # a new file: read from its start
    assert f.get("a1") is None and f.get("b1") is not None and f.errors == 0
    path.unlink()
    assert f.get("b1") is None


def test_a_follower_looks_at_most_every_every_s(tmp_path: Path) -> None:
    log = ReviewLog(tmp_path / "d.jsonl")
    f = ReviewFollower([log.path], every_s=0.3)
    _decide(log, "block", "a1")
    seen = f.get("a1")
    t0 = time.monotonic()
    while f.get("a1") is None:
        time.sleep(0.01)
    assert seen is None and time.monotonic() - t0 <= 0.5


def test_of_several_logs_the_latest_decision_wins(tmp_path: Path) -> None:
    one, two = ReviewLog(tmp_path / "one.jsonl"), ReviewLog(tmp_path / "two.jsonl")
    _decide(one, "block", "a1")
    _decide(two, "allow", "a1")
    _decide(two, "block", "a2")
    _decide(one, "allow", "a2")
    f = ReviewFollower([one.path, two.path, tmp_path / "absent.jsonl"], every_s=0.0)
    assert (f.get("a1").action, f.get("a2").action) == ("allow", "allow")  # type: ignore[union-attr]
    assert [d.target for d in f.decisions()] == ["a1", "a1", "a2", "a2"]


# -- at the gateway's door ----------------------------------------------------------------------
class _Live(LiveVerdicts):
    def __init__(self, verdicts: dict[str, AccountVerdict]) -> None:
        super().__init__(score=False)
        self.imported = verdicts


def _door(tmp_path: Path, policy_yaml: str, hunt: dict[str, AccountVerdict]) -> tuple[Gateway, ReviewLog]:
    tmp_path = tmp_path / str(len(list(tmp_path.iterdir())))
    tmp_path.mkdir()
    p = tmp_path / "policy.yaml"
    p.write_text(policy_yaml)
    policy = GatewayPolicy.load(p)
    log = ReviewLog(tmp_path / "d.jsonl")
    gw = Gateway("http://upstream", policy, make_store("memory", "", "open"), live=_Live(hunt), reviews=ReviewFollower([log.path], every_s=0.0))
    return gw, log


def _verdict(gw: Gateway, account: str) -> tuple[str, str]:
    a = Account(account, plan="pro", created_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    request = Request({"type": "http", "method": "POST", "path": "/", "headers": [], "client": ("10.0.0.1", 1)})
    facts = AccountFacts(account_id=a.account_id, plan=a.plan, created_at=a.created_at, verified=a.verified, paid=a.paid, org_id=a.org_id)
    v, _ = gw.decide(a, facts, request)
    return v.action, v.reason


def test_the_door_puts_an_analysts_block_first_and_their_allow_over_the_hunt(tmp_path: Path) -> None:
    hunt = {"hunted": AccountVerdict("block", 0.95, True, "C1", "hunt")}
    gw, log = _door(tmp_path, "allowlists: {accounts: [listed]}\nblocklists: {ips: [10.0.0.1]}\n", hunt)
    assert _verdict(gw, "hunted") == ("block", "blocklist_ip")  # the policy file's list first, as before
    gw, log = _door(tmp_path, "allowlists: {accounts: [listed]}\n", hunt)
    assert _verdict(gw, "hunted") == ("block", "campaign_block")
    _decide(log, "allow", "hunted")
    assert _verdict(gw, "hunted") == ("allow", "analyst_allow")  # a person's allow beats the hunt's block
    _decide(log, "block", "listed")
    assert _verdict(gw, "listed") == ("block", "analyst_block")  # and their block beats an allowlist
    _decide(log, "appeal", "listed")
    assert _verdict(gw, "listed") == ("block", "analyst_block")
    gw, log = _door(tmp_path, "blocklists: {ips: [10.0.0.1]}\n", hunt)
    _decide(log, "allow", "hunted")
    assert _verdict(gw, "hunted")[0] == "block"  # an analyst's allow yields to the policy file's blocklist
