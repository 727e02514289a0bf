"""How a provider's log columns map to the spec (:class:`ColumnMapping`).

A provider maps its log columns once in YAML, never by editing code. Errors name the
file, the key and the value, with the YAML line where it is known. The hunt's thresholds
live in :class:`distillguard.hunt.config.HuntConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from distillguard import schema
from distillguard.errors import ConfigError, Location

__all__ = ["TS_UNITS", "ColumnMapping"]

TS_UNITS = ("s", "ms", "us", "ns")
"""Units accepted for timestamps stored as epoch numbers."""

_TS_COLUMNS = {"exchanges": "ts", "accounts": "created_at"}


def _frozen(d: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(d or {}))


@dataclass(frozen=True)
class ColumnMapping:
    """Per table, which provider column holds each spec column.

    Parameters
    ----------
    exchanges, accounts, labels
        ``{spec_column: provider_column}``; spec columns not named are looked up
        under their own name.
    ts_unit
        Unit of timestamps stored as epoch numbers (``s``, ``ms``, ``us``, ``ns``).
        When absent, the reader infers it from the magnitude and warns.

    Examples
    --------
    >>> m = ColumnMapping(exchanges={"request_id": "req_id", "ts": "created"}, ts_unit="s")
    >>> m.renames("exchanges")
    {'req_id': 'request_id', 'created': 'ts'}
    """

    exchanges: Mapping[str, str] = field(default_factory=dict)
    accounts: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    ts_unit: str | None = None
    source: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        where = Location(self.source) if self.source else None
        for table in schema.TABLES:
            mapping = getattr(self, table)
            if not isinstance(mapping, Mapping):
                raise ConfigError(
                    f"mapping for {table!r} must be a mapping, got {mapping!r}", where
                )
            _check_table(table, mapping, {}, where)
            object.__setattr__(self, table, _frozen(mapping))
        if self.ts_unit is not None and self.ts_unit not in TS_UNITS:
            raise ConfigError(
                f"ts_unit has value {self.ts_unit!r}; expected one of {', '.join(TS_UNITS)}", where
            )

    def __hash__(self) -> int:
        return hash(
            (
                tuple(sorted(self.exchanges.items())),
                tuple(sorted(self.accounts.items())),
                tuple(sorted(self.labels.items())),
                self.ts_unit,
            )
        )

    def renames(self, table: str) -> dict[str, str]:
        """``{provider_column: spec_column}`` for ``table``, ready for a rename."""
        mapping: Mapping[str, str] = getattr(self, table)
        return {provider: spec for spec, provider in mapping.items()}

    @property
    def is_identity(self) -> bool:
        """True when the log already uses the spec's names."""
        return not (self.exchanges or self.accounts or self.labels or self.ts_unit)

    @classmethod
    def coerce(cls, value: ColumnMapping | Path | str | None) -> ColumnMapping:
        """Accept what a CLI or caller passes: nothing, a mapping object, or a YAML path."""
        if value is None:
            return cls()
        if isinstance(value, ColumnMapping):
            return value
        return cls.load(value)

    @classmethod
    def load(cls, path: Path | str) -> ColumnMapping:
        """Read a mapping YAML file.

        Parameters
        ----------
        path
            A file like::

                exchanges: {request_id: req_id, ts: created, account_id: org}
                accounts: {account_id: org, created_at: signup_time}
                ts_unit: s

        Raises
        ------
        ConfigError
            Naming the file, the line, the key and the value that is wrong.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read column mapping: {exc.strerror}", Location(str(p))
            ) from exc
        try:
            node = yaml.compose(text)
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark
            line = mark.line + 1 if mark is not None else None
            raise ConfigError(f"invalid YAML: {exc.problem}", Location(str(p), line=line)) from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"invalid YAML: {exc}", Location(str(p))) from exc
        return cls.from_dict(
            data if data is not None else {}, source=str(p), lines=_key_lines(node)
        )

    @classmethod
    def from_dict(
        cls,
        data: Any,
        source: str | None = None,
        lines: Mapping[tuple[str, ...], int] | None = None,
    ) -> ColumnMapping:
        """Build from parsed YAML/JSON; ``lines`` maps key paths to YAML lines for errors."""
        lines = lines or {}
        src = source or "<mapping>"

        def where(*key: str) -> Location:
            return Location(src, line=lines.get(key))

        if not isinstance(data, Mapping):
            raise ConfigError(f"column mapping must be a mapping of tables, got {data!r}", where())
        known = {*schema.TABLES, "ts_unit"}
        for key in data:
            if key not in known:
                raise ConfigError(
                    f"unknown key {key!r}; expected one of {', '.join(sorted(known))}",
                    where(str(key)),
                )
        tables: dict[str, dict[str, str]] = {}
        for table in schema.TABLES:
            raw = data.get(table) or {}
            if not isinstance(raw, Mapping):
                raise ConfigError(
                    f"{table!r} must map spec columns to provider columns, got {raw!r}",
                    where(table),
                )
            _check_table(table, raw, lines, Location(src))
            tables[table] = dict(raw)
        ts_unit = data.get("ts_unit")
        if ts_unit is not None and ts_unit not in TS_UNITS:
            raise ConfigError(
                f"ts_unit has value {ts_unit!r}; expected one of {', '.join(TS_UNITS)}",
                where("ts_unit"),
            )
        return cls(**tables, ts_unit=ts_unit, source=source)


def _check_table(
    table: str,
    mapping: Mapping[Any, Any],
    lines: Mapping[tuple[str, ...], int],
    base: Location | None,
) -> None:
    """Every key a spec column, every value a distinct non-empty string."""
    target = schema.TABLES[table]
    seen: dict[str, str] = {}
    path = base.path if base else "<mapping>"
    for spec_col, provider in mapping.items():
        loc = Location(path, line=lines.get((table, str(spec_col))))
        if spec_col not in target.names:
            raise ConfigError(
                f"{table}.{spec_col} is not a column of the spec's {table} table "
                f"(columns: {', '.join(target.names)})",
                loc,
            )
        if not isinstance(provider, str) or not provider.strip():
            raise ConfigError(
                f"{table}.{spec_col} has value {provider!r}; expected a column name", loc
            )
        if provider in seen:
            raise ConfigError(
                f"{table}.{spec_col} has value {provider!r}, already used for {table}.{seen[provider]}",
                loc,
            )
        seen[provider] = str(spec_col)


def _key_lines(node: yaml.Node | None) -> dict[tuple[str, ...], int]:
    """1-based YAML line of each key, two levels deep (``(table,)`` and ``(table, column)``)."""
    out: dict[tuple[str, ...], int] = {}
    if not isinstance(node, yaml.MappingNode):
        return out
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            continue
        out[(str(k.value),)] = k.start_mark.line + 1
        if isinstance(v, yaml.MappingNode):
            for k2, _ in v.value:
                if isinstance(k2, yaml.ScalarNode):
                    out[(str(k.value), str(k2.value))] = k2.start_mark.line + 1
    return out
