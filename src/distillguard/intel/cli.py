"""``distillguard intel``: export a hunt as STIX 2.1, import peers' bundles, push and pull over TAXII 2.1."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from distillguard.errors import ConfigError

intel_app = typer.Typer(no_args_is_help=True, help="Share campaign indicators with other providers (STIX 2.1, TAXII 2.1), keyed.")
out = Console(stderr=True)

KeyFileOpt = Annotated[
    Path | None,
    typer.Option("--key-file", help="Consortium key (>= 32 random bytes, raw or hex); default $DISTILLGUARD_INTEL_KEY."),
]
UrlOpt = Annotated[str, typer.Option("--url", help="TAXII 2.1 API root, e.g. http://127.0.0.1:5000/api1/.")]
CollOpt = Annotated[str, typer.Option("--collection", help="Collection id.")]
UserOpt = Annotated[str | None, typer.Option("--user", help="TAXII user (basic auth).")]
PassOpt = Annotated[str | None, typer.Option("--password", help="TAXII password (or $DISTILLGUARD_TAXII_PASSWORD).", envvar="DISTILLGUARD_TAXII_PASSWORD")]


@intel_app.command("export")
def export(
    hunt_dir: Annotated[Path, typer.Argument(help="A hunt output folder (campaigns.json, accounts.parquet).")],
    bundle: Annotated[Path, typer.Option("--out", help="Where to write the STIX 2.1 bundle (JSON).")],
    key_file: KeyFileOpt = None,
    epoch: Annotated[int, typer.Option(min=0, help="Key epoch the digests are made for (partners match within an epoch).")] = 0,
    tlp: Annotated[str, typer.Option(help="TLP marking: white (clear), green, amber or red.")] = "amber",
    producer: Annotated[str, typer.Option(help="Name of the publishing provider (the bundle's identity).")] = "distillguard user",
    clear: Annotated[bool, typer.Option("--clear", metavar="", help="Share IPs, prefixes, mail domains and devices in clear (personal data!).")] = False,
    log: Annotated[Path | None, typer.Option("--log", help="The log the hunt read (default: the one its output names).")] = None,
    valid_days: Annotated[float, typer.Option(min=0.01, help="Indicators stay valid this many days after their last sighting.")] = 30.0,
) -> None:
    """Write a hunt's campaigns as a STIX 2.1 bundle: identifiers keyed unless --clear, templates as keyed sketches."""
    from distillguard.intel.evidence import collect
    from distillguard.intel.export import TLP, build_bundle, write_bundle
    from distillguard.intel.keyed import load_key

    if tlp not in TLP:
        raise ConfigError(f"--tlp has value {tlp!r}; expected one of {', '.join(TLP)}")
    if not hunt_dir.is_dir():
        raise ConfigError(f"hunt folder {hunt_dir} does not exist")
    key = load_key(key_file, epoch)  # always: phones, cards and templates are keyed even with --clear
    t0 = time.perf_counter()
    intel = collect(hunt_dir, log)
    b = build_bundle(intel, key, producer=producer, tlp=tlp, clear=clear, valid_days=valid_days)
    size = write_bundle(b, bundle)
    n = sum(1 for o in b.objects if o["type"] == "indicator")
    out.print(f"wrote {bundle}: {len(intel.campaigns)} campaign(s), {n:,} indicators, {size:,} bytes "
              f"in {time.perf_counter() - t0:.1f} s ({'CLEAR values' if clear else f'keyed, epoch {epoch}'})")  # fmt: skip


@intel_app.command("import")
def import_(
    bundles: Annotated[list[Path], typer.Argument(help="STIX 2.1 bundles (ours or other tools' simple indicators).")],
    into: Annotated[Path, typer.Option("--out", help="Intel file for `hunt --intel` and the gateway's `intel:` section.")] = Path("intel.json"),
    keep_expired: Annotated[bool, typer.Option("--keep-expired", metavar="", help="Keep indicators past valid_until (to hunt an old log).")] = False,
) -> None:
    """Read peers' bundles into one intel file: clear values, keyed digests, template sketches, with their sources."""
    from distillguard.intel.ingest import ingest

    intel = ingest(bundles, keep_expired=keep_expired)
    intel.save(into)
    out.print(f"wrote {into}: {len(intel):,} entries from {len(bundles)} bundle(s); " + ", ".join(f"{k} {v:,}" for k, v in intel.stats.items()))


@intel_app.command("push")
def push_cmd(bundle: Annotated[Path, typer.Argument(help="A STIX 2.1 bundle.")], url: UrlOpt, collection: CollOpt,
             user: UserOpt = None, password: PassOpt = None,
             chunk: Annotated[int, typer.Option(help="Objects per request.")] = 2000) -> None:  # fmt: skip
    """Add a bundle's objects to a TAXII 2.1 collection."""
    from distillguard.intel.taxii import push, read_objects

    stats = push(read_objects(bundle), url, collection, user, password, chunk=chunk)
    out.print(f"pushed {stats['objects']:,} objects ({stats['added']:,} new) in {stats['requests']} request(s), {stats['seconds']:.1f} s")


@intel_app.command("pull")
def pull_cmd(url: UrlOpt, collection: CollOpt, into: Annotated[Path, typer.Option("--out", help="Bundle to write.")],
             added_after: Annotated[str | None, typer.Option(help="Only objects added after this time (RFC 3339).")] = None,
             user: UserOpt = None, password: PassOpt = None) -> None:  # fmt: skip
    """Read a TAXII 2.1 collection (every page) into one bundle."""
    from distillguard.intel.taxii import as_bundle, pull

    objs = pull(url, collection, user, password, added_after=added_after)
    into.parent.mkdir(parents=True, exist_ok=True)
    into.write_text(json.dumps(as_bundle(objs)))
    out.print(f"pulled {len(objs):,} objects into {into}")
