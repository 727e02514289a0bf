"""The gateway's logs as one JSON object per line (``serve --log-format json``), for log
pipelines that index fields rather than parse sentences.

Every refusal is logged with its fields (``event``, ``api``, ``status``, ``code``, ``account``,
``ref`` — the appeal reference the client was given), so an analyst can find the line a user
quotes; upstream failures and store failures are logged as they happen. Served requests are
counted in ``/metrics``, not logged one by one: at hundreds a second that is the log
pipeline's load, not evidence.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

import orjson

__all__ = ["FIELDS", "JsonFormatter", "configure"]

FIELDS = "dg"
"""The ``extra`` key whose dict becomes the line's own fields: ``log.info(msg, extra={FIELDS: {...}})``."""


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            line.update(fields)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def configure(fmt: str = "text", level: str = "warning") -> None:
    """Send the ``distillguard`` loggers to stderr as text or JSON lines."""
    if fmt not in ("text", "json"):
        raise ValueError(f"log format: expected text or json, got {fmt!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("distillguard")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
