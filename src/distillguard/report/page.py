"""One self-contained HTML page: plotly.js, the styles, the chart specs and a small table
sorter all inline, so the file opens offline and from an e-mail attachment alike.

Every chart is a ``<div class="dg-chart" id="<campaign>-<figure>" data-figure="<figure>"
data-campaign="<campaign>">`` whose spec sits in one ``<script type="application/json"
id="dg-specs">``; the script at the end draws them all on load and marks each drawn one
``data-rendered="1"`` (and ``window.dgReady = true`` when all are), so a browser test can wait
for exactly that. Account tables are ``<table class="dg-table" data-figure="accounts">``.
"""

from __future__ import annotations

import html
import json
from typing import Any

from plotly.offline import get_plotlyjs

from distillguard.report.charts import chart
from distillguard.report.figures import CREATION_LEAD_DAYS, FIGURES

__all__ = ["render_page"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#222;background:#f6f6f4}
header{background:#2c3e50;color:#fff;padding:16px 28px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;opacity:.85}main{max-width:1200px;margin:0 auto;padding:12px 24px 60px}
nav{margin:10px 0}nav a{margin-right:12px}
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:14px 20px;margin:18px 0}
h2{margin:4px 0 10px;font-size:19px}h3{font-size:15px;margin:18px 0 6px}
.dg-chart{min-height:200px;margin:8px 0 4px}.note{color:#666;font-size:12.5px;margin:0 0 14px}
table{border-collapse:collapse;width:100%;font-size:12.5px}th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:left;vertical-align:top}
th{background:#fafafa;position:sticky;top:0}table.dg-table th{cursor:pointer;user-select:none}
table.dg-table th[data-dir=asc]::after{content:" ▲"}table.dg-table th[data-dir=desc]::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}.scroll{max-height:520px;overflow:auto}
code{font-size:12px;background:#f3f3f3;padding:0 3px}ul.ev li{margin:2px 0}
"""

_JS = """
(function(){
  var specs = JSON.parse(document.getElementById('dg-specs').textContent);
  function draw(){
    var els = document.querySelectorAll('.dg-chart'), left = els.length;
    if (!left) { window.dgReady = true; return; }
    els.forEach(function(el){
      var s = specs[el.id];
      Plotly.newPlot(el, s.data, s.layout, {responsive: true, displaylogo: false}).then(function(){
        el.setAttribute('data-rendered', '1');
        if (--left === 0) { window.dgReady = true; }
      });
    });
  }
  function sortable(t){
    var heads = t.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function(th, i){
      th.addEventListener('click', function(){
        var dir = th.getAttribute('data-dir') === 'desc' ? 'asc' : 'desc';
        Array.prototype.forEach.call(heads, function(h){ h.removeAttribute('data-dir'); });
        th.setAttribute('data-dir', dir);
        var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
        var key = function(r){ var c = r.cells[i], v = c.getAttribute('data-v'); return v !== null ? parseFloat(v) : c.textContent; };
        rows.sort(function(a, b){ var x = key(a), y = key(b); var c = x < y ? -1 : x > y ? 1 : 0; return dir === 'asc' ? c : -c; });
        rows.forEach(function(r){ body.appendChild(r); });
      });
    });
  }
  document.querySelectorAll('table.dg-table').forEach(sortable);
  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', draw); } else { draw(); }
})();
"""


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _num(x: Any, fmt: str = "{:,}") -> str:
    return "-" if x is None else fmt.format(x)


def _overview(ov: dict[str, Any]) -> str:
    window = " to ".join(ov["window"]) if ov.get("window") else "-"
    decisions = ", ".join(f"{n:,} {d}" for d, n in ov["decisions"].items())
    rows = "".join(
        f"<tr><td><a href='#{_e(c['id'])}'>{_e(c['id'])}</a></td><td class='num' data-v='{c['size'] or 0}'>{_num(c['size'])}</td>"
        f"<td class='num' data-v='{c['exchanges'] or 0}'>{_num(c['exchanges'])}</td><td>{_e(' to '.join(map(str, c['span'] or [])))}</td>"
        f"<td class='num' data-v='{c['risk'] or 0}'>{_num(c['risk'], '{:.2f}')}</td><td>{_e(c['strongest_evidence'])}</td></tr>"
        for c in ov["campaigns"]
    )
    unused = "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in ov["unused_signals"].items())
    near = _near_misses(ov.get("near_miss_groups") or [])
    return (
        "<section id='overview'><h2>Overview</h2>"
        f"<p>The hunt read <b>{ov['exchanges']:,}</b> exchanges of <b>{ov['accounts']:,}</b> accounts ({_e(window)}, UTC) "
        f"and found <b>{len(ov['campaigns'])}</b> campaign(s); <b>{ov['flagged']:,}</b> accounts are flagged. "
        f"Decisions: {_e(decisions)}. {ov['near_misses']} group(s) were examined and not called a campaign "
        "(<code>campaigns.json</code>, <code>near_misses</code>).</p>"
        f"<p class='note'>Hunt output <code>{_e(ov['hunt_dir'])}</code>; log <code>{_e(', '.join(ov['logs']))}</code>; "
        f"hunt run {_e(ov.get('generated_at'))}. \"Not flagged\" below means the accounts the hunt did not flag: "
        "this page shows what the hunt found, not ground truth.</p>"
        "<table class='dg-table' id='overview-campaigns' data-figure='campaigns'><thead><tr><th>campaign</th><th>accounts</th>"
        f"<th>exchanges</th><th>active</th><th>risk</th><th>strongest evidence</th></tr></thead><tbody>{rows}</tbody></table>"
        + near
        + (f"<h3>Signals not used</h3><ul>{unused}</ul>" if unused else "")
        + "</section>"
    )


def _near_misses(groups: list[dict[str, Any]], shown: int = 8) -> str:
    """The groups examined and not called a campaign: what they share, their chance, why, and
    (webs and small linked groups, listed first: they name accounts to watch) the first
    ``shown`` of their accounts."""
    if not groups:
        return ""
    rows = []
    for g in sorted(groups, key=lambda g: not g.get("members")):
        what = f"{g['label']}: {g['value']}" if g.get("label") else g.get("group")
        members = g.get("members") or []
        more = f" and {len(members) - shown:,} more" if len(members) > shown else ""
        p = g.get("neglog10_p")
        rows.append(
            f"<tr><td>{_e(g.get('group'))}</td><td>{_e(what)}</td><td class='num' data-v='{g.get('accounts') or 0}'>{_num(g.get('accounts'))}</td>"
            f"<td class='num' data-v='{p if p is not None else 0}'>{_num(p, '10^-{:.1f}')}</td><td>{_e(g.get('why'))}</td>"
            f"<td>{_e(', '.join(members[:shown]) + more)}</td></tr>"
        )
    return (
        "<h3>Groups examined and not called a campaign</h3><p class='note'>Webs and small groups first, strongest first "
        "within each kind; every account of a web or a small group is in <code>campaigns.json</code>.</p><div class='scroll'>"
        "<table class='dg-table' id='overview-near-misses' data-figure='near_misses'><thead><tr><th>group</th><th>what</th>"
        f"<th>accounts</th><th>chance p</th><th>why not</th><th>accounts to watch</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _accounts_table(cid: str, d: dict[str, Any]) -> str:
    numeric = {"risk", "exchanges", "active days"}
    head = "".join(f"<th>{_e(c)}</th>" for c in d["columns"])
    body = []
    for row in d["rows"]:
        cells = []
        for col, v in zip(d["columns"], row, strict=True):
            if col in numeric:
                cells.append(f"<td class='num' data-v='{v}'>{_e(v)}</td>")
            elif col == "top evidence":
                cells.append("<td>" + "<br>".join(_e(x) for x in v) + "</td>")
            else:
                cells.append(f"<td>{_e(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    cut = f" (the {d['shown']:,} riskiest of {d['members']:,}; every account is in accounts.parquet)" if d["shown"] < d["members"] else ""
    return (
        f"<h3>Accounts{cut}</h3><p class='note'>Click a column to sort.</p><div class='scroll'>"
        f"<table class='dg-table' id='{_e(cid)}-accounts' data-figure='accounts' data-campaign='{_e(cid)}'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


_NOTES = {
    "creations": "Sign-ups per UTC day; the right axis counts every account the hunt did not flag, from {lead} days before the campaign's first sign-up.",
    "daily_volume": "For each day, the median and 90th percentile of exchanges sent by the accounts active that day (log scale).",
    "hours": "Share of each group's exchanges per hour of day. Claimed local time uses the billing country's clock (the middle of the offsets its zones keep); {noclaim} member account(s) claim no known country.",
    "templates": "Masked opening words of each member's most repeated prompt (lower case, digits as 0, punctuation as spaces), and how many members and other accounts lean on it most.",
    "output_length": "Share of exchanges by output tokens.",
    "infrastructure": "Accounts (circles, by risk) joined to the IP prefixes, devices, mail domains, phones, cards and sign-up networks (diamonds) that two or more of them carry; artifacts held by many members and few others first. {with_art:,} of {members:,} members share at least one.",
    "timeline": "Exchanges, active accounts and sign-ups per UTC day; dotted lines mark first sign-up, first exchange, busiest day and last exchange.",
}


def _campaign(c: dict[str, Any], specs: dict[str, Any]) -> str:
    cid = c["id"]
    figs = c["figures"]
    ev = "".join(f"<li>{_e(e)}</li>" for e in c["evidence"])
    parts = [
        f"<section id='{_e(cid)}' class='dg-campaign' data-campaign='{_e(cid)}'>",
        f"<h2>Campaign {_e(cid)}: {_num(c['size'])} accounts, {_num(c['exchanges'])} exchanges, "
        f"{_e(' to '.join(map(str, c['span'] or [])))}, risk {_num(c['risk'], '{:.2f}')}</h2>",
        f"<h3>Evidence</h3><ul class='ev'>{ev}</ul>",
    ]
    fill = {
        "lead": CREATION_LEAD_DAYS,
        "noclaim": figs["hours"]["accounts_without_claim"],
        "with_art": figs["infrastructure"]["members_with_shared_artifact"],
        "members": figs["infrastructure"]["members"],
    }
    for name in FIGURES:
        if name == "accounts":
            parts.append(_accounts_table(cid, figs[name]))
            continue
        div_id = f"{cid}-{name}"
        specs[div_id] = chart(name, figs[name])
        parts.append(f"<div class='dg-chart' id='{_e(div_id)}' data-figure='{name}' data-campaign='{_e(cid)}'></div>")
        parts.append(f"<p class='note'>{_e(_NOTES[name].format(**fill))}</p>")
    parts.append("</section>")
    return "".join(parts)


def render_page(report: dict[str, Any]) -> str:
    """The whole page for a report dict (``overview``, ``campaigns``) as ``report.json`` holds it."""
    ov = report["overview"]
    specs: dict[str, Any] = {}
    sections = "".join(_campaign(c, specs) for c in report["campaigns"])
    nav = "".join(f"<a href='#{_e(c['id'])}'>{_e(c['id'])}</a>" for c in report["campaigns"])
    spec_json = json.dumps(specs, separators=(",", ":")).replace("</", "<\\/")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>distillguard report: {len(report['campaigns'])} campaign(s)</title><style>{_CSS}</style>"
        f"<script>{get_plotlyjs()}</script></head><body>"
        f"<header><h1>distillguard: what the hunt found</h1><p>{len(report['campaigns'])} campaign(s), "
        f"{ov['flagged']:,} of {ov['accounts']:,} accounts flagged</p></header><main>"
        f"<nav><a href='#overview'>Overview</a>{nav}</nav>{_overview(ov)}{sections}</main>"
        f"<script type='application/json' id='dg-specs'>{spec_json}</script><script>{_JS}</script></body></html>"
    )
