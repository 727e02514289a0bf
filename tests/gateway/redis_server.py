"""A throwaway ``redis-server`` on 127.0.0.1 for tests and benchmarks: no persistence, its own port.

Usable as a context manager (``with RedisServer() as server: server.url``) and through the
``redis_server`` fixture in ``tests/gateway/conftest.py``. ``stop`` then ``start`` brings a
new, empty server back on the same port (to test recovery); ``pause``/``resume`` freeze it
with SIGSTOP/SIGCONT (to test timeouts).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from types import TracebackType

READY_TIMEOUT_S = 10.0


def have_redis_server() -> bool:
    return shutil.which("redis-server") is not None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def answers_ping(port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1 (``--save "" --appendonly no``)."""

    def __init__(self, port: int | None = None, executable: str = "redis-server") -> None:
        self.port = port if port is not None else free_port()
        self.executable = executable
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        if self.process is not None:
            raise RuntimeError(f"redis-server on port {self.port} is already running")
        path = shutil.which(self.executable)
        if path is None:
            raise FileNotFoundError(
                f"{self.executable} not found; install it (apt-get install redis-server)"
            )
        command = [path, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
                   "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not answers_ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                output = self._kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}: {output!r}")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._kill()

    def pause(self) -> None:
        """Freeze the server: connections stay open but nothing answers (a stand-in for a hung Redis)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGCONT)

    def _kill(self) -> bytes:
        process, self.process = self.process, None
        if process is None:
            return b""
        os.kill(process.pid, signal.SIGCONT)  # a paused server cannot act on SIGTERM
        process.terminate()
        try:
            output, _ = process.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        return output or b""

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
