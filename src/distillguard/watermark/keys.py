"""Watermark keys: one secret master, keys derived per epoch and per account cluster.

Why derived rather than stored: the store holds one master secret and a list of epochs,
so rotating is appending an epoch, and a key per account cluster costs nothing to keep.
A leak scored against every cluster key of an epoch says which cluster harvested it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from distillguard.errors import ConfigError

FORMAT_VERSION = 1


@dataclass(frozen=True)
class WatermarkKey:
    """One key: the epoch it belongs to, the cluster it is bound to (or none) and its secret."""

    epoch: int
    secret: bytes
    cluster: str | None = None

    @property
    def key_id(self) -> str:
        """A printable name, ``e3`` or ``e3/cluster-7``; never the secret."""
        return f"e{self.epoch}" if self.cluster is None else f"e{self.epoch}/{self.cluster}"

    @property
    def seed(self) -> int:
        """64-bit integer seed for the hash functions of the schemes."""
        return int.from_bytes(hashlib.blake2b(self.secret, digest_size=8).digest(), "little")

    def __repr__(self) -> str:  # never print the secret
        return f"WatermarkKey({self.key_id!r})"


def derive(master: bytes, epoch: int, cluster: str | None = None) -> WatermarkKey:
    """HMAC-SHA256 of the master over epoch and cluster: keys independent for any practical purpose."""
    label = f"distillguard-watermark|epoch={epoch}|cluster={cluster or ''}".encode()
    return WatermarkKey(epoch, hmac.new(master, label, hashlib.sha256).digest(), cluster)


@dataclass
class Epoch:
    """An epoch of keys: when it began and, once rotated away, when it stopped signing."""

    number: int
    created: float
    retired: float | None = None
    clusters: list[str] = field(default_factory=list)


@dataclass
class KeyStore:
    """A master secret and its epochs; the last unretired epoch signs new outputs.

    Detection tries every epoch (and every cluster key registered in it), because a
    suspect model may have been trained on outputs from any time; callers correct the
    p-value for the number of keys tried (:func:`distillguard.watermark.detect.best_of`).

    Examples
    --------
    >>> ks = KeyStore.generate()
    >>> ks.current().key_id
    'e0'
    >>> ks.rotate().key_id
    'e1'
    >>> [k.key_id for k in ks.all_keys()]
    ['e0', 'e1']
    """

    master: bytes
    epochs: list[Epoch] = field(default_factory=list)

    @classmethod
    def generate(cls, master: bytes | None = None) -> KeyStore:
        """A new store with epoch 0; a fresh 32-byte master unless one is given (tests)."""
        store = cls(master if master is not None else secrets.token_bytes(32))
        store.epochs.append(Epoch(0, time.time()))
        return store

    @property
    def current_epoch(self) -> Epoch:
        live = [e for e in self.epochs if e.retired is None]
        if not live:
            raise ConfigError("key store has no live epoch; rotate to start one")
        return live[-1]

    def current(self, cluster: str | None = None) -> WatermarkKey:
        """The signing key now, for ``cluster`` if given (registered so detection tries it)."""
        epoch = self.current_epoch
        if cluster is not None and cluster not in epoch.clusters:
            epoch.clusters.append(cluster)
        return derive(self.master, epoch.number, cluster)

    def rotate(self) -> WatermarkKey:
        """Retire the current epoch and start the next; old epochs stay for detection."""
        now = time.time()
        old = self.current_epoch
        old.retired = now
        self.epochs.append(Epoch(old.number + 1, now))
        return self.current()

    def all_keys(self, clusters: bool = True) -> list[WatermarkKey]:
        """Every key detection should try: each epoch's plain key, then its cluster keys."""
        out: list[WatermarkKey] = []
        for e in self.epochs:
            out.append(derive(self.master, e.number))
            if clusters:
                out.extend(derive(self.master, e.number, c) for c in e.clusters)
        return out

    def key(self, epoch: int, cluster: str | None = None) -> WatermarkKey:
        """The key of a given epoch (and cluster); errors on an epoch the store never had."""
        if not any(e.number == epoch for e in self.epochs):
            known = [e.number for e in self.epochs]
            raise ConfigError(f"key store has no epoch {epoch}; it has {known}")
        return derive(self.master, epoch, cluster)

    # ---------------------------------------------------------------- persistence

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "master": self.master.hex(),
                "epochs": [
                    {"number": e.number, "created": e.created, "retired": e.retired, "clusters": e.clusters}
                    for e in self.epochs
                ],
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str, source: str = "<string>") -> KeyStore:
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT_VERSION:
                raise ConfigError(f"key store {source} has format {raw.get('format')!r}, expected {FORMAT_VERSION}")
            epochs = [
                Epoch(int(e["number"]), float(e["created"]), e.get("retired"), list(e.get("clusters", [])))
                for e in raw["epochs"]
            ]
            return cls(bytes.fromhex(raw["master"]), epochs)
        except (KeyError, ValueError, TypeError, AttributeError) as exc:
            raise ConfigError(f"key store {source} is malformed: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write the store readable by its owner only (it holds the master secret)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_json())
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        if not path.exists():
            raise ConfigError(f"key store {path} does not exist; create one with `distillguard watermark keys init`")
        return cls.from_json(path.read_text(), str(path))
