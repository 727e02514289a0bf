"""Each archetype shows its documented behaviour in the smoke log."""

from __future__ import annotations

from distillguard.sim.infra import ASNS

from .conftest import Smoke, needs_corpora


def test_enterprise_apps_single_verified_stable_one_template(smoke: Smoke) -> None:
    rows = smoke.con.execute("""
        select account_id, count(distinct ip_prefix), count(distinct device_fp), count(distinct system),
               count(*), any_value(verified)
        from e join a using (account_id) where archetype = 'enterprise_app' group by 1""").fetchall()
    assert rows
    for _, prefixes, devices, templates, n, verified in rows:
        assert prefixes <= 3 and devices == 1 and templates == 1 and verified and n > 50


def test_naive_scrapers_datacenter_pinned_max_tokens(smoke: Smoke) -> None:
    dc = ASNS["datacenter"]
    share, pinned = smoke.con.execute(f"""
        select avg(case when asn in {tuple(dc)} then 1 else 0 end), count(distinct max_tokens)
        from e where archetype = 'naive_scraper'""").fetchone()  # type: ignore[misc]
    assert share > 0.8 and pinned == 1
    hours = smoke.con.execute("select count(distinct hour(ts)) from e where archetype = 'naive_scraper'").fetchone()
    assert hours == (24,)


def test_stealth_under_busiest_benign_daily_volume(smoke: Smoke) -> None:
    stealth_max, benign_p90 = smoke.con.execute("""
        with d as (select archetype, account_id, date_trunc('day', ts) d, count(*) n from e group by all),
             m as (select archetype, account_id, max(n) mx from d group by all)
        select (select max(mx) from m where archetype = 'stealth'),
               (select quantile_cont(mx, 0.9) from m where archetype in ('agent_user', 'developer'))""").fetchone()  # type: ignore[misc]
    assert stealth_max <= benign_p90


def test_nat_shared_accounts_share_a_prefix(smoke: Smoke) -> None:
    shared = smoke.con.execute("""
        with p as (select account_id, mode(ip_prefix) pfx from e where archetype = 'nat_shared' group by 1)
        select max(n) from (select pfx, count(*) n from p group by 1)""").fetchone()
    assert shared is not None and shared[0] >= 3


def test_org_members_share_org_and_payment(smoke: Smoke) -> None:
    n_acc, n_org, n_pay = smoke.con.execute("""
        select count(*), count(distinct org_id), count(distinct payment_fp)
        from a join l using (account_id) where archetype = 'org_member'""").fetchone()  # type: ignore[misc]
    assert n_org < n_acc and n_pay < n_acc


def test_hydra_rotates_shared_devices(smoke: Smoke) -> None:
    per_acct, accts_per_dev = smoke.con.execute("""
        select (select avg(k) from (select count(distinct device_fp) k from e where archetype = 'hydra' group by account_id)),
               (select max(k) from (select count(distinct account_id) k from e where archetype = 'hydra' group by device_fp))
        """).fetchone()  # type: ignore[misc]
    assert per_acct > 2 and accts_per_dev > 1


def test_agentic_harvesters_use_tools_in_long_trajectories(smoke: Smoke) -> None:
    tools, msgs = smoke.con.execute(
        "select avg(has_tools::int), max(n_messages) from e where archetype = 'agentic_harvester'").fetchone()  # type: ignore[misc]
    assert tools == 1 and msgs > 9


@needs_corpora
def test_reasoning_harvesters_elicit_steps(smoke: Smoke) -> None:
    share = smoke.con.execute("""
        select avg(case when regexp_matches(prompt, '(?i)step|reason|thinking|thought|explain|justify|grade|score|evaluate|rate|assess')
                        then 1 else 0 end)
        from e where archetype = 'reasoning_harvester'""").fetchone()
    assert share is not None and share[0] > 0.9


def test_campaigns_move_to_new_model_fast_people_slowly(smoke: Smoke) -> None:
    attack, benign = smoke.con.execute("""
        select avg(case when campaign_id is not null then (model = 'atlas-3.5')::int end),
               avg(case when campaign_id is null then (model = 'atlas-3.5')::int end)
        from e where ts >= timestamp '2026-04-24 18:00:00+00' and archetype not in ('enterprise_app')""").fetchone()  # type: ignore[misc]
    assert attack > 0.75 and benign < 0.3


def test_attack_accounts_reuse_registration_artifacts(smoke: Smoke) -> None:
    rows = smoke.con.execute("""
        select campaign_id is not null, count(*)::double / nullif(count(distinct phone_hash), 0)
        from a join l using (account_id) where phone_hash is not null group by 1 order by 1""").fetchall()
    benign_ratio, attack_ratio = rows[0][1], rows[1][1]
    assert attack_ratio > benign_ratio


def test_eval_runners_are_bursty_and_repetitive(smoke: Smoke) -> None:
    active_hours, total_hours = smoke.con.execute("""
        select count(distinct date_trunc('hour', ts)), 72 from e where archetype = 'eval_runner'""").fetchone()  # type: ignore[misc]
    assert active_hours < total_hours
