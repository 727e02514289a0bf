"""Validating a whole log against the spec: every bad row with file, row and column."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from distillguard.config import ColumnMapping
from distillguard.errors import IssueLog, Location
from distillguard.io.reader import LogReader

if TYPE_CHECKING:
    from rich.console import RenderableType

__all__ = ["ValidationReport", "validate_log"]


@dataclass
class ValidationReport:
    """What :func:`validate_log` found: rows kept per table and every issue, countable and renderable."""

    root: Path
    n_rows: dict[str, int]
    n_files: dict[str, int]
    issues: IssueLog
    tally: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)

    @property
    def n_errors(self) -> int:
        """Errors found (bad rows, files, duplicates); a valid log has none."""
        return self.issues.n_errors

    @property
    def n_warnings(self) -> int:
        """Warnings found (values set to null, inferred units, empty files)."""
        return self.issues.n_warnings

    def to_dict(self) -> dict[str, Any]:
        """For machines: counts, and every issue kept with its file, line, row and column."""
        return {
            "root": str(self.root),
            "valid": self.n_errors == 0,
            "rows_kept": dict(self.n_rows),
            "files": dict(self.n_files),
            "errors": self.n_errors,
            "warnings": self.n_warnings,
            "issues": [
                {"severity": i.severity, "message": i.message, "file": i.source.path, "line": i.source.line,
                 "row": i.source.row, "column": i.source.column}
                for i in self.issues.issues
            ],
            "issues_not_listed": len(self.issues) - len(self.issues.issues),
        }

    def render(self, max_issues: int = 20, max_groups: int = 40) -> RenderableType:
        """A rich renderable: rows per table, issue counts by file/column/problem, the first
        ``max_issues`` issues (all with a negative number)."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        tables = Table(title=f"log {self.root}", title_justify="left")
        tables.add_column("table")
        tables.add_column("files", justify="right")
        tables.add_column("rows kept", justify="right")
        for name, n in self.n_rows.items():
            tables.add_row(name, str(self.n_files.get(name, 0)), f"{n:,}")
        parts: list[RenderableType] = [tables]
        if self.tally:
            groups = Table(title="issues by file, column and problem", title_justify="left")
            for col in ("file", "column", "problem", "severity"):
                groups.add_column(col)
            groups.add_column("count", justify="right")
            for (path, column, problem, sev), n in self.tally.most_common(max_groups):
                style = "red" if sev == "error" else "yellow"
                groups.add_row(path, column, problem, Text(sev, style=style), f"{n:,}")
            parts.append(groups)
            shown = self.issues.issues if max_issues < 0 else self.issues.issues[:max_issues]
            first = Text("issues:\n" if max_issues < 0 else "first issues:\n", style="bold")
            for issue in shown:
                first.append(f"  {issue}\n", style="red" if issue.severity == "error" else "yellow")
            more = len(self.issues) - len(shown)
            if more > 0:
                first.append(f"  … and {more:,} more (`distillguard validate --all` or `--json FILE` lists them)\n")
            parts.append(first)
        verdict = (
            Text(f"{self.n_errors:,} errors, {self.n_warnings:,} warnings", style="bold red")
            if self.n_errors
            else Text(f"valid ({self.n_warnings:,} warnings)", style="bold green")
        )
        parts.append(verdict)
        return Group(*parts)


def validate_log(
    root: Path | str, mapping: ColumnMapping | Path | str | None = None, strict: bool = False, keep: int = 200
) -> ValidationReport:
    """Read a whole log once against the spec and collect every problem.

    Parameters
    ----------
    root
        The log folder.
    mapping
        Column mapping (object or YAML path) for logs whose names differ.
    strict
        Raise :class:`~distillguard.errors.ValidationError` at the first error.
    keep
        How many issues to keep with their details (all are counted).

    Returns
    -------
    ValidationReport
        Rows kept per table, and every issue with file, row and column.
    """
    reader = LogReader(root, mapping=mapping, strict=strict)
    reader.issues.keep = keep  # issues listed in full; every one is counted either way
    accounts = reader.accounts()
    labels = reader.labels()
    n_ex = 0
    unknown = 0
    known = accounts.column("account_id")
    for batch in reader.exchange_batches():
        n_ex += batch.num_rows
        if len(known):
            unknown += batch.num_rows - pc.sum(pc.is_in(batch.column("account_id"), known)).as_py()
    if unknown:
        reader._report(
            f"account_id not in accounts: {unknown:,} exchanges from accounts missing from accounts/",
            Location("exchanges/", column="account_id"),
            "warning",
        )
    n_rows = {"exchanges": n_ex, "accounts": accounts.num_rows}
    if labels is not None:
        n_rows["labels"] = labels.num_rows
    n_files = {name: len(files) for name, files in reader._files.items()}
    return ValidationReport(reader.root, n_rows, n_files, reader.issues, reader.tally)
