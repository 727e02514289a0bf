"""A throwaway medallion TAXII 2.1 server (memory backend) on 127.0.0.1, for tests and benchmarks.

``with TaxiiServer() as s: s.api_root, s.collection_id, s.user, s.password``. It runs as a
child process (``python -m medallion.scripts.run``) on a free port and is stopped after.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from types import TracebackType

READY_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TaxiiServer:
    """medallion with one API root (``api1``) and one read-write collection."""

    def __init__(self, max_page_size: int = 1000, max_content_length: int = 64 * 2**20) -> None:
        self.port = free_port()
        self.user, self.password = "intel", "intel-test-password"
        self.collection_id = str(uuid.uuid4())
        self.max_page_size, self.max_content_length = max_page_size, max_content_length
        self.dir = Path(tempfile.mkdtemp(prefix="medallion-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_root(self) -> str:
        return f"http://127.0.0.1:{self.port}/api1/"

    def _config(self) -> Path:
        data = {
            "/discovery": {"title": "test", "description": "test", "contact": "", "default": self.api_root, "api_roots": [self.api_root]},
            "api1": {
                "information": {"title": "api1", "description": "test", "versions": ["application/taxii+json;version=2.1"],
                                "max_content_length": self.max_content_length},
                "status": [],
                "collections": [{"id": self.collection_id, "title": "intel", "description": "test", "can_read": True,
                                 "can_write": True, "media_types": ["application/stix+json;version=2.1"], "objects": [], "manifest": []}],
            },
        }  # fmt: skip
        (self.dir / "data.json").write_text(json.dumps(data))
        conf = {"backend": {"module": "medallion.backends.memory_backend", "module_class": "MemoryBackend", "filename": str(self.dir / "data.json")},
                "users": {self.user: self.password}, "taxii": {"max_page_size": self.max_page_size}}  # fmt: skip
        (self.dir / "config.json").write_text(json.dumps(conf))
        return self.dir / "config.json"

    def start(self) -> TaxiiServer:
        conf = self._config()
        cmd = [sys.executable, "-m", "medallion.scripts.run", "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "ERROR", str(conf)]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/taxii2/", timeout=0.5)
                return self
            except urllib.error.HTTPError:
                return self  # answering (401 without credentials)
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    err = self.stop()
                    raise RuntimeError(f"medallion did not start on port {self.port}: {err}") from None
                time.sleep(0.1)

    def stop(self) -> str:
        if self.process is None:
            return ""
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        self.process = None
        return (err or b"").decode(errors="replace")[-2000:]

    def __enter__(self) -> TaxiiServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
