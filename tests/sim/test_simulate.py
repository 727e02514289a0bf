"""The simulator end to end: schema, labels, determinism, scale, fallback."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from distillguard import schema
from distillguard.sim import ATTACK, BENIGN, FallbackCorpusWarning, simulate
from distillguard.sim.scenario import builtin_names, load_scenario

from .conftest import Smoke, read


def _digest(log: Path) -> dict[str, str]:
    return {str(p.relative_to(log)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(log.rglob("*.parquet"))}


def test_smoke_log_matches_schema(smoke: Smoke) -> None:
    for name, sch in schema.TABLES.items():
        t = read(smoke.path, name)
        assert t.schema.names[: len(sch)] == sch.names, name
        for f in sch:
            assert t.schema.field(f.name).type == f.type, (name, f.name)
            if not f.nullable:
                assert t.column(f.name).null_count == 0, (name, f.name)
    x = read(smoke.path, "exchanges")
    assert x.num_rows == smoke.summary.n_exchanges
    assert pc.count_distinct(x.column("request_id")).as_py() == x.num_rows
    assert (smoke.path / "exchanges").glob("date=*")


def test_every_archetype_and_labels_consistent(smoke: Smoke) -> None:
    con = smoke.con
    # smoke keeps its bytes from before the careful operator's archetypes; tests/sim/test_tactics.py covers them
    assert {r[0] for r in con.execute("select distinct archetype from l").fetchall()} == set(BENIGN + ATTACK) - {
        "careful", "disposable"}
    assert con.execute("select count(*) from a anti join l using (account_id)").fetchone() == (0,)
    assert con.execute("select count(*) from l anti join a using (account_id)").fetchone() == (0,)
    assert con.execute("select count(*) from x anti join a using (account_id)").fetchone() == (0,)
    bad = con.execute(f"select count(*) from l where (campaign_id is null) != (archetype in {tuple(BENIGN)})").fetchone()
    assert bad == (0,)
    # every account sent something, and the summary agrees with the tables
    assert con.execute("select count(*) from a anti join x using (account_id)").fetchone() == (0,)
    assert smoke.summary.n_accounts == read(smoke.path, "accounts").num_rows


def test_ids_look_alike_for_benign_and_attack(smoke: Smoke) -> None:
    rows = smoke.con.execute("""
        select archetype in ('naive_scraper','hydra','stealth','reasoning_harvester','agentic_harvester') attack,
               min(length(account_id)), max(length(account_id)), min(length(request_id)), max(length(request_id)),
               min(length(api_key_id)), max(length(api_key_id)), min(length(device_fp)), max(length(device_fp)),
               min(left(account_id, 5)), max(left(account_id, 5))
        from e group by 1 order by 1""").fetchall()
    assert len(rows) == 2 and rows[0][1:] == rows[1][1:]


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    simulate("smoke", scale=0.3, seed=5, out=a, progress=False)
    simulate("smoke", scale=0.3, seed=5, out=b, progress=False)
    simulate("smoke", scale=0.3, seed=6, out=c, progress=False)
    assert _digest(a) == _digest(b)
    assert read(a, "exchanges").equals(read(b, "exchanges"))
    assert not read(a, "exchanges").equals(read(c, "exchanges"))
    assert read(a, "accounts").column("account_id") != read(c, "accounts").column("account_id")


def test_scale_shrinks_proportionally(tmp_path: Path, smoke: Smoke) -> None:
    half = simulate("smoke", scale=0.5, seed=1, out=tmp_path / "h", progress=False)
    assert 0.4 < half.n_accounts / smoke.summary.n_accounts < 0.6
    assert 0.35 < half.n_exchanges / smoke.summary.n_exchanges < 0.65
    sc, _ = load_scenario("qwen-2026").scaled(0.1)
    assert sum(c.accounts for c in sc.campaigns) == pytest.approx(2497, abs=3)
    assert sum(c.exchanges for c in sc.campaigns) == pytest.approx(2_880_000, rel=1e-3)


def test_no_responses_keeps_token_counts(tmp_path: Path) -> None:
    simulate("smoke", scale=0.2, seed=2, out=tmp_path, responses=False, progress=False)
    x = read(tmp_path, "exchanges")
    assert x.column("response").null_count == x.num_rows
    assert x.column("output_tokens").null_count == 0


def test_fallback_generator_with_empty_data_dir(tmp_path: Path) -> None:
    empty = tmp_path / "no-corpora"
    empty.mkdir()
    with pytest.warns(FallbackCorpusWarning):
        s = simulate("smoke", scale=0.2, seed=3, out=tmp_path / "log", data_dir=empty, progress=False)
    assert s.fallback and s.n_exchanges > 0
    assert s.corpora == []
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(s.render())
    assert "FALLBACK" in console.export_text()


def test_jsonl_and_csv_formats(tmp_path: Path) -> None:
    for fmt in ("jsonl", "csv"):
        s = simulate("smoke", scale=0.1, seed=4, out=tmp_path / fmt, fmt=fmt, progress=False)
        assert s.n_exchanges > 0
        assert list((tmp_path / fmt / "exchanges").glob(f"*.{fmt}"))


def test_builtin_scenarios_parse() -> None:
    assert {"smoke", "demo", "qwen-2026", "feb-2026"} <= set(builtin_names())
    q = load_scenario("qwen-2026")
    assert sum(c.accounts for c in q.campaigns) == 24_975
    assert sum(c.exchanges for c in q.campaigns) == 28_800_000
    benign = sum(p.accounts * p.exchanges_per_account for p in q.population)
    assert benign >= 28_800_000
    f = load_scenario("feb-2026")
    assert sorted(c.exchanges for c in f.campaigns) == [150_000, 3_400_000, 13_000_000]
    assert sum(c.accounts for c in f.campaigns) == pytest.approx(24_000, rel=0.01)


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[2] / "benchmarks" / "scenarios").glob("*.yaml")), ids=lambda p: p.stem)
def test_benchmark_scenarios_parse(path: Path) -> None:
    """The check scenarios under ``benchmarks/`` (shifted, traps, variant) are read only by
    measurements: a field the scenario schema stopped accepting would otherwise go unnoticed."""
    s = load_scenario(path)
    assert s.campaigns and s.population and s.name == path.stem


def test_tactics_scenario_combines_every_tactic_with_its_traps() -> None:
    t = load_scenario("tactics-2026")
    assert {c.archetype for c in t.campaigns} == {"careful", "disposable"}
    fleets = [c for c in t.campaigns if c.archetype == "careful"]
    assert len(fleets) == 2 and len({c.params["operator"] for c in fleets}) == 1  # one operator, two fleets
    assert 14 <= t.days <= 21 and 20_000 <= sum(p.accounts for p in t.population) <= 100_000
    params = {p.archetype: p.params for p in t.population}
    assert params["nat_shared"]["cgnat"] > 0 and params["eval_runner"]["answer_format"] and params["casual"]["abroad"] > 0


def test_user_scenario_file_and_errors(tmp_path: Path) -> None:
    from distillguard.errors import ConfigError

    p = tmp_path / "mine.yaml"
    p.write_text("""
window: {start: 2026-01-01, end: 2026-01-02}
population: {casual: {accounts: 20, exchanges_per_account: 3}}
campaigns: [{archetype: naive_scraper, accounts: 2, exchanges: 30}]
""")
    s = simulate(p, out=tmp_path / "log", progress=False)
    assert s.n_accounts == 22
    bad = tmp_path / "bad.yaml"
    bad.write_text("window: {start: 2026-01-01, end: 2026-01-02}\ncampaigns: [{archetype: pirate, accounts: 1, exchanges: 1}]\n")
    with pytest.raises(ConfigError, match="pirate"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="unknown scenario"):
        load_scenario("nope")


def test_summary_reports_repetition(smoke: Smoke) -> None:
    d = smoke.summary.near_duplicates
    assert set(d) >= {"exact, all benign", "exact, <64 chars", "exact, >=256"}
    assert all(0.0 <= v <= 1.0 for v in d.values())
    assert isinstance(pa.array([1]), pa.Array)


def test_out_holding_a_users_files_is_refused_unless_forced(tmp_path: Path) -> None:
    from distillguard.errors import ConfigError
    from distillguard.sim import MARKER

    out = tmp_path / "mine"
    (out / "exchanges").mkdir(parents=True)
    (out / "exchanges" / "precious.parquet").write_bytes(b"not yours")
    with pytest.raises(ConfigError, match=r"holds files distillguard simulate did not write \(e\.g\. exchanges/precious"):
        simulate("smoke", seed=1, out=out, progress=False)
    assert (out / "exchanges" / "precious.parquet").exists()
    simulate("smoke", seed=1, out=out, progress=False, force=True)
    assert (out / MARKER).exists() and not (out / "exchanges" / "precious.parquet").exists()
    simulate("smoke", seed=1, out=out, progress=False)  # its own folder: replaced without asking


def test_builtin_scenario_name_wins_over_a_same_named_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from distillguard.sim.scenario import load_scenario

    monkeypatch.chdir(tmp_path)
    (tmp_path / "smoke").mkdir()
    assert load_scenario("smoke").name == "smoke"
    (tmp_path / "mine.yaml").write_text((Path(__file__).parents[2] / "src/distillguard/scenarios/smoke.yaml").read_text())
    assert load_scenario("mine.yaml").name == "smoke"
