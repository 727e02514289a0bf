"""The dashboard's ASGI app: server-side HTML (Jinja2, autoescaped: evidence quotes prompts that
attackers wrote), a little vanilla JavaScript, nothing from any other origin.

Pages: ``/`` (campaigns and the accounts the hunt acts on), ``/campaigns/{id}``,
``/accounts/{id}`` (evidence, the decision history), ``/accounts`` (all, searchable),
``/audit`` (the whole decision log), ``/report`` (the hunt's plots, :mod:`.report`). Actions:
``POST /decisions`` (block, allow or appeal an account or a whole campaign; a reason is
required), ``/login``, ``/logout``. Every page needs a token (:mod:`.auth`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from distillguard.review import ACTIONS, LOG_NAME, Decision, ReviewFollower, ReviewLog, Standing
from distillguard.ui import report as report_mod
from distillguard.ui.auth import Session, Sessions, Tokens, same_origin
from distillguard.ui.hunt import AccountRow, Hunt, HuntSource, standing_of

__all__ = ["UiSettings", "create_app"]

COOKIE = "dg_session"
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# The report is self-contained plotly: inline scripts and styles, still nothing from elsewhere.
_REPORT_CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; img-src data: blob:; "
    "font-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_MAX_BODY = 64 * 1024


@dataclass
class UiSettings:
    hunt: Path
    tokens: Tokens
    log: Path | None = None  # default: HUNT/analyst-decisions.jsonl, which `serve --decisions HUNT` follows
    gateway: str | None = None  # a gateway's base URL, to show whether it is up
    secure_cookie: bool = False  # set behind TLS
    sessions: Sessions = field(default_factory=Sessions)

    @property
    def log_path(self) -> Path:
        return self.log or self.hunt / LOG_NAME


@dataclass
class _Who:
    name: str | None
    session: Session | None  # None: a Bearer token


def create_app(s: UiSettings) -> Starlette:
    """The dashboard for one hunt folder."""
    hunts = HuntSource(s.hunt)
    log = ReviewLog(s.log_path)
    reviews = ReviewFollower([s.log_path], every_s=0.0)
    reports = report_mod.ReportSource(s.hunt)
    env = Environment(loader=PackageLoader("distillguard.ui", "templates"), autoescape=select_autoescape(default=True))
    env.filters["when"] = _when

    def page(request: Request, name: str, who: _Who | None, status: int = 200, **ctx: Any) -> HTMLResponse:
        flash = who.session.flash[:] if who and who.session else []
        if who and who.session:
            who.session.flash.clear()
        body = env.get_template(name).render(
            who=who.name if who else None, csrf=who.session.csrf if who and who.session else "", flash=flash,
            hunt_path=str(s.hunt), log_path=str(s.log_path), path=request.url.path, **ctx,
        )  # fmt: skip
        return HTMLResponse(body, status_code=status, headers=_headers())

    def authenticate(request: Request) -> _Who | None:
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            token = s.tokens.match(auth[7:].strip())
            return _Who(token.name or request.headers.get("x-analyst"), None) if token else None
        session = s.sessions.get(request.cookies.get(COOKIE))
        return _Who(session.who, session) if session else None

    def login_page(request: Request, status: int = 401, error: str | None = None) -> HTMLResponse:
        nxt = request.url.path if request.method == "GET" and request.url.path != "/login" else "/"
        resp = page(request, "login.html", None, status, error=error, next=nxt, named=all(t.name for t in s.tokens.tokens))
        resp.headers["www-authenticate"] = 'Bearer realm="distillguard"'
        return resp

    def state() -> tuple[Hunt, dict[str, Standing]]:
        return hunts.get(), reviews.standings()

    def rows(standing: Mapping[str, Standing], accounts: list[AccountRow]) -> list[dict[str, Any]]:
        return [{"row": r, "now": standing_of(r, standing.get(r.account_id)), "analyst": standing.get(r.account_id)} for r in accounts]

    async def gateway_status() -> dict[str, Any] | None:
        if not s.gateway:
            return None
        try:
            async with httpx.AsyncClient(timeout=0.5) as c:
                r = await c.get(s.gateway.rstrip("/") + "/healthz")
            return {"url": s.gateway, "up": r.status_code == 200, "detail": r.json() if r.status_code == 200 else r.status_code}
        except (httpx.HTTPError, ValueError) as e:
            return {"url": s.gateway, "up": False, "detail": type(e).__name__}

    # -- pages ------------------------------------------------------------------------------
    async def index(request: Request) -> Response:
        who = authenticate(request)
        if who is None:
            return login_page(request)
        hunt, standing = state()
        campaigns = []
        for c in sorted(hunt.campaigns.values(), key=lambda c: -c.risk):
            counts: dict[str, int] = {}
            for r in hunt.members(c.id):
                d = standing_of(r, standing.get(r.account_id))["decision"]
                counts[d] = counts.get(d, 0) + 1
            appeals = sum(1 for a in c.accounts if standing.get(a) is not None and standing[a].appeal is not None)
            campaigns.append({"c": c, "counts": counts, "appeals": appeals})
        acted = hunt.acted()
        seen = {r.account_id for r in acted}  # and the accounts only an analyst acted on
        others = sorted((hunt.accounts[a] for a in standing if a in hunt.accounts and a not in seen), key=lambda r: -r.risk)
        listed = acted + others
        gw = await gateway_status()
        recent = reviews.decisions()[-8:][::-1]
        return page(request, "index.html", who, campaigns=campaigns, accounts=rows(standing, listed), hunt=hunt, gateway=gw, recent=recent)

    async def campaign(request: Request) -> Response:
        who = authenticate(request)
        if who is None:
            return login_page(request)
        hunt, standing = state()
        c = hunt.campaigns.get(request.path_params["cid"])
        if c is None:
            return page(request, "missing.html", who, 404, what=f"campaign {request.path_params['cid']}")
        history = [d for d in reviews.decisions() if d.scope == "campaign" and d.target == c.id][::-1]
        return page(request, "campaign.html", who, c=c, accounts=rows(standing, hunt.members(c.id)), history=history)

    async def account(request: Request) -> Response:
        who = authenticate(request)
        if who is None:
            return login_page(request)
        hunt, standing = state()
        aid = request.path_params["aid"]
        r = hunt.accounts.get(aid)
        if r is None:
            return page(request, "missing.html", who, 404, what=f"account {aid}")
        history = [d for d in reviews.decisions() if aid in d.accounts][::-1]
        return page(request, "account.html", who, a=rows(standing, [r])[0], history=history)

    async def accounts(request: Request) -> Response:
        who = authenticate(request)
        if who is None:
            return login_page(request)
        hunt, standing = state()
        q = (request.query_params.get("q") or "").strip().lower()
        found = [r for r in hunt.accounts.values() if not q or q in r.account_id.lower() or q == (r.campaign or "").lower()]
        found.sort(key=lambda r: -r.risk)
        return page(request, "accounts.html", who, accounts=rows(standing, found[:500]), total=len(found), q=q)

    async def audit(request: Request) -> Response:
        who = authenticate(request)
        if who is None:
            return login_page(request)
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse([_as_dict(d) for d in reviews.decisions()], headers=_headers())
        return page(request, "audit.html", who, decisions=reviews.decisions()[::-1], errors=reviews.errors)

    async def report(request: Request) -> Response:
        who = authenticate(request)
        if who is None:
            return login_page(request)
        html = await run_in_threadpool(reports.html)
        if html is None:
            return page(request, "report_missing.html", who, available=report_mod.available(), error=reports.error)
        return HTMLResponse(html, headers=_headers(_REPORT_CSP))

    async def report_campaign(request: Request) -> Response:
        who = authenticate(request)
        if who is None:
            return login_page(request)
        html = await run_in_threadpool(reports.html)
        anchor = report_mod.anchor_for(html, request.path_params["cid"]) if html else None
        target = "/report" + (f"#{urllib.parse.quote(anchor)}" if anchor else "")
        return RedirectResponse(target, status_code=303)

    # -- actions ----------------------------------------------------------------------------
    async def login(request: Request) -> Response:
        if request.method == "GET":
            return login_page(request, 200)
        if not same_origin(request.headers.get("origin"), request.headers.get("sec-fetch-site"), request.url.scheme, request.headers.get("host")):
            return PlainError(403, "cross-origin login refused")
        form = await _form(request)
        if form is None:
            return PlainError(415, "send a form (application/x-www-form-urlencoded)")
        token = s.tokens.match(form.get("token", ""))
        if token is None:
            await asyncio.sleep(0.2)  # a guess costs time
            return login_page(request, 401, "wrong token")
        name = token.name or form.get("name", "").strip()
        if not name:
            return login_page(request, 400, "this token has no name: say who you are")
        session = s.sessions.new(name[:64])
        nxt = form.get("next", "/")
        resp = RedirectResponse(nxt if _local(nxt) else "/", status_code=303)
        resp.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", secure=s.secure_cookie, path="/", max_age=int(s.sessions.ttl_s))
        return resp

    async def logout(request: Request) -> Response:
        who = authenticate(request)
        if who is None or who.session is None:
            return RedirectResponse("/login", status_code=303)
        form = await _form(request) or {}
        if not who.session.csrf_ok(form.get("csrf")):
            return PlainError(403, "missing or wrong CSRF token")
        s.sessions.drop(who.session.id)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(COOKIE, path="/")
        return resp

    async def decide(request: Request) -> Response:
        who = authenticate(request)
        if who is None:
            return JSONResponse({"error": "token required"}, status_code=401, headers={"www-authenticate": 'Bearer realm="distillguard"'})
        form = await _form(request)
        if form is None:
            return PlainError(415, "send a form (application/x-www-form-urlencoded)")
        if who.session is not None:  # a browser: the cookie alone proves nothing
            origin_ok = same_origin(request.headers.get("origin"), request.headers.get("sec-fetch-site"), request.url.scheme, request.headers.get("host"))
            if not origin_ok or not who.session.csrf_ok(form.get("csrf")):
                return PlainError(403, "missing or wrong CSRF token: reload the page and try again")
        name = who.name or form.get("who", "").strip()
        hunt, standing = state()
        scope, target, action = form.get("scope", "account"), form.get("target", ""), form.get("action", "")
        if action not in ACTIONS:
            return PlainError(400, f"action: expected one of {', '.join(ACTIONS)}")
        if scope == "campaign":
            if target not in hunt.campaigns:
                return PlainError(404, f"no campaign {target!r} in this hunt")
            members = [r.account_id for r in hunt.members(target)]
        elif scope == "account":
            if target not in hunt.accounts:
                return PlainError(404, f"no account {target!r} in this hunt")
            members = [target]
        else:
            return PlainError(400, "scope: expected account or campaign")
        previous = {a: standing_of(hunt.accounts[a], standing.get(a)) for a in members}
        try:
            d = log.append(by=name or "", reason=form.get("reason", ""), action=action, scope=scope, target=target,
                           accounts=members, previous=previous, hunt=str(s.hunt))  # fmt: skip
        except ValueError as e:
            return PlainError(400, str(e))
        if who.session is None or "application/json" in request.headers.get("accept", ""):
            return JSONResponse(_as_dict(d), status_code=201, headers=_headers())
        n = f"{len(members)} accounts of campaign {target}" if scope == "campaign" else target
        who.session.flash.append(f"{action} {n}: recorded as {d.id} by {d.by}")
        back = form.get("back", "")
        return RedirectResponse(back if _local(back) else "/", status_code=303)

    routes = [
        Route("/", index),
        Route("/campaigns/{cid}", campaign),
        Route("/accounts", accounts),
        Route("/accounts/{aid}", account),
        Route("/audit", audit),
        Route("/report", report),
        Route("/report/campaign/{cid}", report_campaign),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/decisions", decide, methods=["POST"]),
        Mount("/static", StaticFiles(packages=[("distillguard.ui", "static")]), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.settings = s
    return app


def PlainError(status: int, message: str) -> Response:
    """A short plain-text answer (named like the response classes it stands beside)."""
    return Response(message + "\n", status_code=status, media_type="text/plain", headers=_headers())


def _headers(csp: str = _CSP) -> dict[str, str]:
    return {
        "content-security-policy": csp, "x-frame-options": "DENY", "x-content-type-options": "nosniff",
        "referrer-policy": "same-origin", "cache-control": "no-store",
    }  # fmt: skip


async def _form(request: Request) -> dict[str, str] | None:
    """A urlencoded form (the only body the dashboard takes; the first value of each field)."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = await request.body()
    if len(body) > _MAX_BODY:
        return None
    return {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace"), keep_blank_values=True).items()}


def _local(path: str) -> bool:
    """A path on this site (no scheme, no host): the only place a redirect may go."""
    return path.startswith("/") and not path.startswith("//") and "\\" not in path and ":" not in path.split("?")[0]


def _as_dict(d: Decision) -> dict[str, Any]:
    return {
        "id": d.id, "at": d.at, "by": d.by, "reason": d.reason, "action": d.action, "scope": d.scope, "target": d.target,
        "accounts": list(d.accounts), "previous": {k: dict(v) for k, v in d.previous.items()}, "hunt": d.hunt,
    }  # fmt: skip


def _when(at: str) -> str:
    try:
        t = dt.datetime.fromisoformat(at)
    except ValueError:
        return at
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")

