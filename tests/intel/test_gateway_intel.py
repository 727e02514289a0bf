"""The gateway's ``intel:`` section, through the app with the mock upstream."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from distillguard.errors import ConfigError
from distillguard.gateway.policy_file import GatewayPolicy
from distillguard.intel.evidence import collect
from distillguard.intel.export import build_bundle, write_bundle
from distillguard.intel.ingest import ingest
from tests.gateway.test_app import KEY as API_KEY
from tests.gateway.test_app import _Gw
from tests.gateway.test_app import mock as mock  # the fixture
from tests.intel.conftest import KEY
from tests.intel.test_ingest import NOW

ENV = "TEST_INTEL_KEY"


def _intel_file(hunt: Path, tmp_path: Path) -> Path:
    b = tmp_path / "peer.json"
    write_bundle(build_bundle(collect(hunt), KEY, producer="Provider A"), b)
    ingest([b], now=NOW).save(tmp_path / "intel.json")
    return tmp_path / "intel.json"


def test_a_keyed_indicator_blocks_at_the_door(
    mock: object,
    hunt_dirs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _intel_file(hunt_dirs[1], tmp_path)
    monkeypatch.setenv(ENV, KEY.secret.hex())
    extra = f"intel: {{files: [intel.json], key_env: {ENV}}}\n"
    with _Gw(mock, tmp_path, extra) as (gw, url):  # type: ignore[arg-type]
        assert gw.policy.intel is not None
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
        ok = httpx.post(url + "/v1/chat/completions", json=body, headers={"authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 200
        bad = httpx.post(url + "/v1/chat/completions", json=body,
                         headers={"authorization": f"Bearer {API_KEY}", "x-device-fingerprint": "t13d1516h2_aaa"})  # fmt: skip
        assert bad.status_code == 403 and "intel_device" in bad.text


def test_keyed_intel_without_the_key_is_a_config_error(hunt_dirs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _intel_file(hunt_dirs[1], tmp_path)
    monkeypatch.delenv(ENV, raising=False)
    p = tmp_path / "policy.yaml"
    p.write_text(f"intel: {{files: [intel.json], key_env: {ENV}}}\n")
    with pytest.raises(ConfigError, match=f"intel.*{ENV}"):
        GatewayPolicy.load(p)
    assert GatewayPolicy.default().intel is None


def test_a_template_sketch_blocks_a_reworded_prompt_at_the_door(
    mock: object,
    hunt_dirs: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A peer's keyed template sketch alone: the template reworded is refused (``intel_template``),
    another prompt passes."""
    from distillguard.intel.ingest import IntelSet

    path = _intel_file(hunt_dirs[1], tmp_path)
    only = IntelSet.load(path)
    assert only.sketches
    only.clear, only.keyed = {}, {}
    only.save(path)
    monkeypatch.setenv(ENV, KEY.secret.hex())
    extra = f"intel: {{files: [intel.json], key_env: {ENV}}}\n"
    auth = {"authorization": f"Bearer {API_KEY}"}
    reworded = ("Below is an instruction which describes a task, paired with an input that gives further context. "
                "Write a reply that appropriately completes the request about hash tables for case 12.")  # fmt: skip
    with _Gw(mock, tmp_path, extra) as (_gw, url):  # type: ignore[arg-type]
        for text, status in (("What is a good name for a golden retriever puppy?", 200), (reworded, 403)):
            body = {"model": "m", "messages": [{"role": "user", "content": text}], "max_tokens": 8}
            r = httpx.post(url + "/v1/chat/completions", json=body, headers=auth)
            assert r.status_code == status, r.text
        assert "intel_template" in r.text
