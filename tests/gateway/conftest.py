"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.gateway.redis_server import RedisServer, have_redis_server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1, one per test session; tests flush it as they need."""
    if not have_redis_server():
        if os.environ.get("CI"):  # `make test` installs it: in CI a missing server is a failure, not a skip
            pytest.fail("redis-server is not installed; `bash scripts/redis-server.sh install`")
        pytest.skip(
            "redis-server is not installed (apt-get install redis-server, or scripts/redis-server.sh)"
        )
    with RedisServer() as server:
        yield server
