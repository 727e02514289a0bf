"""`distillguard serve --workers N`: worker processes built from the settings in the environment."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from distillguard.gateway.mock_upstream import MockConfig, create_mock_app
from distillguard.gateway.server import BackgroundServer


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_worker_processes_build_their_app_from_the_environment_and_serve(tmp_path: Path, redis_server: Any) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "identity: {header: X-Account-Id}\n"
        "plans:\n"
        "  free: {daily_tokens: 2000000, requests_per_minute: 100000, tokens_per_minute: 10000000, max_tokens: 64}\n"
        "  pro: {daily_tokens: 5000000, requests_per_minute: 1000, tokens_per_minute: 400000, max_tokens: 1024}\n"
        "  enterprise: {daily_tokens: 50000000, requests_per_minute: 6000, tokens_per_minute: 2000000, max_tokens: 32768}\n"
        f"state: {{store: redis, url: '{redis_server.url}', on_store_error: closed}}\n"
    )
    port = _free_port()
    with BackgroundServer(create_mock_app(MockConfig(latency_ms=1, tokens_per_s=50_000))) as mock:
        cli = str(Path(sys.executable).parent / "distillguard")  # the console script beside this Python
        cmd = [cli, "serve", "--upstream", mock.url, "--policy", str(policy),
               "--port", str(port), "--workers", "2", "--rescore", "3600"]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            assert httpx.get(url + "/healthz").json() == {"ok": True, "state_store": "up"}
            body = {"model": "m", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
            with httpx.Client(base_url=url) as client:  # new connections spread over both workers
                codes = [client.post("/v1/chat/completions", json=body, headers={"x-account-id": "acct_w", "connection": "close"}).status_code
                         for _ in range(20)]  # fmt: skip
            assert codes == [200] * 20
        finally:
            proc.terminate()
            out, _ = proc.communicate(timeout=30)
        assert "Traceback" not in out, out
