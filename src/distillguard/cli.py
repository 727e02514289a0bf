"""``distillguard``: one command, a sub-command per part. Imports are lazy so ``--help`` is instant."""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from distillguard.errors import ConfigError, DistillguardError
from distillguard.intel.cli import intel_app
from distillguard.watermark.cli import watermark_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # main() turns errors into one line (--debug: the traceback)
    help="distillguard: find, stop and prove distillation attacks on a model served over an API.",
)
data_app = typer.Typer(no_args_is_help=True, help="Locate and fetch the public corpora the simulator uses.")
app.add_typer(data_app, name="data")
app.add_typer(watermark_app, name="watermark")
app.add_typer(intel_app, name="intel")
console = Console(stderr=True)
_debug = False

LogArg = Annotated[Path, typer.Argument(help="A log folder: exchanges/, accounts/ (and labels/ for bench).")]
MappingOpt = Annotated[
    Path | None, typer.Option("--mapping", help="Column-mapping YAML for logs whose column names differ.")
]
StrictOpt = Annotated[bool, typer.Option("--strict", metavar="", help="Stop at the first bad row instead of reporting it.")]
MaxBadOpt = Annotated[
    float,
    typer.Option(
        "--max-bad-rows",
        min=0.0,
        max=1.0,
        help="Exit 1 when more than this share of the input rows could not be read (or any file), after writing the results.",
    ),
]


def _version(value: bool) -> None:
    if value:
        from distillguard import __version__

        typer.echo(f"distillguard {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option("--debug", metavar="", help="Show the full traceback of an error.")] = False,
    version: Annotated[
        bool, typer.Option("--version", metavar="", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    global _debug
    _debug = debug


def main() -> None:
    """Run the command; an error is one line on stderr: exit 2 for a wrong argument, option or
    configuration, exit 1 for a failure (a log that cannot be read, a bug)."""
    try:
        app()
    except ConfigError as exc:
        _fail(exc, 2)
    except DistillguardError as exc:
        _fail(exc, 1)
    except KeyboardInterrupt:
        _fail(None, 130)
    except Exception as exc:  # a bug: say so in one line, the traceback on request
        _fail(exc, 1, internal=True)


def _fail(exc: BaseException | None, code: int, internal: bool = False) -> None:
    if exc is not None and (_debug or "--debug" in sys.argv):
        traceback.print_exception(exc)
    elif internal:
        console.print(
            f"[red]error:[/red] internal error ({type(exc).__name__}: {exc}); "
            "run again with --debug for the traceback, and please report it",
            markup=True,
            soft_wrap=True,
        )
    elif exc is not None:
        console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
    raise SystemExit(code)


def _check_out(out: Path) -> None:
    """Refuse, before any work, an output folder that cannot be one."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    probe = out if out.exists() else next((q for q in out.parents if q.exists()), Path("."))
    if not os.access(probe, os.W_OK):
        raise ConfigError(f"--out {out}: {probe} is not writable")


def _check_input(summary: dict[str, Any], max_bad_rows: float) -> None:
    """Say on stderr what input was lost; exit 1 past ``max_bad_rows`` or when a file was."""
    lost = sum(summary["lost"].values())
    files = summary["files_skipped"]
    if not lost and not files:
        return
    kept = ", ".join(f"{n:,} {t}" for t, n in summary["kept"].items())
    what = ", ".join(f"{n:,} {t} rows" for t, n in summary["lost"].items() if n)
    parts = [f"{what} ({summary['lost_share']:.2%} of rows)"] if what else []
    if files:
        parts.append(f"{len(files)} file(s): {', '.join(files[:5])}{' …' if len(files) > 5 else ''}")
    console.print(
        f"[yellow]input:[/yellow] kept {kept}; could not read {' and '.join(parts)}; "
        "`distillguard validate LOG` lists every problem",
        soft_wrap=True,
    )
    if files or summary["lost_share"] > max_bad_rows:
        limit = f"more than --max-bad-rows {max_bad_rows:g}" if summary["lost_share"] > max_bad_rows else "a whole file"
        console.print(
            f"[red]error:[/red] {limit} of the input could not be read; results were written but are incomplete",
            soft_wrap=True,
        )
        raise SystemExit(1)


@app.command()
def simulate(
    scenario: Annotated[str, typer.Option(help="Built-in scenario name or a YAML file.")] = "demo",
    scale: Annotated[float, typer.Option(help="Shrink (or grow) every population proportionally.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed; same seed, same log.")] = 0,
    out: Annotated[Path, typer.Option(help="Output log folder.")] = Path("sim-out"),
    data: Annotated[Path | None, typer.Option(help="Corpora folder (default: $DISTILLGUARD_DATA, ../shared/datasets, ~/.cache/distillguard).")] = None,
    no_responses: Annotated[bool, typer.Option("--no-responses", help="Leave response text out (token counts stay).")] = False,
    fmt: Annotated[str, typer.Option("--format", help="parquet, jsonl or csv.")] = "parquet",
    force: Annotated[
        bool, typer.Option("--force", metavar="", help="Replace the tables of an --out folder simulate did not write.")
    ] = False,
) -> None:
    """Simulate benign traffic and distillation campaigns into a log folder."""
    from distillguard.sim import simulate as run

    if not scale > 0:
        raise ConfigError(f"--scale has value {scale:g}; expected a positive number")
    summary = run(scenario, scale=scale, seed=seed, out=out, data_dir=data, responses=not no_responses, fmt=fmt, force=force)
    Console().print(summary.render())  # the summary is the command's output: stdout


@app.command()
def bench(
    log: LogArg,
    detector: Annotated[str, typer.Option(help="Registered detector name (baseline, hunt).")] = "hunt",
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result JSON here.")] = None,
    replay_every: Annotated[float, typer.Option(help="Re-score every this many simulated hours in the replay.")] = 1.0,
    mapping: MappingOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Also write the final verdicts here (as `hunt --out` does) and flag_changes.parquet: each flag set or cleared, and when."
        ),
    ] = None,
    max_bad_rows: MaxBadOpt = 0.001,
) -> None:
    """Replay a labelled log through a detector; report recall, FPR, time to detect, leaked exchanges."""
    from distillguard.bench import run_bench

    for path in (out, json_out.parent if json_out is not None else None):
        if path is not None:
            _check_out(path)
    if json_out is not None and json_out.is_dir():
        raise ConfigError(f"--json {json_out} is a folder, not a file")
    if not replay_every > 0:
        raise ConfigError(f"--replay-every has value {replay_every:g}; expected a positive number of hours")
    result = run_bench(log, detector=detector, replay_every_hours=replay_every, mapping=mapping)
    if json_out is not None:
        result.write_json(json_out)
    if out is not None and result.replay_result is not None:
        import pyarrow.parquet as pq

        result.replay_result.final.write(out)
        pq.write_table(result.replay_result.flag_changes, out / "flag_changes.parquet")
    result.print(Console())
    if result.input:
        _check_input(result.input, max_bad_rows)


@app.command()
def hunt(
    logs: Annotated[list[Path], typer.Argument(help="One or more log folders.")],
    out: Annotated[Path, typer.Option(help="Output folder for accounts.parquet, campaigns.json, decisions.json.")] = Path("hunt-out"),
    mapping: MappingOpt = None,
    strict: StrictOpt = False,
    target_fpr: Annotated[
        float | None,
        typer.Option(help="Benign false-positive rate the thresholds aim at, in (0, 1) (default 0.001, or the config's)."),
    ] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="Hunt config YAML: thresholds, link, score, policy, signal settings.")
    ] = None,
    engine: Annotated[str, typer.Option(help="Where enrich and aggregate run: polars (embedded) or spark (pip install 'distillguard[spark]').")] = "polars",
    master: Annotated[
        str | None, typer.Option("--master", help="Spark master URL for --engine spark (default local[*]): local[2], spark://host:7077, yarn ...")
    ] = None,
    partitions: Annotated[int | None, typer.Option("--partitions", help="Spark partitions the accounts are folded in (default: Spark's parallelism).")] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Embedded engine: resume a killed run after its last finished day (progress kept in OUT/.checkpoint).")
    ] = True,
    checkpoint_every: Annotated[
        float | None,
        typer.Option("--checkpoint-every", help="Seconds of reading between two checkpoints (each writes only what changed since the last; default 30)."),
    ] = None,
    memory: Annotated[
        str,
        typer.Option("--memory", help="Embedded engine: the memory budget its piles stay within (8G, 512M; auto: 8G or half the machine's memory; none: unbounded)."),
    ] = "auto",
    max_bad_rows: MaxBadOpt = 0.001,
    json_summary: Annotated[
        bool, typer.Option("--json", metavar="", help="Print a machine summary (JSON) on stdout instead of the tables.")
    ] = False,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal).")
    ] = None,
    intel: Annotated[
        Path | None,
        typer.Option("--intel", help="Peers' intel (`distillguard intel import`) as prior evidence; keyed entries need $DISTILLGUARD_INTEL_KEY."),
    ] = None,
) -> None:
    """Find campaigns in a log window, cluster their accounts and explain why."""
    from distillguard.hunt import HuntConfig, run_hunt
    from distillguard.hunt.engines import get_engine

    _check_out(out)
    for log in logs:
        if not log.is_dir():
            raise ConfigError(f"log folder {log} does not exist")
    cfg = HuntConfig.load(config) if config is not None else HuntConfig()
    if target_fpr is not None and not 0.0 < target_fpr < 1.0:
        raise ConfigError(f"--target-fpr has value {target_fpr:g}; expected a rate in (0, 1), e.g. 0.001")
    if engine != "spark" and (master or partitions):
        raise ConfigError("--master and --partitions are settings of --engine spark")
    if engine == "spark" and memory != "auto":
        raise ConfigError("--memory is a setting of the embedded engine; give Spark spark.executor.memory (docs/scale.md)")
    from distillguard.hunt.budget import parse_size

    parse_size(memory)
    runner = get_engine(engine, **({"master": master, "partitions": partitions} if engine == "spark" else {}))
    matcher = None
    if intel is not None:
        from distillguard.intel.ingest import IntelSet
        from distillguard.intel.keyed import load_key
        from distillguard.intel.match import IntelMatcher

        intel_set = IntelSet.load(intel)
        matcher = IntelMatcher(intel_set, load_key(None) if intel_set.keyed or intel_set.sketches else None)
    verdicts = run_hunt(
        logs, out=None if matcher else out, mapping=mapping, strict=strict, target_fpr=target_fpr, config=cfg,
        engine=engine if engine == "polars" else runner, progress=progress,
        checkpoint=out / ".checkpoint" if engine == "polars" else None, checkpoint_every_s=checkpoint_every, resume=resume,
        memory=memory,
    )  # fmt: skip
    if matcher is not None:
        from distillguard.intel.prior import apply_prior

        verdicts = apply_prior(verdicts, matcher, logs, cfg.policy)
        verdicts.write(out)
    from distillguard.hunt.render import print_verdicts, summary

    if json_summary:
        import json

        typer.echo(json.dumps(summary(verdicts, out), indent=1, default=str))
    else:
        print_verdicts(verdicts, Console(), out=out)
    console.print(f"wrote {out}/accounts.parquet, features.parquet, campaigns.json, decisions.json")
    _check_input(verdicts.meta["input"], max_bad_rows)


@app.command()
def report(
    hunt_dir: Annotated[Path, typer.Argument(help="A hunt output folder (accounts.parquet, campaigns.json, ...).")],
    out: Annotated[Path, typer.Option(help="The HTML file to write; report.json goes beside it.")] = Path("report.html"),
    log: Annotated[
        list[Path] | None, typer.Option("--log", help="The log the hunt read (default: the one campaigns.json names).")
    ] = None,
    mapping: MappingOpt = None,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Progress bar on stderr (default: when it is a terminal).")
    ] = None,
) -> None:
    """Write one self-contained HTML page (and report.json) showing what a hunt found, campaign by campaign."""
    from distillguard.report import write_report

    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give the HTML file to write, e.g. {out}/report.html")
    if out.name == "report.json":
        raise ConfigError("--out report.json would be overwritten by the JSON written beside it; name the HTML file")
    _check_out(out.parent)
    show = console.is_terminal if progress is None else progress
    res = write_report(hunt_dir, out, log, mapping=mapping, progress=show)
    console.print(
        f"wrote {res['html']} ({res['html_bytes'] / 1e6:.1f} MB, {res['campaigns']} campaign(s)) and {res['json']} "
        f"in {res['seconds']['total']:.1f}s"
    )
    typer.echo(res["html"])  # stdout: the path, for scripts


@app.command()
def validate(
    log: LogArg,
    mapping: MappingOpt = None,
    strict: StrictOpt = False,
    all_issues: Annotated[bool, typer.Option("--all", metavar="", help="List every issue, not the first 20.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON (every issue) here.")] = None,
) -> None:
    """Read a whole log against the spec and report every bad row with file, row and column."""
    import json

    from distillguard.io import validate_log

    if not log.is_dir():
        raise ConfigError(f"log folder {log} does not exist")
    if json_out is not None and json_out.is_dir():
        raise ConfigError(f"--json {json_out} is a folder, not a file")
    keep = 10**9 if all_issues or json_out is not None else 200
    report = validate_log(log, mapping=mapping, strict=strict, keep=keep)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report.to_dict(), indent=1) + "\n")
    Console(soft_wrap=True).print(report.render(max_issues=-1 if all_issues else 20))
    if report.n_errors:
        raise typer.Exit(1)


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where the demo writes its log and results.")] = Path("demo-out"),
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Simulate the demo scenario, hunt it, bench it, enforce it at the gateway, and show what was found."""
    from distillguard.demo import run_demo

    run_demo(out=out, seed=seed, console=Console())


@app.command("mock-upstream")
def mock_upstream(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")],
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    latency_ms: Annotated[float, typer.Option(min=0.0, help="Time to first byte, in milliseconds.")] = 20.0,
    tokens_per_s: Annotated[float, typer.Option(min=0.001, help="Streaming speed, in output tokens per second.")] = 200.0,
    fail_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of requests that fail at random (error, drop or reset).")
    ] = 0.0,
    seed: Annotated[int, typer.Option(help="Random seed: same seed and request, same reply.")] = 0,
) -> None:
    """Serve a stand-in model speaking the OpenAI and Anthropic chat APIs, for demos and tests: no real
    model can be served here. Replies are deterministic filler text with honest token usage; the header
    `x-mock-fault: slow|error|drop|reset` injects a fault into one request."""
    import uvicorn

    from distillguard.gateway.mock_upstream import MockConfig, create_mock_app

    config = MockConfig(latency_ms=latency_ms, tokens_per_s=tokens_per_s, fail_rate=fail_rate, seed=seed)
    uvicorn.run(create_mock_app(config), host=host, port=port, log_level="info")


@app.command()
def serve(
    upstream: Annotated[str, typer.Option(help="Base URL of the model's API (OpenAI or Anthropic flavour), e.g. http://127.0.0.1:8000.")],
    policy: Annotated[Path | None, typer.Option(help="Policy YAML (examples/policy.yaml); default: the embedded defaults.")] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    workers: Annotated[int, typer.Option(help="Worker processes (quotas need `state.store: redis` with more than one).")] = 1,
    sink: Annotated[Path | None, typer.Option(help="Write every exchange here, per the spec (Parquet), for the hunt.")] = None,
    accounts: Annotated[Path | None, typer.Option(help="Accounts table (spec) or log folder whose accounts load at start.")] = None,
    decisions: Annotated[list[Path] | None, typer.Option(help="Hunt output folder(s) whose decisions (and analysts' from `distillguard ui`) load now and on change.")] = None,
    rescore: Annotated[float, typer.Option(help="Seconds between live re-scorings of the traffic.")] = 5.0,
    live: Annotated[bool, typer.Option(help="Score the traffic online (decision files load either way).")] = True,
    upstream_client: Annotated[str, typer.Option(help="HTTP client to the upstream: aiohttp (fastest measured) or httpx.")] = "aiohttp",
    server: Annotated[str, typer.Option(help="HTTP server: uvicorn (uvloop + httptools) or granian.")] = "uvicorn",
    log_format: Annotated[str, typer.Option(help="text, or json: one object per line with each refusal's fields.")] = "text",
    log_level: Annotated[str, typer.Option(help="debug, info (every refusal), warning or error.")] = "warning",
    replay_start: Annotated[
        str | None,
        typer.Option(metavar="ISO", help="For replaying a log in compressed time (benchmarks), never in production: simulated time starts here."),
    ] = None,
    replay_speed: Annotated[
        float,
        typer.Option(metavar="X", help="For replaying a log in compressed time (benchmarks), never in production: simulated seconds per wall second."),
    ] = 1.0,
) -> None:
    """Put distillguard in front of a model: quotas, gradual release and the hunt's decisions at the door."""
    from distillguard.gateway.server import GatewaySettings, make_clock
    from distillguard.gateway.server import serve as run

    if policy is not None and not policy.is_file():
        raise ConfigError(f"--policy {policy}: no such file")
    if workers < 1:
        raise ConfigError(f"--workers has value {workers}; expected 1 or more")
    if log_format not in ("text", "json"):
        raise ConfigError(f"--log-format has value {log_format!r}; expected text or json")
    if log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError(f"--log-level has value {log_level!r}; expected debug, info, warning or error")
    if upstream_client not in ("aiohttp", "httpx"):
        raise ConfigError(f"--upstream-client has value {upstream_client!r}; expected aiohttp or httpx")
    settings = GatewaySettings(
        upstream=upstream, policy=str(policy) if policy else None, sink=str(sink) if sink else None,
        accounts=str(accounts) if accounts else None, decisions=[str(d) for d in decisions or []], rescore_s=rescore,
        live=live, http_client=upstream_client, log_format=log_format, log_level=log_level,
        replay_start=replay_start, replay_speed=replay_speed,
    )  # fmt: skip
    make_clock(settings)  # a bad --replay-start or --replay-speed fails here, before the port is taken
    console.print(f"distillguard gateway on http://{host}:{port} in front of {upstream} ({workers} worker(s))")
    run(settings, host=host, port=port, workers=workers, server=server)


@app.command()
def ui(
    hunt: Annotated[Path, typer.Option(help="A hunt output folder (accounts.parquet, campaigns.json).")],
    gateway: Annotated[str | None, typer.Option(help="A gateway's base URL, to show whether it is up.")] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    host: Annotated[str, typer.Option(help="Address to listen on (loopback by default: put TLS in front to serve further).")] = "127.0.0.1",
    token: Annotated[
        list[str] | None, typer.Option(help="Access token, SECRET or NAME:SECRET (repeatable); default $DISTILLGUARD_UI_TOKEN, else a new one, printed.")
    ] = None,
    log: Annotated[Path | None, typer.Option(help="The decision log to append to (default HUNT/analyst-decisions.jsonl).")] = None,
) -> None:
    """The analysts' dashboard: a hunt's campaigns and accounts with their evidence; block, allow or appeal
    an account or a whole campaign, with who and why. `serve --decisions HUNT` enforces the decisions."""
    import uvicorn

    from distillguard.ui.app import UiSettings, create_app
    from distillguard.ui.auth import ENV, Tokens

    try:
        tokens, generated = Tokens.from_env(token or [], os.environ.get(ENV))
    except ValueError as e:
        raise ConfigError(f"--token: {e}") from None
    app_ = create_app(UiSettings(hunt=hunt, tokens=tokens, log=log, gateway=gateway))
    console.print(f"distillguard dashboard on http://{host}:{port} for {escape(str(hunt))}", soft_wrap=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"warning: --host {escape(host)} serves the dashboard beyond this machine: put TLS in front of it", soft_wrap=True)
    if generated:
        typer.echo(f"token (new; --token or ${ENV} to choose one): {generated}", err=True)
    uvicorn.run(app_, host=host, port=port, log_level="warning")


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
