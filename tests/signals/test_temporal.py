from __future__ import annotations

import datetime as dt

from distillguard.signals.temporal import TemporalSignal
from tests.signals.helpers import by_id, finding

T0 = dt.datetime(2026, 4, 22, tzinfo=dt.UTC)


def test_bot_is_round_the_clock_and_regular_human_is_not() -> None:
    rows = []
    for k in range(24 * 30):  # every 2 minutes for a day, evenly
        rows.append({"request_id": f"b{k}", "ts": T0 + dt.timedelta(minutes=2 * k), "account_id": "bot",
                     "input_tokens": 1, "output_tokens": 1})  # fmt: skip
    for d in range(3):  # three evening sessions of bursts
        for k in range(30):
            ts = T0 + dt.timedelta(days=d, hours=19, seconds=k * (5 if k % 6 else 900))
            rows.append({"request_id": f"h{d}-{k}", "ts": ts, "account_id": "human", "input_tokens": 1, "output_tokens": 1})
    for i in range(100):  # a quiet population
        rows.append({"request_id": f"q{i}", "ts": T0 + dt.timedelta(hours=i), "account_id": f"q{i}", "input_tokens": 1, "output_tokens": 1})
    f, idx = finding(TemporalSignal(), rows)
    r = by_id(f, idx)
    assert r["bot"]["peak_daily"] == 720 and r["human"]["peak_daily"] == 30
    assert r["bot"]["round_clock"] > 0.99 and r["human"]["round_clock"] < 0.5
    assert r["bot"]["regularity"] > r["human"]["regularity"]
    assert r["bot"]["ts_peak_daily"] > r["human"]["ts_peak_daily"] > r["q0"]["ts_peak_daily"]
    assert f.explain is not None
    assert any("peak daily volume 720 requests on 2026-04-22" in s for s in f.explain(r["bot"]))
