"""``distillguard``: one command, a sub-command per part. Imports are lazy so ``--help`` is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from distillguard.errors import DistillguardError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="distillguard: find, stop and prove distillation attacks on a model served over an API.",
)
data_app = typer.Typer(no_args_is_help=True, help="Locate and fetch the public corpora the simulator uses.")
app.add_typer(data_app, name="data")
app.add_typer(__import__("distillguard.watermark.cli", fromlist=["watermark_app"]).watermark_app, name="watermark")
console = Console(stderr=True)

LogArg = Annotated[Path, typer.Argument(help="A log folder: exchanges/, accounts/ (and labels/ for bench).")]
MappingOpt = Annotated[
    Path | None, typer.Option("--mapping", help="Column-mapping YAML for logs whose column names differ.")
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Stop at the first bad row instead of reporting it.")]


def main() -> None:
    try:
        app()
    except DistillguardError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise SystemExit(2) from None


@app.command()
def simulate(
    scenario: Annotated[str, typer.Option(help="Built-in scenario name or a YAML file.")] = "demo",
    scale: Annotated[float, typer.Option(help="Shrink (or grow) every population proportionally.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same log.")] = 0,
    out: Annotated[Path, typer.Option(help="Output log folder.")] = Path("sim-out"),
    data: Annotated[Path | None, typer.Option(help="Corpora folder (default: $DISTILLGUARD_DATA, ../shared/datasets, ~/.cache/distillguard).")] = None,
    no_responses: Annotated[bool, typer.Option("--no-responses", help="Leave response text out (token counts stay).")] = False,
    fmt: Annotated[str, typer.Option("--format", help="parquet, jsonl or csv.")] = "parquet",
) -> None:
    """Simulate benign traffic and distillation campaigns into a log folder."""
    from distillguard.sim import simulate as run

    summary = run(scenario, scale=scale, seed=seed, out=out, data_dir=data, responses=not no_responses, fmt=fmt)
    console.print(summary.render())


@app.command()
def bench(
    log: LogArg,
    detector: Annotated[str, typer.Option(help="Registered detector name (baseline, hunt).")] = "hunt",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result JSON here.")] = None,
    replay_every: Annotated[float, typer.Option(help="Re-score every this many simulated hours in the replay.")] = 1.0,
    mapping: MappingOpt = None,
) -> None:
    """Replay a labelled log through a detector; report recall, FPR, time to detect, leaked exchanges."""
    from distillguard.bench import run_bench

    result = run_bench(log, detector=detector, replay_every_hours=replay_every, mapping=mapping)
    if json_out is not None:
        result.write_json(json_out)
    result.print(Console())


@app.command()
def hunt(
    logs: Annotated[list[Path], typer.Argument(help="One or more log folders.")],
    out: Annotated[Path, typer.Option(help="Output folder for accounts.parquet, campaigns.json, decisions.json.")] = Path("hunt-out"),
    mapping: MappingOpt = None,
    strict: StrictOpt = False,
    target_fpr: Annotated[float, typer.Option(help="Benign false-positive rate the thresholds aim at.")] = 0.001,
) -> None:
    """Find campaigns in a log window, cluster their accounts and explain why."""
    from distillguard.hunt import run_hunt

    verdicts = run_hunt(logs, out=out, mapping=mapping, strict=strict, target_fpr=target_fpr)
    from distillguard.hunt.render import print_verdicts

    print_verdicts(verdicts, Console())
    console.print(f"wrote {out}/accounts.parquet, campaigns.json, decisions.json")


@app.command()
def validate(log: LogArg, mapping: MappingOpt = None, strict: StrictOpt = False) -> None:
    """Read a whole log against the spec and report every bad row with file, row and column."""
    from distillguard.logio import validate_log

    report = validate_log(log, mapping=mapping, strict=strict)
    Console().print(report.render())
    if report.n_errors:
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its log and results.")] = Path("demo-out"),
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Simulate the demo scenario, hunt it, bench it, and show what was found."""
    from distillguard.demo import run_demo

    run_demo(out=out, seed=seed, console=Console())


@data_app.command("where")
def data_where(data: Annotated[Path | None, typer.Option()] = None) -> None:
    """Say which corpora folder the simulator would use, and what it finds there."""
    from distillguard.corpora import describe

    Console().print(describe(data))


@data_app.command("fetch")
def data_fetch(
    dest: Annotated[Path | None, typer.Option(help="Destination (default ~/.cache/distillguard).")] = None,
    base_url: Annotated[str | None, typer.Option(help="Mirror to fetch from instead of the original locations.")] = None,
) -> None:
    """Download the public corpora from their original locations, checking sha256."""
    from distillguard.corpora import fetch

    fetch(dest=dest, base_url=base_url)


if __name__ == "__main__":
    main()
