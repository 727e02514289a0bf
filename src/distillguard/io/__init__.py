"""Exchange logs in and out (the spec: ``docs/exchange-log.md``).

A log is a folder with ``exchanges/``, ``accounts/`` and (for evaluation only)
``labels/``, each holding Parquet, JSON Lines or CSV files.

* :mod:`~distillguard.io.formats`: formats, extensions, ISO timestamps;
* :mod:`~distillguard.io.normalise`: pure per-batch normalisation to the spec, issues returned;
* :mod:`~distillguard.io.reader`: :class:`LogReader`, discovery and day-by-day streaming;
* :mod:`~distillguard.io.validate`: :func:`validate_log` over a whole log;
* :mod:`~distillguard.io.writer`: :class:`LogWriter`, :func:`write_log` and the
  :class:`AppendingLogWriter` a long-running producer appends to.
"""

from distillguard.io.formats import FORMATS
from distillguard.io.normalise import normalise
from distillguard.io.reader import LogReader, Loss, RequestIds
from distillguard.io.validate import ValidationReport, validate_log
from distillguard.io.writer import AppendingLogWriter, LogWriter, write_log

__all__ = [
    "FORMATS",
    "AppendingLogWriter",
    "LogReader",
    "LogWriter",
    "Loss",
    "RequestIds",
    "ValidationReport",
    "normalise",
    "validate_log",
    "write_log",
]
