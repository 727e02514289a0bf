"""The dashboard end to end: tokens, CSRF, decisions recorded with who and why, and a gateway
started by the test that enforces them within a second; in a real browser (headless Chromium)
and over plain HTTP."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from distillguard.ui import report as report_mod
from tests.browser import Loopback, image_spread
from tests.ui.conftest import HOSTILE, SECRET, Stack

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _until(stack: Stack, account: str, status: int, t0: float, limit_s: float = 1.0) -> float:
    """Seconds from ``t0`` until the gateway answers ``account`` with ``status`` (fails after ``limit_s``)."""
    while True:
        r = stack.ask(account)
        took = time.monotonic() - t0
        if r.status_code == status:
            return took
        assert took < limit_s, f"{account}: still {r.status_code} {r.text[:200]} after {took:.2f} s"
        time.sleep(0.01)


def _code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def _login(page: Any, url: str, token: str = SECRET) -> Any:
    page.goto(url + "/")
    page.fill("input[name=token]", token)
    with page.expect_response(lambda r: r.url.endswith("/login")) as resp:
        page.click("button:has-text('sign in')")
    page.wait_for_load_state()
    return resp.value


# -- in a real browser ------------------------------------------------------------------------
def test_a_block_clicked_in_the_browser_reaches_the_gateway_within_a_second(stack: Stack, page: Loopback) -> None:
    p = page.page
    first = p.goto(stack.ui + "/")
    assert first is not None and first.status == 401  # no token yet: the login form, with 401
    assert _login(p, stack.ui).status == 303
    assert p.locator("tr[data-campaign=C1]").is_visible() and p.locator("tr[data-campaign=C2]").is_visible()

    assert stack.ask("acct_outlier").status_code == 200  # the hunt only throttles it
    row = p.locator("tr[data-account=acct_outlier]")
    row.locator("input[name=reason]").fill("same prompt template as C1, new card")
    t0, wall0 = time.monotonic(), time.time()
    row.locator("button.block").click()
    blocked_s = _until(stack, "acct_outlier", 403, t0)
    written_s = dt.datetime.fromisoformat(str(stack.records()[0]["at"])).timestamp() - wall0
    r = stack.ask("acct_outlier")
    assert _code(r) == "analyst_block" and "analyst_block" in r.json()["error"]["message"]
    p.wait_for_selector("p.flash")
    assert "block acct_outlier" in p.locator("p.flash").inner_text()
    assert "block" in p.locator("tr[data-account=acct_outlier] td.now").inner_text()

    row = p.locator("tr[data-account=acct_outlier]")
    row.locator("input[name=reason]").fill("customer showed their eval harness; false positive")
    t0 = time.monotonic()
    row.locator("button.allow").click()
    allowed_s = _until(stack, "acct_outlier", 200, t0)

    # "allow" overrides the hunt's own block of a campaign member
    assert _code(stack.ask("acct_c1_3")) == "campaign_block"
    row = p.locator("tr[data-account=acct_c1_3]")
    row.locator("input[name=reason]").fill("shared office NAT, verified customer")
    t0 = time.monotonic()
    row.locator("button.allow").click()
    override_s = _until(stack, "acct_c1_3", 200, t0)
    assert _code(stack.ask("acct_c1_2")) == "campaign_block"  # its fellows stay blocked
    print(f"\nclick to refusal {blocked_s:.3f} s (click to the log {written_s:.3f} s); click to served again {allowed_s:.3f} s; "
          f"click to allow over the hunt's block {override_s:.3f} s")  # fmt: skip

    audit = stack.records()
    assert [(d["action"], d["target"], d["by"]) for d in audit] == [
        ("block", "acct_outlier", "alice"), ("allow", "acct_outlier", "alice"), ("allow", "acct_c1_3", "alice"),
    ]  # fmt: skip
    assert audit[0]["reason"] == "same prompt template as C1, new card"
    assert audit[0]["previous"] == {"acct_outlier": {"decision": "throttle", "source": "hunt", "id": None}}
    assert audit[1]["previous"]["acct_outlier"] == {"decision": "block", "source": "analyst", "id": audit[0]["id"]}
    assert audit[0]["at"] < audit[1]["at"] < audit[2]["at"]

    p.goto(stack.ui + "/campaigns/C1")
    assert HOSTILE in p.locator("ul.evidence").inner_text() and "owned" not in p.title()  # shown as text, never run
    p.goto(stack.ui + "/audit")
    log_text = p.locator("table.history").inner_text()
    assert "customer showed their eval harness; false positive" in log_text and "alice" in log_text
    p.goto(stack.ui + "/")
    p.wait_for_load_state("networkidle")
    assert page.offsite == []  # nothing loaded from anywhere but the dashboard
    shot = p.screenshot(full_page=False)
    spread, colours = image_spread(shot)
    assert spread > 10 and colours > 50, (spread, colours)  # not blank
    if os.environ.get("DISTILLGUARD_SCREENSHOTS"):  # refresh the committed one: DISTILLGUARD_SCREENSHOTS=1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        (SCREENSHOTS / "dashboard.png").write_bytes(shot)


def test_a_campaign_decided_whole_in_the_browser_covers_every_member(stack: Stack, page: Loopback) -> None:
    p = page.page
    _login(p, stack.ui)
    p.click("tr[data-campaign=C2] a[href='/campaigns/C2']")
    assert [_code(stack.ask(f"acct_c2_{i}")) for i in range(3)] == ["campaign_member"] * 3  # verify: refused
    p.fill(".whole input[name=reason]", "three interns on one card; business verified by phone")
    p.once("dialog", lambda d: d.accept())  # "allow all 3 accounts of this campaign?"
    t0 = time.monotonic()
    p.click(".whole button.allow")
    for i in range(3):
        _until(stack, f"acct_c2_{i}", 200, t0)
    p.wait_for_selector("p.flash")
    p.fill(".whole input[name=reason]", "back to blocked: second card seen")
    p.once("dialog", lambda d: d.dismiss())  # cancelled: nothing recorded
    p.click(".whole button.block")
    assert len(stack.records()) == 1 and stack.ask("acct_c2_0").status_code == 200
    (d,) = stack.records()
    assert d["scope"] == "campaign" and d["target"] == "C2" and d["accounts"] == ["acct_c2_0", "acct_c2_1", "acct_c2_2"]
    assert {v["decision"] for v in d["previous"].values()} == {"verify"}


def test_an_appeal_is_recorded_and_changes_nothing_at_the_door(stack: Stack, page: Loopback) -> None:
    p = page.page
    _login(p, stack.ui)
    p.goto(stack.ui + "/accounts/acct_c1_0")
    p.fill(".whole input[name=reason]", "holder wrote in: research lab, ticket 4411")
    p.click(".whole button.appeal")
    p.wait_for_selector("p.flash")
    assert "appeal open" in p.locator(".facts .now").inner_text()
    assert _code(stack.ask("acct_c1_0")) == "campaign_block"  # still refused while the appeal is open
    (d,) = stack.records()
    assert d["action"] == "appeal" and d["by"] == "alice"


def test_the_wrong_token_gets_401_in_the_browser(stack: Stack, page: Loopback) -> None:
    p = page.page
    assert _login(p, stack.ui, "not-the-token-at-all").status == 401
    assert "wrong token" in p.locator("p.error").inner_text()
    assert p.goto(stack.ui + "/campaigns/C1").status == 401  # type: ignore[union-attr]


def test_a_post_from_the_page_without_the_csrf_token_is_refused(stack: Stack, page: Loopback) -> None:
    p = page.page
    _login(p, stack.ui)
    post = """async ([csrf]) => {
        const body = new URLSearchParams({scope: "account", target: "acct_ok_0", action: "block", reason: "scripted"});
        if (csrf !== null) body.set("csrf", csrf);
        const r = await fetch("/decisions", {method: "POST", body, credentials: "same-origin"});
        return r.status;
    }"""
    assert p.evaluate(post, [None]) == 403  # the session cookie goes with it, the CSRF token does not
    assert p.evaluate(post, ["forged-token"]) == 403
    assert stack.records() == [] and stack.ask("acct_ok_0").status_code == 200
    csrf = p.locator("input[name=csrf]").first.get_attribute("value")
    assert p.evaluate(post, [csrf]) == 200  # the page's own token: accepted (then redirected)
    assert stack.records()[0]["target"] == "acct_ok_0"


# -- over plain HTTP --------------------------------------------------------------------------
def test_no_token_or_a_wrong_one_is_401_everywhere(stack: Stack) -> None:
    for path in ("/", "/campaigns/C1", "/accounts/acct_c1_0", "/accounts", "/audit", "/report"):
        assert httpx.get(stack.ui + path).status_code == 401
        assert httpx.get(stack.ui + path, headers={"authorization": "Bearer wrong-token-1234"}).status_code == 401
    r = httpx.post(stack.ui + "/decisions", data={"scope": "account", "target": "acct_ok_0", "action": "block", "reason": "x"})
    assert r.status_code == 401 and stack.records() == []
    assert httpx.get(stack.ui + "/", cookies={"dg_session": "made-up"}).status_code == 401


def test_a_login_cookie_is_httponly_and_posts_need_its_csrf_token(stack: Stack) -> None:
    with httpx.Client(base_url=stack.ui) as c:
        r = c.post("/login", data={"token": SECRET, "next": "/"})
        assert r.status_code == 303
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        page = c.get("/").text
        m = re.search(r'name="csrf" value="([^"]+)"', page)
        assert m
        form = {"scope": "account", "target": "acct_ok_1", "action": "block", "reason": "scripted"}
        assert c.post("/decisions", data=form).status_code == 403
        assert c.post("/decisions", data={**form, "csrf": m[1]}, headers={"origin": "http://evil.example"}).status_code == 403
        assert c.post("/decisions", data={**form, "csrf": m[1]}, headers={"sec-fetch-site": "cross-site"}).status_code == 403
        assert c.post("/decisions", data={**form, "csrf": m[1], "back": "//evil.example/x"}).headers["location"] == "/"
        assert [d["target"] for d in stack.records()] == ["acct_ok_1"]
        assert c.post("/login", data={"token": SECRET}, headers={"origin": "http://evil.example"}).status_code == 403


def test_a_script_decides_with_a_bearer_token_and_a_reason(stack: Stack) -> None:
    auth = {"authorization": f"Bearer {SECRET}"}
    form = {"scope": "account", "target": "acct_ok_2", "action": "block"}
    assert httpx.post(stack.ui + "/decisions", data={**form, "reason": "  "}, headers=auth).status_code == 400
    assert httpx.post(stack.ui + "/decisions", data={**form, "target": "acct_nope", "reason": "r"}, headers=auth).status_code == 404
    assert httpx.post(stack.ui + "/decisions", data={**form, "action": "delete", "reason": "r"}, headers=auth).status_code == 400
    assert httpx.post(stack.ui + "/decisions", json={**form, "reason": "r"}, headers=auth).status_code == 415
    t0 = time.monotonic()
    r = httpx.post(stack.ui + "/decisions", data={**form, "reason": "scripted harvesting"}, headers=auth)
    assert r.status_code == 201 and r.json()["by"] == "alice" and r.json()["reason"] == "scripted harvesting"
    _until(stack, "acct_ok_2", 403, t0)
    assert httpx.get(stack.ui + "/audit", headers={**auth, "accept": "application/json"}).json()[0]["id"] == r.json()["id"]


def test_pages_show_evidence_escaped_and_security_headers(stack: Stack) -> None:
    auth = {"authorization": f"Bearer {SECRET}"}
    r = httpx.get(stack.ui + "/campaigns/C1", headers=auth)
    assert r.status_code == 200 and "&lt;script&gt;" in r.text and "<script>document" not in r.text
    assert "5 accounts tied by 2 payment methods" in r.text and "acct_c1_4" in r.text
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and r.headers["x-frame-options"] == "DENY"
    assert "behaviour score 14.0" in httpx.get(stack.ui + "/accounts/acct_outlier", headers=auth).text
    assert httpx.get(stack.ui + "/campaigns/C9", headers=auth).status_code == 404
    assert "acct_ok_3" in httpx.get(stack.ui + "/accounts", params={"q": "ok_3"}, headers=auth).text
    # A near-miss web names its accounts, each a link to its page; its why is escaped too.
    index = httpx.get(stack.ui + "/", headers=auth).text
    assert "accounts to watch" in index and '<a href="/accounts/acct_ok_2">acct_ok_2</a>' in index
    assert "<script>document" not in index and "10.0.0.0/24" not in index  # an artifact names no account


def test_the_report_route_serves_the_hunts_report_or_says_how_to_make_one(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    auth = {"authorization": f"Bearer {SECRET}"}
    monkeypatch.setattr(report_mod, "available", lambda: False)
    r = httpx.get(stack.ui + "/report", headers=auth)
    assert r.status_code == 200 and f"distillguard report {stack.hunt}" in r.text
    (stack.hunt / "report.html").write_text('<html><div class="dg-chart" data-figure="risk"></div><section id="campaign-C1">C1</section></html>')
    r = httpx.get(stack.ui + "/report", headers=auth)
    assert 'data-figure="risk"' in r.text and "'unsafe-inline'" in r.headers["content-security-policy"]
    r = httpx.get(stack.ui + "/report/campaign/C1", headers=auth)
    assert r.status_code == 303 and r.headers["location"] == "/report#campaign-C1"


def test_the_committed_screenshot_is_not_blank() -> None:
    spread, colours = image_spread((SCREENSHOTS / "dashboard.png").read_bytes())
    assert spread > 10 and colours > 50
