"""Hand-made populations for hunt tests: ordinary users, the traps, and one campaign."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import Any

import polars as pl

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)
WORDS = ["how", "do", "i", "cook", "rice", "what", "is", "the", "capital", "of", "peru", "write", "a", "poem", "about", "my", "cat", "explain", "tax", "rules", "for", "freelancers", "why", "is", "the", "sky", "blue", "recommend", "a", "book", "plan", "a", "trip", "to", "lisbon", "fix", "my", "resume"]


def _human_ts(rng: random.Random, days: int, tz: int) -> dt.datetime:
    day = rng.randrange(days)
    hour = (rng.choice([9, 10, 11, 13, 14, 15, 16, 19, 20, 21, 22]) - tz) % 24
    return T0 + dt.timedelta(days=day, hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))


def population(
    seed: int = 0, days: int = 3, campaign: int = 30, casual: int = 300, wave: int = 0
) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, str]]:
    """Exchanges, accounts and the archetype of each account (the labels, kept apart).
    ``wave``: a disposable wave's first accounts, too few for a campaign."""
    rng = random.Random(seed)
    ex: list[dict[str, Any]] = []
    acc: list[dict[str, Any]] = []
    arche: dict[str, str] = {}

    def add_account(aid: str, kind: str, **kw: Any) -> None:
        arche[aid] = kind
        acc.append({"account_id": aid, "created_at": T0 - dt.timedelta(days=rng.randint(30, 400)), **kw})

    def add(aid: str, ts: dt.datetime, prompt: str, **kw: Any) -> None:
        row = {
            "request_id": f"r{len(ex):07d}", "ts": ts, "account_id": aid, "prompt": prompt,
            "input_tokens": rng.randint(10, 400), "output_tokens": rng.randint(20, 700), "model": "m-1",
            "max_tokens": None, "stop_reason": "end_turn", "asn": 7922, "ip_prefix": None,
            "device_fp": None, "user_agent": "Mozilla/5.0",
        }  # fmt: skip
        row.update(kw)
        ex.append(row)

    for i in range(casual):
        aid = f"u{rng.getrandbits(40):010x}"
        add_account(aid, "casual", email_domain=rng.choice(["gmail.com", "outlook.com", "yahoo.com"]))
        tz = rng.choice([-8, -5, 0, 1, 8])
        pfx = f"73.{i % 250}.{rng.randrange(250)}.0/24"
        for _ in range(max(1, int(rng.paretovariate(1.3) * 6))):
            add(aid, _human_ts(rng, days, tz), " ".join(rng.choices(WORDS, k=rng.randint(3, 25))),
                ip_prefix=pfx, device_fp=f"dev-{aid}")  # fmt: skip
    # Trap: 40 students behind one university NAT, each an ordinary person.
    for _ in range(40):
        aid = f"u{rng.getrandbits(40):010x}"
        add_account(aid, "nat_shared", email_domain="uni.example.edu")
        for _ in range(rng.randint(8, 40)):
            add(aid, _human_ts(rng, days, 1), " ".join(rng.choices(WORDS, k=rng.randint(3, 25))),
                ip_prefix="128.100.7.0/24", asn=239, device_fp=f"dev-{aid}")  # fmt: skip
    # Trap: one enterprise app, huge 24/7 volume, one templated prompt, stable IP.
    ent = f"u{rng.getrandbits(40):010x}"
    add_account(ent, "enterprise_app", email_domain="bigcorp.example.com", verified=True)
    for k in range(days * 2000):
        add(ent, T0 + dt.timedelta(seconds=k * 43.2), f"Summarise this support ticket in two lines: ticket {k} "
            + " ".join(rng.choices(WORDS, k=12)), ip_prefix="52.10.1.0/24", asn=16509, device_fp="ent-sdk",
            max_tokens=256)  # fmt: skip
    # Trap: two eval runners with the same benchmark template, bursty for a day.
    for _ in range(2):
        ev = f"u{rng.getrandbits(40):010x}"
        add_account(ev, "eval_runner", email_domain="evals.example.org")
        start = T0 + dt.timedelta(days=rng.randrange(days))
        for k in range(1500):
            add(ev, start + dt.timedelta(seconds=k * 20), "Answer the following multiple choice question. "
                f"Question {rng.randrange(10**6)}: " + " ".join(rng.choices(WORDS, k=10)),
                ip_prefix=f"34.1.{rng.randrange(9)}.0/24", asn=15169, max_tokens=16)  # fmt: skip
    # The campaign: many accounts acting as one.
    signup = T0 - dt.timedelta(hours=5)
    for i in range(campaign):
        aid = f"u{rng.getrandbits(40):010x}"
        add_account(aid, "naive_scraper", email_domain=rng.choice(["novalabs-ai.com", "quantix.io"]),
                    created_at=signup + dt.timedelta(minutes=rng.randrange(40)))  # fmt: skip
        acc[-1]["created_at"] = signup + dt.timedelta(minutes=rng.randrange(40))
        for _ in range(rng.randint(150, 300)):
            add(aid, T0 + dt.timedelta(seconds=rng.randrange(days * 86400)),
                "You are asked to come up with a set of 20 diverse task instructions. Topic: "
                + " ".join(rng.choices(WORDS, k=4)),
                ip_prefix=f"45.77.{i % 6}.0/24", asn=20473, device_fp=f"bot-{rng.randrange(3)}",
                max_tokens=4096, output_tokens=4096, stop_reason="max_tokens",
                user_agent="python-requests/2.31")  # fmt: skip
    # A disposable wave: signed up an hour apart on one network, each used hard for a day with
    # one template, long worked answers harvested.
    for i in range(wave):
        aid = f"u{rng.getrandbits(40):010x}"
        add_account(aid, "disposable", email_domain="hotmail.com", created_at=T0 + dt.timedelta(hours=i),
                    signup_ip=f"31.51.178.{10 + i}")  # fmt: skip
        for _ in range(400):
            add(aid, T0 + dt.timedelta(hours=i, seconds=rng.randrange(86400)),
                "Solve the following problem and give a complete worked solution: " + " ".join(rng.choices(WORDS, k=12)),
                ip_prefix="31.51.178.0/24", asn=45102, device_fp=f"dev-{aid}", max_tokens=8192,
                output_tokens=rng.randint(2500, 4000), user_agent="python-httpx/0.27")  # fmt: skip
    exchanges = pl.DataFrame(ex, infer_schema_length=None).sort("ts")
    accounts = pl.DataFrame(acc, infer_schema_length=None)
    return exchanges, accounts, arche


def labelled_log(root: Path, seed: int, casual: int, campaign: int) -> Path:
    """The population written as a log folder, labels included (for the CLI and bench tests)."""
    from distillguard.io import write_log

    ex, acc, arche = population(seed=seed, casual=casual, campaign=campaign)
    labels = pl.DataFrame(
        {
            "account_id": list(arche),
            "campaign_id": [("c1" if k == "naive_scraper" else None) for k in arche.values()],
            "archetype": list(arche.values()),
        }
    )
    return write_log(root, ex.to_arrow(), acc.to_arrow(), labels.to_arrow())
