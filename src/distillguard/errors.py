"""One exception hierarchy for the whole project.

::

    DistillguardError
     ├── LogError              a log could not be read at all (missing folder, no table)
     │    └── ValidationError  rows or columns broke the spec (raised only under --strict)
     ├── ConfigError           a scenario, mapping, rule or option is wrong
     └── SignalStateError      a signal's state does not fit: other tables, version or parameters

Every error can carry a :class:`Location` so that its message says where:
``... in exchanges/date=2026-04-22/part-0.parquet row 1042 column 'output_tokens'``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Location:
    """Where in the input a problem is: file, row (0-based data row) and column."""

    path: str
    row: int | None = None
    column: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        out = self.path
        if self.line is not None:
            out += f":{self.line}"
        if self.row is not None:
            out += f" row {self.row}"
        if self.column is not None:
            out += f" column {self.column!r}"
        return out


class DistillguardError(Exception):
    """Base of every error the project raises on purpose."""

    def __init__(self, message: str, source: Location | None = None) -> None:
        self.message = message
        self.source = source
        super().__init__(f"{message} in {source}" if source else message)


class LogError(DistillguardError):
    """A log could not be read at all."""


class ValidationError(LogError):
    """Input broke the exchange-log spec; raised under ``strict``, else collected as issues."""


class ConfigError(DistillguardError):
    """A scenario, column mapping, rule file or option is wrong."""


class SignalStateError(DistillguardError):
    """A signal's state cannot be used or merged here: other tables, version or parameters."""


@dataclass(frozen=True)
class Issue:
    """One problem found while reading or validating, kept instead of stopping."""

    message: str
    source: Location
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.message} in {self.source}"


@dataclass
class IssueLog:
    """Collects issues; counts all of them but keeps only the first ``keep`` for display."""

    keep: int = 200
    issues: list[Issue] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    def add(self, issue: Issue) -> None:
        key = f"{issue.severity}:{issue.source.column or '-'}:{issue.message.split(':')[0]}"
        self.counts[key] = self.counts.get(key, 0) + 1
        if len(self.issues) < self.keep:
            self.issues.append(issue)

    @property
    def n_errors(self) -> int:
        return sum(v for k, v in self.counts.items() if k.startswith("error:"))

    @property
    def n_warnings(self) -> int:
        return sum(v for k, v in self.counts.items() if k.startswith("warning:"))

    def __len__(self) -> int:
        return sum(self.counts.values())
