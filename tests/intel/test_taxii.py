from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from distillguard.cli import app
from distillguard.errors import ConfigError
from distillguard.intel.taxii import taxii_timestamp
from tests.intel.taxii_server import TaxiiServer


def indicators(n: int) -> list[dict[str, object]]:
    """``n`` plain indicators, as another tool would publish them."""
    return [{"type": "indicator", "spec_version": "2.1", "id": f"indicator--{uuid.UUID(int=i + 1, version=4)}",
             "created": "2026-04-01T00:00:00.000Z", "modified": "2026-04-01T00:00:00.000Z",
             "pattern": f"[ipv4-addr:value = '10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}']", "pattern_type": "stix",
             "valid_from": "2026-04-01T00:00:00Z", "confidence": 50} for i in range(n)]  # fmt: skip


def test_push_then_pull_returns_the_same_objects(taxii: TaxiiServer, tmp_path: Path) -> None:
    objs = indicators(1000)
    (tmp_path / "b.json").write_text(json.dumps({"type": "bundle", "id": f"bundle--{uuid.uuid4()}", "objects": objs}))
    auth = ["--url", taxii.api_root, "--collection", taxii.collection_id, "--user", taxii.user, "--password", taxii.password]
    r = CliRunner().invoke(app, ["intel", "push", str(tmp_path / "b.json"), *auth, "--chunk", "300"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["intel", "pull", *auth, "--out", str(tmp_path / "back.json")])
    assert r.exit_code == 0, r.output
    back = json.loads((tmp_path / "back.json").read_text())["objects"]
    assert sorted(back, key=lambda o: str(o["id"])) == sorted(objs, key=lambda o: str(o["id"]))
    r = CliRunner().invoke(app, ["intel", "pull", *auth, "--out", str(tmp_path / "none.json"), "--added-after", "2100-01-01T00:00:00Z"])
    assert r.exit_code == 0 and json.loads((tmp_path / "none.json").read_text())["objects"] == []
    r = CliRunner().invoke(app, ["intel", "pull", *auth, "--out", str(tmp_path / "all.json"), "--added-after", "2000-01-01T00:00:00Z"])
    assert r.exit_code == 0 and len(json.loads((tmp_path / "all.json").read_text())["objects"]) == len(objs)


def test_added_after_goes_out_in_utc_with_microseconds() -> None:
    assert taxii_timestamp("2026-04-01T02:30:00+02:00") == "2026-04-01T00:30:00.000000Z"
    assert taxii_timestamp("2026-04-01T00:00:00.5Z") == "2026-04-01T00:00:00.500000Z"
    with pytest.raises(ConfigError, match="added-after"):
        taxii_timestamp("yesterday")
