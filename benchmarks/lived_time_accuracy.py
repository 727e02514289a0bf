"""How well the lived-time signal's offsets match the simulator's planned time zones.

Evaluation only: the simulator's plan (each account's ``tz``) is redrawn here from the
scenario and seed, as ``distillguard simulate`` draws it; the signal never sees it.

    python benchmarks/lived_time_accuracy.py /tmp/lt-demo11 --scenario demo --seed 11

Prints, per archetype: accounts, how many get a confident lived offset, how many of those
are within an hour of the planned one (circular), and how many are called misplaced.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl

from distillguard import corpora
from distillguard.hunt.state import HuntState
from distillguard.io import LogReader
from distillguard.signals.lived_time import LivedTimeSignal
from distillguard.signals.prepare import prepare_accounts
from distillguard.sim.pools import build_pools, fallback_corpora
from distillguard.sim.population import ARCHETYPES, plan_population
from distillguard.sim.scenario import load_scenario


def planned(scenario: str, scale: float, seed: int) -> pl.DataFrame:
    """``account_id, archetype, tz`` as the simulator planned them (same draws as simulate)."""
    sc, _ = load_scenario(scenario).scaled(scale)
    corp = corpora.load(None)
    fallback = corp.empty
    if fallback:
        corp = fallback_corpora(seed)
    pools = build_pools(corp, fallback)
    s_plan = np.random.SeedSequence([sc.seed & 0xFFFFFFFF, seed & 0xFFFFFFFF]).spawn(4)[0]
    plan, _, _ = plan_population(sc, pools, np.random.default_rng(s_plan))
    arch = [ARCHETYPES[i] for i in plan.a_arch]
    return pl.DataFrame({"account_id": plan.account_id, "archetype": arch, "tz": plan.a_tz})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("log", type=Path)
    ap.add_argument("--scenario", required=True)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args()
    sig = LivedTimeSignal()
    state = HuntState(signals=[sig])
    reader = LogReader(args.log)
    for batch in reader.exchange_batches(columns=("account_id", "ts"), ordered=False):
        state.observe(batch)
    sig.finalize(state.compacted()[sig.name], state.index.height)
    found = sig.finalize_accounts(prepare_accounts(reader.accounts(), state.index))
    assert found is not None
    f = found.features.join(state.index, on="account").join(planned(args.scenario, args.scale, args.seed), on="account_id")
    d = (pl.col("offset") - pl.col("tz")).abs() % 24
    f = f.with_columns(err=pl.min_horizontal(d, 24 - d))
    out = (
        f.group_by("archetype")
        .agg(
            accounts=pl.len(),
            confident=pl.col("offset").is_not_null().sum(),
            within_1h=(pl.col("err") <= 1).sum(),
            exact=(pl.col("err") <= 0.5).sum(),
            misplaced=(pl.col("misplaced") > 0).sum(),
            median_err=pl.col("err").median(),
        )
        .sort("archetype")
    )
    with pl.Config(tbl_rows=40, tbl_cols=12, tbl_width_chars=140):
        print(out)
    tot = out.select(pl.col("confident", "within_1h", "exact").sum()).row(0, named=True)
    print(json.dumps({"confident": tot["confident"], "within_1h": tot["within_1h"], "within_half_hour": tot["exact"]}))
    arts = found.artifacts
    if arts is not None and arts.height:
        g = arts.join(state.index, on="account").join(planned(args.scenario, args.scale, args.seed), on="account_id")
        print(g.group_by("value", "archetype").len().sort("value", "len"))


if __name__ == "__main__":
    main()
