"""The numbers behind each picture of a campaign: small JSON-able dicts, one per figure.

They are what ``report.json`` carries for machines and what :mod:`distillguard.report.charts`
draws, so the page and the JSON never disagree. Each figure is aggregated to a size that
does not grow with the log (per day, per hour, per length bin, top-N), except the account
table, which is cut at :data:`MAX_TABLE_ROWS` rows (the full list is ``accounts.parquet``).
"""

from __future__ import annotations

import datetime
from typing import Any

import igraph as ig
import numpy as np
import polars as pl

from distillguard.report.aggregate import BENIGN, HuntOutput, LogAggregates, bin_edge

__all__ = ["FIGURES", "MAX_TABLE_ROWS", "campaign_figures", "overview"]

# Every campaign section has exactly these figures, in this order (the page's
# ``data-figure`` names and the keys of ``report.json``'s ``figures``).
FIGURES = (
    "creations",
    "daily_volume",
    "hours",
    "templates",
    "output_length",
    "infrastructure",
    "timeline",
    "accounts",
)
MAX_TABLE_ROWS = 1000
MAX_GRAPH_ACCOUNTS = 250
MAX_GRAPH_ARTIFACTS = 30
TOP_TEMPLATES = 10
CREATION_LEAD_DAYS = 30  # days of benign sign-ups shown before the campaign's first one
ARTIFACT_LABELS = {
    "ip_prefix": "IP prefix",
    "device_fp": "device fingerprint",
    "email_domain": "email domain",
    "phone_hash": "phone number",
    "payment_fp": "payment method",
    "signup_prefix": "sign-up network and week",
}


def _day(d: Any) -> str:
    return d.isoformat() if isinstance(d, datetime.date) else str(d)


def _r(x: Any, nd: int = 3) -> Any:
    return None if x is None else round(float(x), nd)


class _Shared:
    """Aggregates every campaign's figures reuse: computed once per report."""

    def __init__(self, agg: LogAggregates) -> None:
        acc = agg.accounts
        self.agg = agg
        g = acc.select("a", "g")
        self.days = agg.account_days.join(g, on="a", how="left").with_columns(pl.col("g").fill_null(BENIGN))
        self.per_account = self.days.group_by("a").agg(
            exchanges=pl.col("n").sum(), active_days=pl.len(), first=pl.col("day").min(), last=pl.col("day").max()
        )
        self.daily = (
            self.days.group_by("g", "day")
            .agg(
                median=pl.col("n").median(),
                p90=pl.col("n").quantile(0.9, "nearest"),
                max=pl.col("n").max(),
                active=pl.len(),
                exchanges=pl.col("n").sum(),
            )
            .sort("day")
        )
        self.created = acc.filter(pl.col("created_at").is_not_null()).with_columns(day=pl.col("created_at").dt.date())
        pairs = agg.pairs.join(g, on="a", how="left").with_columns(pl.col("g").fill_null(BENIGN))
        self.pairs = pairs
        self.carriers = pairs.group_by("kind", "value").agg(total=pl.len())
        days = agg.days
        self.window = (days[0], days[-1]) if days else (None, None)

    def daily_of(self, g: int) -> pl.DataFrame:
        return self.daily.filter(pl.col("g") == g)


def overview(hunt: HuntOutput, agg: LogAggregates, logs: list[str]) -> dict[str, Any]:
    """The page's first section: what was read, what was found."""
    acc = hunt.accounts
    flagged = int(acc["flagged"].sum())
    decisions = acc.group_by("decision").len().sort("decision")
    days = agg.days
    return {
        "hunt_dir": str(hunt.root),
        "logs": logs,
        "generated_at": hunt.meta.get("generated_at"),
        "window": [_day(days[0]), _day(days[-1])] if days else None,
        "exchanges": agg.exchanges,
        "accounts": acc.height,
        "flagged": flagged,
        "decisions": {str(r["decision"]): int(r["len"]) for r in decisions.iter_rows(named=True)},
        "campaigns": [
            {
                "id": c["id"],
                "size": c.get("size"),
                "exchanges": c.get("exchanges"),
                "span": c.get("span"),
                "risk": c.get("risk"),
                "strongest_evidence": (c.get("evidence") or [None])[0],
            }
            for c in hunt.campaigns
        ],
        "unused_signals": hunt.unused_signals,
        "near_misses": len(hunt.near_misses),
        # The groups themselves, so a reviewer reads what was let through and which accounts to watch.
        "near_miss_groups": [
            {k: n.get(k) for k in ("group", "label", "value", "accounts", "neglog10_p", "why", "members")} for n in hunt.near_misses
        ],
    }


def campaign_figures(hunt: HuntOutput, agg: LogAggregates) -> list[dict[str, Any]]:
    """One entry per campaign: its id, headline numbers, evidence and :data:`FIGURES`."""
    shared = _Shared(agg)
    out = []
    for g, camp in enumerate(hunt.campaigns, start=1):
        members = agg.accounts.filter(pl.col("g") == g)
        figs = {
            "creations": _creations(shared, g),
            "daily_volume": _daily_volume(shared, g),
            "hours": _hours(agg, g),
            "templates": _templates(hunt, members, camp),
            "output_length": _output_length(agg, g),
            "infrastructure": _infrastructure(shared, members, g),
            "timeline": _timeline(shared, g, camp),
            "accounts": _accounts(shared, members, camp),
        }
        assert tuple(figs) == FIGURES
        out.append(
            {
                "id": camp["id"],
                "size": camp.get("size", members.height),
                "exchanges": camp.get("exchanges"),
                "span": camp.get("span"),
                "risk": camp.get("risk"),
                "evidence": list(camp.get("evidence") or []),
                "shared_artifacts": list(camp.get("shared_artifacts") or []),
                "figures": figs,
            }
        )
    return out


def _creations(s: _Shared, g: int) -> dict[str, Any]:
    own = s.created.filter(pl.col("g") == g)
    if own.is_empty():
        return {"days": [], "campaign": [], "benign": [], "benign_earlier": 0}
    first: datetime.date = own["day"].min()  # type: ignore[assignment]
    start = first - datetime.timedelta(days=CREATION_LEAD_DAYS)
    end: datetime.date = max(own["day"].max(), s.created["day"].max())  # type: ignore[type-var,assignment]
    span = pl.DataFrame({"day": pl.date_range(start, end, "1d", eager=True)})
    benign = s.created.filter(pl.col("g") == BENIGN)
    counts = (
        span.join(own.group_by("day").len().rename({"len": "campaign"}), on="day", how="left")
        .join(benign.group_by("day").len().rename({"len": "benign"}), on="day", how="left")
        .fill_null(0)
        .sort("day")
    )
    return {
        "days": [_day(d) for d in counts["day"]],
        "campaign": counts["campaign"].to_list(),
        "benign": counts["benign"].to_list(),
        "benign_earlier": int((benign["day"] < start).sum()),
    }


def _daily_volume(s: _Shared, g: int) -> dict[str, Any]:
    def series(gi: int) -> dict[str, Any]:
        d = s.daily_of(gi)
        return {
            "days": [_day(x) for x in d["day"]],
            "median": [_r(x, 1) for x in d["median"]],
            "p90": [_r(x, 1) for x in d["p90"]],
            "max": d["max"].to_list(),
            "active_accounts": d["active"].to_list(),
        }

    return {"unit": "exchanges per active account per day", "campaign": series(g), "benign": series(BENIGN)}


def _hours(agg: LogAggregates, g: int) -> dict[str, Any]:
    rows, z, counts = [], [], []
    for gi, who in ((g, "campaign"), (BENIGN, "not flagged")):
        for clock, label in (("local", "claimed local time"), ("utc", "UTC")):
            h = agg.hours.filter((pl.col("g") == gi) & (pl.col("clock") == clock))
            c = np.zeros(24, dtype=np.int64)
            c[h["hour"].to_numpy().astype(np.int64)] = h["n"].to_numpy()
            rows.append(f"{who}, {label}")
            counts.append(c.tolist())
            z.append([round(float(x), 4) for x in (c / c.sum() if c.sum() else c)])
    no_claim = agg.accounts.filter((pl.col("g") == g) & pl.col("off").is_null()).height
    return {"hours": list(range(24)), "rows": rows, "share": z, "counts": counts, "accounts_without_claim": no_claim}


def _templates(hunt: HuntOutput, members: pl.DataFrame, camp: dict[str, Any]) -> dict[str, Any]:
    shared = [
        {"kind": a["kind"], "label": a.get("label"), "text": a.get("value"), "carriers": a.get("carriers"),
         "unusual_carriers": a.get("unusual_carriers"), "mean_rank": a.get("mean_rank"), "test": a.get("test")}
        for a in camp.get("shared_artifacts") or []
        if str(a.get("kind", "")).startswith(("tpl_", "script"))
    ]  # fmt: skip
    top: list[dict[str, Any]] = []
    if hunt.features is not None:
        f = hunt.features.rename({"template.top_head_text": "text", "template.top_share": "share"})
        f = f.filter(pl.col("text").is_not_null() & (pl.col("text") != ""))
        ids = members.select("account_id")
        mine = f.join(ids, on="account_id", how="semi")
        best = (
            mine.group_by("text")
            .agg(accounts=pl.len(), median_share=pl.col("share").median())
            .sort(["accounts", "text"], descending=[True, False])
            .head(TOP_TEMPLATES)
        )
        others = f.join(ids, on="account_id", how="anti").join(best.select("text"), on="text", how="semi")
        elsewhere = dict(others.group_by("text").len().iter_rows())
        top = [
            {"text": r["text"], "accounts": r["accounts"], "elsewhere": int(elsewhere.get(r["text"], 0)),
             "median_share": _r(r["median_share"])}
            for r in best.iter_rows(named=True)
        ]  # fmt: skip
    return {
        "what": "each member's most repeated prompt opening (masked: lower case, digits as 0, punctuation as spaces)",
        "members": members.height,
        "top": top,
        "shared_templates": shared,
    }


def _output_length(agg: LogAggregates, g: int) -> dict[str, Any]:
    ln = agg.lengths.filter(pl.col("g").is_in([g, BENIGN]))
    seen = ln["bin"].to_list()
    bins = list(range(min(seen), max(seen) + 1)) if seen else []
    out: dict[str, Any] = {"edges": [round(bin_edge(b), 1) for b in bins], "bins_per_octave": 4}
    for gi, who in ((g, "campaign"), (BENIGN, "benign")):
        d = dict(ln.filter(pl.col("g") == gi).select("bin", "n").iter_rows())
        n = sum(d.values())
        tokens = int(ln.filter(pl.col("g") == gi)["tokens"].sum())
        out[who] = [round(d.get(b, 0) / n, 5) if n else 0.0 for b in bins]
        out[f"{who}_exchanges"] = n
        out[f"{who}_mean_tokens"] = round(tokens / n, 1) if n else None
    return out


def _infrastructure(s: _Shared, members: pl.DataFrame, g: int) -> dict[str, Any]:
    """Accounts and the artifacts two or more of them carry, best first: artifacts held by
    many members and few others (``in_campaign² / carriers``), each kind its share of the
    places (a proxy pool's hundred prefixes would otherwise hide the phones and cards)."""
    mine = s.pairs.filter(pl.col("g") == g)
    arts = (
        mine.group_by("kind", "value")
        .agg(in_campaign=pl.len())
        .filter(pl.col("in_campaign") >= 2)
        .join(s.carriers, on=["kind", "value"])
        .with_columns(weight=pl.col("in_campaign") ** 2 / pl.col("total"))
        .sort(["weight", "kind", "value"], descending=[True, False, False])
    )
    per_kind = max(3, MAX_GRAPH_ARTIFACTS // max(1, arts["kind"].n_unique()))
    arts = (
        arts.with_columns(rank=pl.int_range(pl.len()).over("kind"))
        .sort(["rank", "weight", "kind", "value"], descending=[False, True, False, False])
        .filter(pl.col("rank") < per_kind)
        .head(MAX_GRAPH_ARTIFACTS)
    )
    edges = mine.join(arts.select("kind", "value"), on=["kind", "value"], how="semi")
    deg = edges.group_by("a").len().join(members.select("a", "account_id", "risk"), on="a")
    shown = deg.sort(["len", "risk", "account_id"], descending=[True, True, False]).head(MAX_GRAPH_ACCOUNTS)
    edges = edges.join(shown.select("a"), on="a", how="semi")
    acc_nodes = shown.sort("account_id")
    art_nodes = arts.join(edges.select("kind", "value").unique(), on=["kind", "value"], how="semi")
    nodes: list[dict[str, Any]] = [
        {"type": "account", "id": r["account_id"], "risk": _r(r["risk"])} for r in acc_nodes.iter_rows(named=True)
    ]
    index = {("a", r["a"]): i for i, r in enumerate(acc_nodes.iter_rows(named=True))}
    for r in art_nodes.iter_rows(named=True):
        index[(r["kind"], r["value"])] = len(nodes)
        nodes.append(
            {"type": "artifact", "kind": r["kind"], "label": ARTIFACT_LABELS.get(r["kind"], r["kind"]),
             "id": str(r["value"]), "in_campaign": r["in_campaign"], "carriers": r["total"]}
        )  # fmt: skip
    pairs = [(index[("a", r[0])], index[(r[1], r[2])]) for r in edges.select("a", "kind", "value").iter_rows()]
    pairs.sort()
    xy = _layout(len(nodes), pairs)
    for n, (x, y) in zip(nodes, xy, strict=True):
        n["x"], n["y"] = round(x, 3), round(y, 3)
    return {
        "nodes": nodes,
        "edges": [list(p) for p in pairs],
        "accounts_shown": acc_nodes.height,
        "members": members.height,
        "members_with_shared_artifact": deg.height,
        "kinds": sorted({n["kind"] for n in nodes if n["type"] == "artifact"}),
    }


def _layout(n: int, edges: list[tuple[int, int]]) -> list[tuple[float, float]]:
    """Fruchterman-Reingold from a fixed start (a circle), so the same hunt draws the same graph."""
    if n == 0:
        return []
    start = [[float(np.cos(2 * np.pi * i / n)), float(np.sin(2 * np.pi * i / n))] for i in range(n)]
    graph = ig.Graph(n=n, edges=edges)
    pos = graph.layout_fruchterman_reingold(seed=start, niter=300)
    xy = np.asarray(pos.coords, dtype=float)
    span = np.ptp(xy, axis=0)
    xy = (xy - xy.min(axis=0)) / np.where(span > 0, span, 1.0)
    return [(float(a), float(b)) for a, b in xy]


def _timeline(s: _Shared, g: int, camp: dict[str, Any]) -> dict[str, Any]:
    d = s.daily_of(g)
    created = s.created.filter(pl.col("g") == g).group_by("day").len()
    days = sorted(set(d["day"].to_list()) | set(created["day"].to_list()))
    ex = dict(d.select("day", "exchanges").iter_rows())
    act = dict(d.select("day", "active").iter_rows())
    cr = dict(created.iter_rows())
    events: list[dict[str, Any]] = []
    if created.height:
        events.append({"day": _day(created["day"].min()), "what": "first member account created"})
    if d.height:
        events.append({"day": _day(d["day"].min()), "what": "first exchange"})
        peak = d.sort(["exchanges", "day"], descending=[True, False]).row(0, named=True)
        events.append({"day": _day(peak["day"]), "what": f"busiest day: {peak['exchanges']:,} exchanges"})
        events.append({"day": _day(d["day"].max()), "what": "last exchange"})
    for a in camp.get("shared_artifacts") or []:
        if a.get("kind") == "model_adopt":
            events.append({"day": None, "what": f"{a.get('label')}: {a.get('value')}"})
    return {
        "days": [_day(x) for x in days],
        "exchanges": [int(ex.get(x, 0)) for x in days],
        "active_accounts": [int(act.get(x, 0)) for x in days],
        "accounts_created": [int(cr.get(x, 0)) for x in days],
        "events": events,
    }


def _accounts(s: _Shared, members: pl.DataFrame, camp: dict[str, Any]) -> dict[str, Any]:
    common = {*(camp.get("evidence") or [])}
    rows = (
        members.join(s.per_account, on="a", how="left")
        .sort(["risk", "account_id"], descending=[True, False])
        .head(MAX_TABLE_ROWS)
    )
    out = []
    for r in rows.iter_rows(named=True):
        ev = [e for e in (r["evidence"] or []) if e not in common and not e.startswith("member of campaign")]
        out.append(
            [r["account_id"], _r(r["risk"]), r["decision"], int(r["exchanges"] or 0), int(r["active_days"] or 0),
             _day(r["first"]) if r["first"] else None,
             r["created_at"].date().isoformat() if r["created_at"] else None, r["country"], ev[:2]]
        )  # fmt: skip
    cols = ["account", "risk", "decision", "exchanges", "active days", "first seen", "created", "country", "top evidence"]
    return {"columns": cols, "rows": out, "members": members.height, "shown": len(out)}
