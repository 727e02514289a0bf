"""``distillguard demo``: a small scenario simulated, hunted, benchmarked, enforced and shown.

Runs on embedded defaults with no server to start: the built-in ``demo`` scenario, the
hunt detector, the baseline for comparison, and the gateway with a mock upstream model,
both started in process on loopback and stopped at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console

DEMO_REPLAY_HOURS = 12.0


def run_demo(out: Path, seed: int = 7, console: Console | None = None) -> dict[str, float]:
    """Simulate → hunt → bench → gateway → report; returns the wall seconds of each step."""
    from distillguard.bench import run_bench
    from distillguard.hunt import run_hunt
    from distillguard.hunt.render import print_verdicts
    from distillguard.sim import simulate

    console = console or Console()
    log, hunt_out = out / "log", out / "hunt"
    times: dict[str, float] = {}

    t = time.perf_counter()
    console.rule("1. simulate the demo scenario")
    summary = simulate("demo", scale=1.0, seed=seed, out=log, force=True)  # the demo's own folder
    console.print(summary.render())
    times["simulate"] = time.perf_counter() - t

    t = time.perf_counter()
    console.rule("2. hunt: find campaigns, cluster accounts, explain")
    verdicts = run_hunt([log], out=hunt_out)
    print_verdicts(verdicts, console, out=hunt_out)
    times["hunt"] = time.perf_counter() - t

    t = time.perf_counter()
    console.rule(f"3. bench: replay in time order (re-scored every {DEMO_REPLAY_HOURS:g} simulated hours)")
    results = {}
    for name in ("hunt", "baseline"):
        res = run_bench(log, detector=name, replay_every_hours=DEMO_REPLAY_HOURS)
        res.write_json(out / f"bench-{name}.json")
        results[name] = res
    results["hunt"].print(console)
    base = results["baseline"].to_dict()["accounts"]
    ours = results["hunt"].to_dict()["accounts"]
    console.print(
        f"baseline (per-account volume threshold, for comparison): recall {base['recall']:.3f}, "
        f"FPR {base['fpr']:.4f} — hunt: recall {ours['recall']:.3f}, FPR {ours['fpr']:.4f}"
    )
    times["bench"] = time.perf_counter() - t

    t = time.perf_counter()
    console.rule("4. gateway: the hunt's decisions enforced at the door (mock upstream model)")
    from distillguard.gateway.demo import replay_through_gateway

    replay_through_gateway(log, hunt_out, console, sink=out / "gateway-sink")
    times["gateway"] = time.perf_counter() - t

    t = time.perf_counter()
    console.rule("5. report: what the hunt found, for people (HTML) and machines (JSON)")
    from distillguard.report import write_report

    report = write_report(hunt_out, out / "report.html", [log])
    times["report"] = time.perf_counter() - t

    console.rule("where things are")
    console.print(f"log:        {log}/ (exchanges/, accounts/, labels/)")
    console.print(f"hunt:       {hunt_out}/accounts.parquet, campaigns.json, decisions.json")
    console.print(f"bench JSON: {out}/bench-hunt.json, {out}/bench-baseline.json")
    console.print(f"gateway:    {out}/gateway-sink/ (the exchanges it served, per the spec)")
    console.print(f"report:     {out}/report.json (the same figures' numbers)")
    console.print("time: " + ", ".join(f"{k} {v:.1f}s" for k, v in times.items()))
    console.print("the report opens in any browser with no network:")
    console.print(f"[bold]report: {report['html']}[/bold]", highlight=False)
    return times
