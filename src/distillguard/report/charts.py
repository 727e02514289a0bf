"""Plotly specs (``{"data": [...], "layout": {...}}``) drawn from :mod:`distillguard.report.figures`.

Built with ``plotly.graph_objects`` (validated) and serialised to plain JSON; the page calls
``Plotly.newPlot`` on them with the plotly.js it embeds, so nothing is fetched.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

__all__ = ["CHARTS", "chart"]

CAMPAIGN = "#c0392b"
BENIGN = "#7f8c8d"
_KIND_COLOURS = {
    "ip_prefix": "#2980b9",
    "device_fp": "#8e44ad",
    "email_domain": "#16a085",
    "phone_hash": "#d35400",
    "payment_fp": "#f39c12",
    "signup_prefix": "#2c3e50",
}


def _base(fig: go.Figure, title: str, height: int = 320) -> dict[str, Any]:
    fig.update_layout(
        title={"text": title, "x": 0.01, "font": {"size": 14}},
        height=height,
        margin={"l": 60, "r": 30, "t": 50, "b": 90},
        legend={"orientation": "h", "y": -0.3, "yanchor": "top"},
    )
    spec: dict[str, Any] = json.loads(fig.to_json())
    spec["layout"].pop("template", None)  # the default template is 8 kB per chart; plotly.js defaults suffice
    spec["layout"].update(paper_bgcolor="white", plot_bgcolor="white")
    return spec


def _creations(d: dict[str, Any]) -> dict[str, Any]:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=d["days"], y=d["campaign"], name="campaign accounts created", marker_color=CAMPAIGN)
    fig.add_scatter(x=d["days"], y=d["benign"], name="other accounts created (right axis)", mode="lines",
                    line={"color": BENIGN}, secondary_y=True)  # fmt: skip
    fig.update_yaxes(title_text="campaign", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="others", secondary_y=True, showgrid=False, rangemode="tozero")
    fig.update_xaxes(tickformat="%b %d")
    return _base(fig, "Account creations per day: campaign vs the accounts not flagged")


def _daily_volume(d: dict[str, Any]) -> dict[str, Any]:
    fig = go.Figure()
    for who, colour in (("campaign", CAMPAIGN), ("benign", BENIGN)):
        s = d[who]
        label = "campaign" if who == "campaign" else "not flagged"
        fig.add_scatter(x=s["days"], y=s["p90"], name=f"{label}: 90th percentile", mode="lines",
                        line={"color": colour, "dash": "dot"})  # fmt: skip
        fig.add_scatter(x=s["days"], y=s["median"], name=f"{label}: median", mode="lines+markers", line={"color": colour})
    fig.update_yaxes(title_text="exchanges / account / day", type="log")
    fig.update_xaxes(tickformat="%b %d")
    return _base(fig, "Daily volume per active account: campaign vs baseline")


def _hours(d: dict[str, Any]) -> dict[str, Any]:
    fig = go.Figure(
        go.Heatmap(
            z=d["share"], x=d["hours"], y=d["rows"], customdata=d["counts"], colorscale="Reds",
            hovertemplate="%{y}<br>hour %{x}:00<br>%{z:.1%} of exchanges (%{customdata:,})<extra></extra>",
            colorbar={"title": {"text": "share"}, "tickformat": ".0%"},
        )
    )  # fmt: skip
    fig.update_xaxes(title_text="hour of day", dtick=2)
    fig.update_yaxes(autorange="reversed")
    spec = _base(fig, "Hour of day: in each account's claimed time zone and in UTC", height=300)
    spec["layout"]["margin"]["l"] = 190
    return spec


# The end of the note a chart with no template bars carries; it opens with the members'
# count, so two such campaigns' charts say (and show) which is which.
NO_TEMPLATES = "repeats a prompt opening: this campaign is tied by other evidence"


def _templates(d: dict[str, Any]) -> dict[str, Any]:
    top = list(reversed(d["top"]))
    labels = [t["text"] if len(t["text"]) <= 60 else t["text"][:59] + "…" for t in top]
    fig = go.Figure()
    fig.add_bar(y=labels, x=[t["accounts"] for t in top], orientation="h", name="campaign accounts", marker_color=CAMPAIGN,
                customdata=[[t["median_share"], t["text"]] for t in top],
                hovertemplate="%{customdata[1]}<br>%{x} members; median share of their prompts %{customdata[0]:.0%}<extra></extra>")  # fmt: skip
    fig.add_bar(y=labels, x=[t["elsewhere"] for t in top], orientation="h", name="other accounts", marker_color=BENIGN)
    fig.update_layout(barmode="group", margin={"l": 320})
    fig.update_xaxes(title_text="accounts whose most repeated prompt opening this is")
    if not top:  # a campaign tied by other artifacts: say so rather than leave empty axes
        fig.add_annotation(text=f"None of its {d['members']:,} members {NO_TEMPLATES}", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 13})
    spec = _base(fig, "Template repetition: how many accounts lean on each masked template", height=120 + 36 * max(1, len(top)))
    spec["layout"]["margin"]["l"] = 320
    return spec


def _output_length(d: dict[str, Any]) -> dict[str, Any]:
    fig = go.Figure()
    for who, colour, label in (("campaign", CAMPAIGN, "campaign"), ("benign", BENIGN, "not flagged")):
        fig.add_scatter(x=[max(e, 1.0) for e in d["edges"]], y=d[who], name=f"{label} (mean {d[f'{who}_mean_tokens']} tokens)",
                        mode="lines", line={"color": colour, "shape": "hv"}, fill="tozeroy")  # fmt: skip
    fig.update_xaxes(title_text="output tokens (log scale, quarter-octave bins)", type="log")
    fig.update_yaxes(title_text="share of exchanges", tickformat=".0%")
    return _base(fig, "Output length: campaign vs accounts not flagged")


def _infrastructure(d: dict[str, Any]) -> dict[str, Any]:
    nodes, edges = d["nodes"], d["edges"]
    ex: list[float | None] = []
    ey: list[float | None] = []
    for a, b in edges:
        ex += [nodes[a]["x"], nodes[b]["x"], None]
        ey += [nodes[a]["y"], nodes[b]["y"], None]
    fig = go.Figure()
    fig.add_scatter(x=ex, y=ey, mode="lines", line={"width": 0.5, "color": "#bbb"}, hoverinfo="skip", showlegend=False)
    acc = [n for n in nodes if n["type"] == "account"]
    fig.add_scatter(x=[n["x"] for n in acc], y=[n["y"] for n in acc], mode="markers", name="account",
                    marker={"size": 6, "color": [n["risk"] for n in acc], "colorscale": "Reds", "cmin": 0, "cmax": 1,
                            "line": {"width": 0.5, "color": "#555"}},
                    text=[f"{n['id']}<br>risk {n['risk']}" for n in acc], hoverinfo="text")  # fmt: skip
    for kind in d["kinds"]:
        art = [n for n in nodes if n["type"] == "artifact" and n["kind"] == kind]
        fig.add_scatter(x=[n["x"] for n in art], y=[n["y"] for n in art], mode="markers", name=art[0]["label"],
                        marker={"symbol": "diamond", "size": [8 + min(16, n["in_campaign"] ** 0.5 * 2) for n in art],
                                "color": _KIND_COLOURS.get(kind, "#333")},
                        text=[f"{n['label']} {n['id'][:40]}<br>{n['in_campaign']} members of {n['carriers']} carriers" for n in art],
                        hoverinfo="text")  # fmt: skip
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    title = f"Shared infrastructure: {d['accounts_shown']} of {d['members']} accounts and the artifacts they share"
    return _base(fig, title, height=520)


def _timeline(d: dict[str, Any]) -> dict[str, Any]:
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_bar(x=d["days"], y=d["exchanges"], name="exchanges", marker_color=CAMPAIGN, opacity=0.6)
    fig.add_scatter(x=d["days"], y=d["active_accounts"], name="active accounts (right axis)", mode="lines+markers",
                    line={"color": "#2c3e50"}, secondary_y=True)  # fmt: skip
    fig.add_scatter(x=d["days"], y=d["accounts_created"], name="accounts created (right axis)", mode="markers",
                    marker={"symbol": "star", "size": 9, "color": "#f39c12"}, secondary_y=True)  # fmt: skip
    for e in d["events"]:
        if e["day"] is not None:
            fig.add_vline(x=e["day"], line={"width": 1, "dash": "dot", "color": "#999"})
    fig.update_yaxes(title_text="exchanges", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="accounts", secondary_y=True, showgrid=False, rangemode="tozero")
    fig.update_xaxes(tickformat="%b %d")
    return _base(fig, "Timeline of the campaign")


CHARTS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "creations": _creations,
    "daily_volume": _daily_volume,
    "hours": _hours,
    "templates": _templates,
    "output_length": _output_length,
    "infrastructure": _infrastructure,
    "timeline": _timeline,
}


def chart(name: str, data: dict[str, Any]) -> dict[str, Any]:
    """The plotly spec of figure ``name`` (every figure but the account table)."""
    return CHARTS[name](data)
