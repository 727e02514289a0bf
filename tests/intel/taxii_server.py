"""A throwaway OpenTAXII 2.1 server (SQLite) on 127.0.0.1, for tests and benchmarks.

``with TaxiiServer() as s: s.api_root, s.collection_id, s.user, s.password``. It runs as a
child process (``python -m tests.intel.opentaxii_app``, which sets up an API root, a
collection and an admin account) on a free port, with its databases in a temporary folder
removed after. OpenTAXII rather than medallion: medallion 3.0's memory backend checks each
pushed object against every stored one and sorts pages by scanning the manifest once per
object, so 2,000 indicators took 25-49 s to pull and 100,000 never finish; OpenTAXII keeps
objects in indexed SQL tables and pages by (date_added, id).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

READY_TIMEOUT_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_version() -> str:
    from importlib.metadata import version

    return f"OpenTAXII {version('opentaxii')} (SQLite {__import__('sqlite3').sqlite_version}, werkzeug)"


class TaxiiServer:
    """OpenTAXII with one API root and one collection the account may read and write."""

    def __init__(self, max_content_length: int = 256 * 2**20) -> None:
        self.port = free_port()
        self.user, self.password = "intel", "intel-test-password"
        self.max_content_length = max_content_length
        self.dir = Path(tempfile.mkdtemp(prefix="opentaxii-"))
        self.root_id = self.collection_id = ""
        self.process: subprocess.Popen[str] | None = None

    @property
    def api_root(self) -> str:
        return f"http://127.0.0.1:{self.port}/taxii2/{self.root_id}/"

    def _config(self) -> Path:
        # JSON is YAML; taxii1: false runs OpenTAXII as a TAXII 2.1 server only
        conf = {
            "domain": f"127.0.0.1:{self.port}", "support_basic_auth": True, "return_server_error_details": True,
            "auth_api": {"class": "opentaxii.auth.sqldb.SQLDatabaseAPI",
                         "parameters": {"db_connection": f"sqlite:///{self.dir / 'auth.db'}", "create_tables": True,
                                        "secret": os.urandom(24).hex(), "token_ttl_secs": 3600}},
            "taxii1": False,
            "taxii2": {"persistence_api": {"class": "tests.intel.opentaxii_app.Taxii2API",
                                           "parameters": {"db_connection": f"sqlite:///{self.dir / 'data.db'}", "create_tables": True}},
                       "max_content_length": self.max_content_length, "title": "distillguard tests", "public_discovery": False,
                       "allow_custom_properties": True},
            "logging": {"opentaxii": "error", "root": "error"},
        }  # fmt: skip
        (self.dir / "opentaxii.yml").write_text(json.dumps(conf))
        return self.dir / "opentaxii.yml"

    def start(self) -> TaxiiServer:
        env = {**os.environ, "OPENTAXII_CONFIG": str(self._config()),
               "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}  # fmt: skip
        cmd = [sys.executable, "-m", "tests.intel.opentaxii_app", str(self.port), self.user, self.password]
        self.process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # the ids, once the databases are set up
        try:
            ids = json.loads(line)
        except ValueError:
            err = self.stop()
            raise RuntimeError(f"OpenTAXII did not start: {line}{err}") from None
        self.root_id, self.collection_id = ids["api_root"], ids["collection"]
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
                    raise RuntimeError(f"OpenTAXII did not answer on port {self.port}: {err}") from None
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
        shutil.rmtree(self.dir, ignore_errors=True)
        return (err or "")[-2000:]

    def __enter__(self) -> TaxiiServer:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
