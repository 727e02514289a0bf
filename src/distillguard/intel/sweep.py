"""The attacker's sweep: hash IPv4 space without the key and look for exported digests.

An unkeyed hash of an IPv4 address is no protection: there are 2^32 of them, and a C loop
over OpenSSL digests does every one in minutes per hash function. This audit does that sweep
(``ipv4_sweep.c``, compiled with ``gcc`` on first use) with unkeyed SHA-256, SHA-1, MD5
and HMAC-SHA-256 under an empty key, each over the bare address and over the exact message
the keyed digest reads, and reports every exported digest it reproduces: none, when
:mod:`.keyed` does its job. The same sweep run with the epoch key (what a partner can do)
must find every exported address, which shows the sweep itself works.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SweepResult", "available", "compile_sweep", "run_sweep"]

SOURCE = Path(__file__).with_name("ipv4_sweep.c")


@dataclass(frozen=True)
class SweepResult:
    hits: list[tuple[str, str]]  # (algorithm, address)
    hashed: int
    seconds: float


def _libcrypto() -> str | None:
    name = ctypes.util.find_library("crypto")
    return name


def available() -> str | None:
    """Why the sweep cannot run here (no gcc, no libcrypto), or None when it can."""
    if shutil.which("gcc") is None:
        return "gcc is not installed"
    if _libcrypto() is None:
        return "OpenSSL's libcrypto was not found"
    return None


def compile_sweep(build_dir: Path | None = None) -> Path:
    """Compile ``ipv4_sweep.c`` (cached by the source's hash) and return the binary."""
    why = available()
    if why is not None:
        raise RuntimeError(f"cannot build the IPv4 sweep: {why}")
    src = SOURCE.read_bytes()
    folder = build_dir or Path(tempfile.gettempdir()) / "distillguard-sweep"
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / f"ipv4_sweep-{hashlib.sha256(src).hexdigest()[:12]}"
    if not exe.exists():
        lib = _libcrypto() or "crypto"
        link = f"-l:{lib}" if lib.startswith("lib") else f"-l{lib}"
        tmp = exe.with_suffix(".tmp")
        subprocess.run(["gcc", "-O2", "-fopenmp", "-o", str(tmp), str(SOURCE), link], check=True, capture_output=True)
        tmp.replace(exe)
    return exe


def run_sweep(digests: list[str], start: int, count: int, key: bytes | None = None, threads: int | None = None) -> SweepResult:
    """Sweep addresses ``[start, start + count)`` for the 32-byte hex ``digests``: without a
    key (the attacker's hashes) or with the epoch ``key`` (the partner's)."""
    import os

    exe = compile_sweep()
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(b"".join(bytes.fromhex(d) for d in digests))
        targets = f.name
    env = dict(os.environ)
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    try:
        args = [str(exe), "key" if key is not None else "attack", str(start), str(count), targets]
        if key is not None:
            args.append(key.hex())
        proc = subprocess.run(args, check=True, capture_output=True, text=True, env=env)
    finally:
        Path(targets).unlink(missing_ok=True)
    hits, hashed, seconds = [], 0, 0.0
    for line in proc.stdout.splitlines():
        parts = line.split()
        if parts[0] == "hit":
            hits.append((parts[1], parts[2]))
        elif parts[0] == "hashed":
            hashed, seconds = int(parts[1]), float(parts[4])
    return SweepResult(sorted(hits, key=lambda h: (h[1], h[0])), hashed, seconds)
