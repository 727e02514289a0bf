"""Engines: where enrich and aggregate run. One interface, backends registered by name.

:class:`Engine` fills a :class:`~distillguard.hunt.state.HuntState` from logs; link,
cluster, score and explain then run on the driver, the same for every engine. ``polars``
(embedded, multi-core, one machine) is the first backend; a Spark backend joins the
registry and the engine-parametrised tests (``tests/hunt/engines/``) without any signal
being written twice.
"""

from distillguard.hunt.engines.base import ENGINES, Engine, LogSource, get_engine

__all__ = ["ENGINES", "Engine", "LogSource", "get_engine"]
