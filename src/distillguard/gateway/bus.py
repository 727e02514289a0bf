"""Decisions fanned out to every gateway replica over Redis pub/sub.

Each replica scores only the traffic it serves; an account whose requests are spread over four
replicas must be refused by all four as soon as one of them (or a batch hunt it loaded) acts on
it. After each re-scoring a replica publishes the verdicts that changed on one channel; every
replica's subscriber thread merges what the others publish into its live scorer's ``remote``
verdicts, which the door reads like its own. Pub/sub delivers in well under a second on one
Redis; a replica that was down when a message went out catches up at the next re-scoring of the
replica that sent it, which republishes its whole set every ``full_every`` rounds.
"""

from __future__ import annotations

import logging
import threading
import uuid
from typing import Any

import orjson

from distillguard.gateway.live import AccountVerdict, LiveVerdicts

__all__ = ["DecisionBus"]

log = logging.getLogger("distillguard.gateway")


class DecisionBus:
    """Publish this replica's verdicts, merge the other replicas' into ``live.remote``."""

    def __init__(self, url: str, live: LiveVerdicts, *, channel: str = "dg:decisions", full_every: int = 12) -> None:
        import redis

        self.url = url
        self.live = live
        self.channel = channel
        self.full_every = full_every
        self.replica = uuid.uuid4().hex[:12]
        self.published = 0
        self.received = 0
        self.errors = 0
        self._client: Any = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        self._sent: dict[str, AccountVerdict] = {}
        self._rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="decision-bus", daemon=True)
        live.on_rescore = self.publish

    def start(self) -> DecisionBus:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._client.close()

    def publish(self, verdicts: dict[str, AccountVerdict]) -> int:
        """Send what changed since the last message (everything every ``full_every`` rounds)."""
        self._rounds += 1
        full = self._rounds % self.full_every == 0
        changed = {a: v for a, v in verdicts.items() if full or self._sent.get(a) != v}
        cleared = [] if full else [a for a in self._sent if a not in verdicts]
        if not changed and not cleared:
            return 0
        body = {
            "replica": self.replica,
            "full": full,
            "set": {a: [v.decision, v.risk, v.flagged, v.campaign] for a, v in changed.items()},
            "clear": cleared,
        }
        try:
            self._client.publish(self.channel, orjson.dumps(body))
        except Exception as e:  # Redis down: the next round sends the whole set again
            self.errors += 1
            self._rounds = self.full_every - 1
            log.warning("decision bus: publish failed (%s)", type(e).__name__)
            return 0
        self._sent = dict(verdicts)
        self.published += 1
        return len(changed) + len(cleared)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                pubsub = self._client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    msg = pubsub.get_message(timeout=0.2)
                    if msg is not None:
                        self._merge(orjson.loads(msg["data"]))
                pubsub.close()
            except Exception as e:  # reconnect after a pause; the senders' full rounds fill the gap
                self.errors += 1
                log.warning("decision bus: subscriber error (%s); reconnecting", type(e).__name__)
                self._stop.wait(1.0)

    def _merge(self, body: dict[str, Any]) -> None:
        sender = body.get("replica")
        if sender == self.replica:
            return
        remote = dict(self.live.remote)
        if body.get("full"):
            remote = {k: v for k, v in remote.items() if v.source != f"replica:{sender}"}
        for account in body.get("clear", []):
            if remote.get(account) is not None and remote[account].source == f"replica:{sender}":
                del remote[account]
        for account, (decision, risk, flagged, campaign) in body.get("set", {}).items():
            remote[account] = AccountVerdict(decision, float(risk), bool(flagged), campaign, f"replica:{sender}")
        self.live.remote = remote  # one assignment: a request sees the old or the new set
        self.received += 1
