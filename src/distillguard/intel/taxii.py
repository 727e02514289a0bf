"""TAXII 2.1 push and pull of bundles with ``taxii2-client``.

Push sends the bundle's objects in envelopes of ``chunk`` objects (a server caps a request's
size: ``max_content_length``) and checks each status; pull follows the server's pagination
(``next``) with ``per_request`` objects a page and writes one bundle. ``url`` is the API
root (``http://host:port/api1/``).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

from distillguard.errors import ConfigError, DistillguardError

__all__ = ["collection", "pull", "push"]

CHUNK = 2000
PER_REQUEST = 1000


def collection(url: str, collection_id: str, user: str | None = None, password: str | None = None) -> Any:
    """The ``taxii2client.v21.Collection`` at API root ``url``."""
    from taxii2client.v21 import Collection

    base = url if url.endswith("/") else url + "/"
    return Collection(f"{base}collections/{collection_id}/", user=user, password=password)


def push(objects: list[dict[str, Any]], url: str, collection_id: str, user: str | None = None,
         password: str | None = None, chunk: int = CHUNK) -> dict[str, Any]:  # fmt: skip
    """Add ``objects`` to the collection; returns counts and seconds. A failed object is an error."""
    if chunk < 1:
        raise ConfigError(f"--chunk has value {chunk}; expected 1 or more")
    col = collection(url, collection_id, user, password)
    t0 = time.perf_counter()
    ok = failed = 0
    for i in range(0, len(objects), chunk):
        env = {"objects": objects[i : i + chunk]}
        status = col.add_objects(json.dumps(env), wait_for_completion=True, poll_interval=0.2, timeout=600)
        ok += int(status.success_count)
        failed += int(status.failure_count)
    if failed:
        raise DistillguardError(f"the TAXII server refused {failed:,} of {len(objects):,} objects (already there in that version, or invalid)")
    return {"objects": len(objects), "added": ok, "requests": -(-len(objects) // chunk), "seconds": time.perf_counter() - t0}


def pull(url: str, collection_id: str, user: str | None = None, password: str | None = None,
         added_after: str | None = None, per_request: int = PER_REQUEST) -> list[dict[str, Any]]:  # fmt: skip
    """Every object of the collection (added after ``added_after``), following pagination."""
    from taxii2client.v21 import as_pages

    col = collection(url, collection_id, user, password)
    kw: dict[str, Any] = {"added_after": taxii_timestamp(added_after)} if added_after else {}
    out: list[dict[str, Any]] = []
    for page in as_pages(col.get_objects, per_request=per_request, **kw):
        out.extend(page.get("objects", []))
    return out


def taxii_timestamp(value: str) -> str:
    """``value`` (RFC 3339) in UTC with microseconds: OpenTAXII refuses (400) any other form."""
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--added-after has value {value!r}; expected an RFC 3339 time such as 2026-04-01T00:00:00Z") from None
    t = t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def as_bundle(objects: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objects}


def read_objects(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"bundle {path}: cannot read it as JSON ({exc})") from None
    objs = doc.get("objects") if isinstance(doc, dict) else None
    if not isinstance(objs, list):
        raise ConfigError(f"bundle {path}: not a STIX bundle (no objects list)")
    return objs
