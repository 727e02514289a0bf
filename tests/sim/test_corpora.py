"""Corpora: locating the folder and fetching with checksums (against a local server only)."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from distillguard import corpora
from distillguard.corpora import MANIFEST, RemoteFile, fetch, locate
from distillguard.errors import DistillguardError


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "mirror"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    finally:
        httpd.shutdown()
        httpd.server_close()


def _publish(root: Path, f: RemoteFile, data: bytes) -> None:
    p = root / f.repo / f.commit / f.path
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)


def test_fetch_checks_sha256(server: tuple[str, Path], tmp_path: Path) -> None:
    base, root = server
    good_data = b'{"instruction": "hi"}\n'
    good = RemoteFile("ds", "a.jsonl", "owner/repo", "c0ffee", "data/a.jsonl", hashlib.sha256(good_data).hexdigest())
    trace = RemoteFile("sg", "m/chunk-0-trace.csv.gz", "owner/sg", "beef", "data/m/chunk-0-trace.csv", None, "gzip")
    _publish(root, good, good_data)
    _publish(root, trace, b"0,1.0,2.0,Gamma,1,1\n")
    dest = tmp_path / "dest"
    fetch(dest, base_url=base, files=[good, trace], progress=False)
    assert (dest / "ds" / "a.jsonl").read_bytes() == good_data
    assert gzip.decompress((dest / "sg" / "m" / "chunk-0-trace.csv.gz").read_bytes()).startswith(b"0,1.0")

    bad = RemoteFile("ds", "b.jsonl", "owner/repo", "c0ffee", "data/b.jsonl", "0" * 64)
    _publish(root, bad, b"tampered")
    with pytest.raises(DistillguardError, match="checksum mismatch"):
        fetch(dest, base_url=base, files=[bad], progress=False)
    assert not (dest / "ds" / "b.jsonl").exists()
    assert not [p for p in (dest / "ds").iterdir() if p.name.startswith("tmp")]

    missing = RemoteFile("ds", "c.jsonl", "owner/repo", "c0ffee", "data/missing.jsonl", "0" * 64)
    with pytest.raises(DistillguardError, match="could not download"):
        fetch(dest, base_url=base, files=[missing], progress=False)


def test_manifest_urls_point_at_pinned_github_raw() -> None:
    f = next(m for m in MANIFEST if m.dataset == "gpteacher" and m.local.startswith("codegen"))
    assert f.url() == ("https://raw.githubusercontent.com/teknium1/GPTeacher/"
                       "481075123c29854bddb82655badeef6a438f2436/Codegen/codegen-instruct.json")
    assert all(m.sha256 is not None for m in MANIFEST if m.dataset != "servegen")


def test_locate_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert locate(tmp_path) == tmp_path
    monkeypatch.setenv("DISTILLGUARD_DATA", str(tmp_path / "env"))
    assert locate() == tmp_path / "env"
    monkeypatch.delenv("DISTILLGUARD_DATA")
    monkeypatch.chdir(tmp_path)
    found = locate()
    assert found.name in ("datasets", "distillguard")


def test_describe_renders(tmp_path: Path) -> None:
    from rich.console import Console

    c = Console(record=True, width=200)
    c.print(corpora.describe(tmp_path))
    assert "FALLBACK" in c.export_text()
