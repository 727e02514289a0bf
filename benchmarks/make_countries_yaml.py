"""Regenerate ``src/distillguard/rules/countries.yaml`` from the IANA time zone database.

The lived-time signal reads that file, never the tz database, so the hunt does not depend
on the machine's zoneinfo. Each country gets every UTC offset its zones keep in a year
(standard and summer time: sampled mid-January and mid-July), from ``zone.tab`` (country
-> zones) and :mod:`zoneinfo`. Run: ``python benchmarks/make_countries_yaml.py [YEAR]``.
"""

from __future__ import annotations

import datetime as dt
import sys
import zoneinfo
from pathlib import Path

TZDIR = Path("/usr/share/zoneinfo")
OUT = Path(__file__).resolve().parents[1] / "src" / "distillguard" / "rules" / "countries.yaml"


def offsets(zone: str, year: int) -> set[float]:
    tz = zoneinfo.ZoneInfo(zone)
    out = set()
    for month in (1, 7):
        off = dt.datetime(year, month, 15, 12, tzinfo=dt.UTC).astimezone(tz).utcoffset()
        assert off is not None
        out.add(off.total_seconds() / 3600)
    return out


def main(year: int) -> None:
    names = {}
    for line in (TZDIR / "iso3166.tab").read_text().splitlines():
        if line and not line.startswith("#"):
            code, name = line.split("\t", 1)
            names[code] = name
    zones: dict[str, list[str]] = {}
    for line in (TZDIR / "zone.tab").read_text().splitlines():
        if line and not line.startswith("#"):
            code, _, zone = line.split("\t")[:3]
            zones.setdefault(code, []).append(zone)
    lines = [
        "# Country (ISO 3166 alpha-2) -> every UTC offset (hours) its zones keep in a year: standard",
        f"# and summer time. Generated from the IANA tz database ({year}) by",
        "# benchmarks/make_countries_yaml.py; a country absent here is an unknown claim.",
    ]
    for code in sorted(zones):
        offs = sorted(set().union(*(offsets(z, year) for z in zones[code])))
        txt = ", ".join(f"{o:g}" for o in offs)
        lines.append(f"{code}: [{txt}]  # {names.get(code, '')}")
    OUT.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2026)
