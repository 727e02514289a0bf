"""OpenTAXII 2.1 on SQLite, run as ``python -m tests.intel.opentaxii_app PORT USER PASSWORD``.

OpenTAXII reads its settings from ``$OPENTAXII_CONFIG``. This module creates one API root,
one collection and an admin account, prints ``{"api_root": ..., "collection": ...}`` on one
line, and serves on 127.0.0.1:PORT (werkzeug, one thread) until terminated.

``Taxii2API`` is the persistence class the config names: OpenTAXII's own SQL persistence with
two fixes of 0.9.3 made through its plug-in point, so that what a client pushes comes back as
it was: (1) on SQLite its GUID columns come back as ``uuid.UUID``, which its responses
cannot serialise (every collection request answers 500), so ids are handed out as strings;
(2) its objects endpoints write the object's ``type`` into ``spec_version`` (server.py:
``"spec_version": obj.type``), so the stored ``spec_version`` is put back. And after each
push it runs SQLite's ``ANALYZE``: without statistics SQLite answers the "latest version"
subquery every page makes by walking the ``version`` index, and the objects of one export
share their ``modified`` time, so each page cost (collection size)^2 (100,000 indicators: no
page in 7 minutes; with statistics it uses the ``id`` index, about 1 s a page). Storage,
queries, pagination and the HTTP layer are OpenTAXII's.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from opentaxii.persistence.sqldb.api import Taxii2SQLDatabaseAPI
from sqlalchemy import text


def _str_ids(entity: Any, *fields: str) -> Any:
    for f in fields:
        value = getattr(entity, f, None)
        if value is not None:
            setattr(entity, f, str(value))
    return entity


def _spec_version(objects: Any) -> Any:
    for obj in objects or []:
        obj.serialized_data = {**obj.serialized_data, "spec_version": obj.spec_version}
    return objects


class Taxii2API(Taxii2SQLDatabaseAPI):  # type: ignore[misc]
    """OpenTAXII's SQL persistence with string ids and the stored ``spec_version``."""

    def get_api_roots(self) -> Any:
        return [_str_ids(r, "id") for r in super().get_api_roots()]

    def get_api_root(self, api_root_id: str) -> Any:
        return _str_ids(super().get_api_root(api_root_id), "id")

    def add_api_root(self, *args: Any, **kwargs: Any) -> Any:
        return _str_ids(super().add_api_root(*args, **kwargs), "id")

    def get_collections(self, api_root_id: str) -> Any:
        return [_str_ids(c, "id", "api_root_id") for c in super().get_collections(api_root_id)]

    def get_collection(self, api_root_id: str, collection_id_or_alias: str) -> Any:
        return _str_ids(super().get_collection(api_root_id, collection_id_or_alias), "id", "api_root_id")

    def add_collection(self, *args: Any, **kwargs: Any) -> Any:
        return _str_ids(super().add_collection(*args, **kwargs), "id", "api_root_id")

    def _job_and_details_to_entity(self, job: Any, job_details: Any) -> Any:
        return _str_ids(super()._job_and_details_to_entity(job, job_details), "id", "api_root_id")

    def add_objects(self, *args: Any, **kwargs: Any) -> Any:
        job = super().add_objects(*args, **kwargs)
        if self.db.session.get_bind().dialect.name == "sqlite":
            self.db.session.execute(text("PRAGMA analysis_limit=1000"))
            self.db.session.execute(text("ANALYZE"))
            self.db.session.commit()
        return job

    def get_objects(self, *args: Any, **kwargs: Any) -> Any:
        objects, more, next_param = super().get_objects(*args, **kwargs)
        return _spec_version(objects), more, next_param

    def get_object(self, *args: Any, **kwargs: Any) -> Any:
        objects, more, next_param = super().get_object(*args, **kwargs)
        return _spec_version(objects), more, next_param


def main() -> None:
    port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    from opentaxii.http import app
    from werkzeug.serving import run_simple

    with app.app_context():
        store = app.taxii_server.servers.taxii2.persistence.api
        root = store.add_api_root(title="api1", description="distillguard tests", default=True)
        col = store.add_collection(api_root_id=root.id, title="intel", description="distillguard tests")
        app.taxii_server.auth.api.create_account(username=user, password=password, is_admin=True)
    print(json.dumps({"api_root": root.id, "collection": col.id}), flush=True)
    run_simple("127.0.0.1", port, app)


if __name__ == "__main__":
    main()
