"""Keys and accounts shared by gateway replicas through Redis, looked up in memory.

With ``state.store: redis`` every replica (and every ``--workers`` process) keeps its own
:class:`~distillguard.gateway.directory.Directory` as a local copy, so a request never waits on
Redis to learn who is calling. Redis holds the system of record and a pub/sub channel tells the
copies what changed:

- ``{prefix}accounts``: hash, account id -> the account's row (JSON, ``Account.to_row``);
- ``{prefix}keys``: hash, SHA-256 of a key (hex) -> account id. A key in clear is never written
  to Redis nor published: it is shown once, in the admin API's answer;
- ``{prefix}revoked``: hash, SHA-256 of a revoked key -> account id (a tombstone, so a replica
  that missed the message drops the key at its next reload).

Each write (upsert an account, add a key, revoke a key) is one Lua script: it changes the hash
and publishes the change, atomically, so messages come in the order of the writes. The writer
waits (up to ``echo_wait_s``) for its own message before it answers, so the replica that
answered already knows what it wrote, and the copies apply every change in one order.

A subscriber thread applies messages. On every (re)subscription it loads all three hashes
(after subscribing, so nothing falls in the gap): that is the start-up load, and it mends
whatever was missed while disconnected. A Redis that comes back empty removes nothing from the
copies (only tombstones do); run Redis with persistence, it is where keys live.

A key unknown locally and shaped like a gateway key is looked up in Redis once (one script call
returns its account id and the account's row) and cached: a key made a moment ago on another
replica then works even before its message arrives. Known keys never reach this path. Misses
are remembered for ``miss_ttl_s`` and at most ``max_lookups_in_flight`` lookups run at once,
so a flood of made-up keys costs Redis little; a key a client sends before it exists is found
by its message in any case.

Redis down: known keys are served from memory as before; unknown keys are 401 (they cannot be
checked); writes raise :class:`DirectoryStoreDown` (nothing was changed by a refused write,
unless it timed out after Redis ran it; every write is safe to retry) and the admin API answers
429 ``state_store_down`` with a retry-after, as the chat API does for a quota store that is
down. ``errors`` counts every Redis failure, for ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from distillguard.gateway.directory import (
    KEY_LENGTH,
    KEY_PREFIX,
    Account,
    Directory,
    generate_key,
    hash_key,
)

__all__ = ["DirectoryStoreDown", "DirectorySync"]

log = logging.getLogger("distillguard.gateway")

# KEYS: accounts. ARGV: account id, row (JSON), channel, nonce. An upsert without created_at
# keeps the stored one (as Directory.upsert does), read here so two replicas cannot race.
_UPSERT_LUA = """
local row = cjson.decode(ARGV[2])
if row['created_at'] == nil then
  local old = redis.call('HGET', KEYS[1], ARGV[1])
  if old then row['created_at'] = cjson.decode(old)['created_at'] end
end
local stored = cjson.encode(row)
redis.call('HSET', KEYS[1], ARGV[1], stored)
redis.call('PUBLISH', ARGV[3], cjson.encode({op = 'account', row = row, nonce = ARGV[4]}))
return stored
"""

# KEYS: keys, revoked, accounts. ARGV: key sha, account id, "1" when the caller knows the account
# (loaded from a file, not in Redis), channel, nonce. 0: no such account.
_ADD_KEY_LUA = """
if ARGV[3] ~= '1' and redis.call('HEXISTS', KEYS[3], ARGV[2]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('PUBLISH', ARGV[4], cjson.encode({op = 'key', sha = ARGV[1], account_id = ARGV[2], nonce = ARGV[5]}))
return 1
"""

# KEYS: keys, revoked. ARGV: key sha, channel, nonce. The account id it had, or nil.
_REVOKE_LUA = """
local account = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], account or '')
redis.call('PUBLISH', ARGV[2], cjson.encode({op = 'revoke', sha = ARGV[1], nonce = ARGV[3]}))
return account
"""

# KEYS: keys, accounts. ARGV: key sha. {account id, row or nil}, or nil.
_LOOKUP_LUA = """
local account = redis.call('HGET', KEYS[1], ARGV[1])
if not account then return nil end
return {account, redis.call('HGET', KEYS[2], account)}
"""


class DirectoryStoreDown(Exception):
    """A directory write could not be made because Redis did not answer (retry later)."""


class DirectorySync:
    """Keep ``directory`` in step with Redis and the other replicas; write through Redis.

    Parameters
    ----------
    url
        ``redis://host:port/db`` (the policy's ``state.url``).
    directory
        This process's copy: the request path reads it, this object writes it.
    prefix, channel
        Names of the three hashes (``{prefix}accounts`` ...) and of the pub/sub channel.
    timeout_s
        Limit for connecting and for each reply on the request path and for writes.
    echo_wait_s
        How long a write waits for its own message before applying its change itself.
    lookup_misses
        Look a locally unknown key up in Redis (see the module's docstring).
    miss_ttl_s, max_lookups_in_flight
        How long a key Redis did not know is not asked again; lookups running at once at most.
    """

    def __init__(
        self,
        url: str,
        directory: Directory,
        *,
        prefix: str = "dg:dir:",
        channel: str = "dg:directory",
        timeout_s: float = 0.25,
        echo_wait_s: float = 1.0,
        lookup_misses: bool = True,
        miss_ttl_s: float = 5.0,
        max_lookups_in_flight: int = 16,
    ) -> None:
        import redis
        import redis.asyncio as redis_asyncio
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.url = url
        self.directory = directory
        self.channel = channel
        self.accounts_hash = prefix + "accounts"
        self.keys_hash = prefix + "keys"
        self.revoked_hash = prefix + "revoked"
        self.echo_wait_s = echo_wait_s
        self.lookup_misses = lookup_misses
        self.miss_ttl_s = miss_ttl_s
        self.max_lookups_in_flight = max_lookups_in_flight
        self.errors = 0  # Redis failures of any kind (writes, lookups, the subscriber)
        self.received = 0  # messages applied
        self.loads = 0  # full loads (start and every resubscription)
        self.lookups = 0  # locally unknown keys asked of Redis
        self.lookups_skipped = 0  # not asked: too many lookups already running
        self._client: Any = redis.Redis.from_url(
            url, socket_timeout=max(1.0, timeout_s), socket_connect_timeout=max(1.0, timeout_s),
            decode_responses=True, health_check_interval=30,
        )  # fmt: skip
        # One immediate retry replaces a pooled connection that died with a restarted server.
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        self._aclient: Any = redis_asyncio.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, decode_responses=True, retry=retry
        )
        self._upsert = self._aclient.register_script(_UPSERT_LUA)
        self._add_key = self._aclient.register_script(_ADD_KEY_LUA)
        self._revoke = self._aclient.register_script(_REVOKE_LUA)
        self._lookup = self._aclient.register_script(_LOOKUP_LUA)
        self._generation = 0  # bumped by every change the subscriber applies
        self._misses: dict[str, float] = {}  # key sha -> monotonic time until which it is not asked again
        self._in_flight = 0
        self._waiting: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = {}
        self._loaded = threading.Event()  # set after the first load attempt, whatever its outcome
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="directory-sync", daemon=True)

    # -- life -------------------------------------------------------------------------------
    async def start(self, wait_s: float = 5.0) -> bool:
        """Subscribe and load everything; True once loaded (False: Redis down, retried in the background)."""
        self._thread.start()
        await asyncio.to_thread(self._loaded.wait, wait_s)
        return self.loads > 0

    async def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            await asyncio.to_thread(self._thread.join, 5)
        with contextlib.suppress(Exception):
            await self._aclient.aclose()
        self._client.close()

    # -- writes (the admin API) --------------------------------------------------------------
    async def upsert(self, account: Account) -> Account:
        """Create or update ``account`` everywhere; the stored account (created_at kept if not given)."""
        row = orjson.dumps(account.to_row()).decode()
        stored, nonce = await self._write(self._upsert, [self.accounts_hash], [account.account_id, row, self.channel])
        merged = Account.from_row(orjson.loads(stored))
        await self._echo(nonce, lambda: self.directory.upsert(merged))
        return self.directory.accounts.get(account.account_id, merged)

    async def new_key(self, account_id: str) -> str | None:
        """A fresh key for ``account_id``, known to every replica (shown once, stored hashed);
        None when no replica's directory has the account."""
        key = generate_key()
        sha = hash_key(key)
        known = "1" if account_id in self.directory.accounts else "0"
        keys = [self.keys_hash, self.revoked_hash, self.accounts_hash]
        added, nonce = await self._write(self._add_key, keys, [sha, account_id, known, self.channel])
        if not added:
            self._waiting.pop(nonce, None)
            return None
        await self._echo(nonce, lambda: self.directory.keys.__setitem__(sha, account_id))
        return key

    async def revoke_key(self, key_sha256: str) -> bool:
        """Revoke a key everywhere by its SHA-256; False when neither Redis nor this replica knew it."""
        local = key_sha256 in self.directory.keys
        account, nonce = await self._write(self._revoke, [self.keys_hash, self.revoked_hash], [key_sha256, self.channel])
        await self._echo(nonce, lambda: self.directory.revoke_key(key_sha256))
        return bool(account) or local

    async def _write(self, script: Any, keys: list[str], args: list[str]) -> tuple[Any, str]:
        nonce = uuid.uuid4().hex
        loop = asyncio.get_running_loop()
        self._waiting[nonce] = (loop, loop.create_future())
        try:
            return await script(keys=keys, args=[*args, nonce]), nonce
        except Exception as e:  # redis errors, timeouts, a closed pool: never a crash, always counted
            self._waiting.pop(nonce, None)
            self.errors += 1
            log.warning("directory: write failed (%s)", type(e).__name__)
            raise DirectoryStoreDown(f"the directory store (Redis) did not answer ({type(e).__name__}); nothing was changed, retry") from e

    async def _echo(self, nonce: str, apply: Callable[[], object]) -> None:
        """Wait for the subscriber to apply this write's message; past ``echo_wait_s`` apply it here."""
        _, waiter = self._waiting[nonce]
        try:
            await asyncio.wait_for(waiter, self.echo_wait_s)
        except TimeoutError:
            apply()  # the subscriber is behind or reconnecting: the message reapplies it
        finally:
            self._waiting.pop(nonce, None)

    # -- the request path --------------------------------------------------------------------
    async def account_for_key(self, key: str) -> str | None:
        """The key's account: from memory, else (a gateway-shaped key) from Redis once."""
        found = self.directory.account_for_key(key)
        if found is not None or not self.lookup_misses or not (key.startswith(KEY_PREFIX) and len(key) == KEY_LENGTH):
            return found
        sha = hash_key(key)
        now = time.monotonic()
        if self._misses.get(sha, 0.0) > now:
            return None
        if self._in_flight >= self.max_lookups_in_flight:
            self.lookups_skipped += 1
            return None
        generation = self._generation
        self._in_flight += 1
        try:
            reply = await self._lookup(keys=[self.keys_hash, self.accounts_hash], args=[sha])
        except Exception as e:  # Redis down: an unknown key stays unknown (401)
            self.errors += 1
            log.warning("directory: key lookup failed (%s)", type(e).__name__)
            reply = None
        finally:
            self._in_flight -= 1
        self.lookups += 1
        if not reply:
            if len(self._misses) >= 100_000:
                self._misses.clear()
            self._misses[sha] = now + self.miss_ttl_s
            return None
        account_id, row = str(reply[0]), reply[1] if len(reply) > 1 else None
        # Cache only if no message was applied meanwhile: one could be this key's revocation.
        if generation == self._generation:
            if row:
                self.directory.upsert(Account.from_row(orjson.loads(row)))
            self.directory.keys[sha] = account_id
        return account_id

    # -- the subscriber thread ---------------------------------------------------------------
    def _listen(self) -> None:
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._client.pubsub()
                pubsub.subscribe(self.channel)
                deadline = time.monotonic() + 5.0
                while (msg := pubsub.get_message(timeout=0.5)) is None or msg["type"] != "subscribe":
                    if time.monotonic() > deadline:
                        raise TimeoutError("no subscribe confirmation")
                self._load()
                self._loaded.set()
                while not self._stop.is_set():
                    msg = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                    if msg is not None:
                        self._on_message(msg["data"])
            except Exception as e:  # reconnect after a pause; the load on resubscribing fills the gap
                self.errors += 1
                log.warning("directory: subscriber error (%s); reconnecting", type(e).__name__)
                self._loaded.set()
                self._stop.wait(1.0)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()

    def _load(self) -> None:
        """Everything in Redis into the copy. Keys known only here (settings, a Redis that came
        back empty) stay; tombstones remove revoked ones."""
        accounts = [orjson.loads(row) for _, row in self._client.hscan_iter(self.accounts_hash, count=1000)]
        keys = dict(self._client.hscan_iter(self.keys_hash, count=1000))
        revoked = [sha for sha, _ in self._client.hscan_iter(self.revoked_hash, count=1000)]
        for row in accounts:
            self.directory.upsert(Account.from_row(row))
        self.directory.keys.update(keys)
        for sha in revoked:
            if sha not in keys:
                self.directory.keys.pop(sha, None)
        self._generation += 1
        self.loads += 1
        log.info("directory: loaded %d accounts, %d keys, %d revoked from Redis", len(accounts), len(keys), len(revoked))

    def _on_message(self, data: str) -> None:
        try:
            body = orjson.loads(data)
            op = body["op"]
            if op == "account":
                self.directory.upsert(Account.from_row(body["row"]))
            elif op == "key":
                self.directory.keys[str(body["sha"])] = str(body["account_id"])
            elif op == "revoke":
                self.directory.keys.pop(str(body["sha"]), None)
            else:
                raise ValueError(f"unknown op {op!r}")
        except (ValueError, KeyError, TypeError) as e:  # not ours, or malformed: skip it
            self.errors += 1
            log.warning("directory: bad message on %s skipped (%s)", self.channel, e)
            return
        self._generation += 1
        self.received += 1
        waiting = self._waiting.get(str(body.get("nonce")))
        if waiting is not None:
            loop, waiter = waiting
            with contextlib.suppress(RuntimeError):  # its loop has closed
                loop.call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
