"""Analysts' decisions about accounts: an append-only JSON Lines log of who decided what, about
which accounts, why, when, and what stood before.

The dashboard (``distillguard ui``) appends to it; the gateway follows it and enforces the
latest ``block`` or ``allow`` of each account at the door, above the hunt's verdict (an analyst
who clears a false positive must win over the hunt that flagged it). The log is the audit trail
and the decisions at once: nothing is ever rewritten, so what the door enforces can always be
traced to a person and a reason.

Actions:

* ``block``: refuse the account's requests (reason code ``analyst_block``);
* ``allow``: serve it whatever the hunt or the live scorer says (``analyst_allow``); the
  gateway policy file's own overrides and blocklists still apply;
* ``appeal``: record that the account's holder contests its decision. It changes nothing at
  the door (a blocked account stays blocked until an analyst allows it); the appeal stays
  open until the next ``block`` or ``allow`` of that account, which resolves it.

A campaign-wide decision names the campaign and lists its members at the time of the decision,
so the door needs no campaign table and a later hunt that regroups accounts cannot widen it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

__all__ = ["ACTIONS", "LOG_NAME", "Decision", "ReviewFollower", "ReviewLog", "Standing", "standings"]

Action = Literal["block", "allow", "appeal"]
ACTIONS: tuple[Action, ...] = get_args(Action)
Scope = Literal["account", "campaign"]
# The log's name inside a hunt output folder: `serve --decisions DIR` follows DIR/LOG_NAME.
LOG_NAME = "analyst-decisions.jsonl"
MAX_REASON = 2000


@dataclass(frozen=True)
class Decision:
    """One line of the log."""

    id: str
    at: str  # ISO 8601, UTC, microseconds: lines of several logs order by it
    by: str
    reason: str
    action: Action
    scope: Scope
    target: str  # the account or the campaign
    accounts: tuple[str, ...]
    # each account's decision before this one: {"decision": ..., "source": "hunt" | "analyst", "id": ...}
    previous: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    hunt: str | None = None  # the hunt output the analyst was looking at

    def to_json(self) -> str:
        d = asdict(self)
        d["accounts"] = list(self.accounts)
        d["previous"] = {k: dict(v) for k, v in self.previous.items()}
        return json.dumps(d, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Decision:
        d = json.loads(line)
        if d.get("action") not in ACTIONS or d.get("scope") not in ("account", "campaign"):
            raise ValueError(f"action {d.get('action')!r} or scope {d.get('scope')!r} unknown")
        accounts = d.get("accounts")
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            raise ValueError("accounts: expected a list of account ids")
        return cls(
            id=str(d["id"]), at=str(d["at"]), by=str(d["by"]), reason=str(d["reason"]), action=d["action"], scope=d["scope"],
            target=str(d["target"]), accounts=tuple(accounts), previous=d.get("previous") or {}, hunt=d.get("hunt"),
        )  # fmt: skip


@dataclass(frozen=True)
class Standing:
    """Where one account stands after the log: the decision the door enforces and any open appeal."""

    decision: Decision | None  # the latest block or allow
    appeal: Decision | None  # an appeal made after it, not yet resolved

    @property
    def action(self) -> str | None:
        return self.decision.action if self.decision is not None else None


def standings(decisions: Iterable[Decision], into: dict[str, Standing] | None = None) -> dict[str, Standing]:
    """Each account's standing after ``decisions``, in order (added to ``into`` when given)."""
    out = into if into is not None else {}
    for d in decisions:
        for account in d.accounts:
            before = out.get(account, Standing(None, None))
            out[account] = Standing(before.decision, d) if d.action == "appeal" else Standing(d, None)
    return out


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


class ReviewLog:
    """The log file: append a decision (one write of one line, under an exclusive lock, synced)
    and read it back."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    def append(
        self, *, by: str, reason: str, action: str, scope: str, target: str, accounts: Sequence[str],
        previous: Mapping[str, Mapping[str, Any]] | None = None, hunt: str | None = None,
    ) -> Decision:  # fmt: skip
        by, reason = by.strip(), reason.strip()
        if not by:
            raise ValueError("who: a decision needs the name of the person who made it")
        if not reason:
            raise ValueError("reason: a decision needs a reason")
        if len(reason) > MAX_REASON:
            raise ValueError(f"reason: {len(reason)} characters, at most {MAX_REASON}")
        if action not in ACTIONS:
            raise ValueError(f"action has value {action!r}; expected one of {', '.join(ACTIONS)}")
        if scope not in ("account", "campaign"):
            raise ValueError(f"scope has value {scope!r}; expected account or campaign")
        if not accounts:
            raise ValueError(f"{scope} {target!r}: no accounts to decide on")
        d = Decision(
            id=f"d-{uuid.uuid4().hex[:12]}", at=_now(), by=by, reason=reason, action=action,  # type: ignore[arg-type]
            scope=scope, target=target, accounts=tuple(accounts), previous=dict(previous or {}), hunt=hunt,  # type: ignore[arg-type]
        )  # fmt: skip
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = (d.to_json() + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # two dashboards on one log never interleave lines
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        return d

    def read(self) -> list[Decision]:
        """Every decision in order; a line that cannot be read is skipped (see :class:`ReviewFollower`)."""
        return ReviewFollower([self.path], every_s=0.0).decisions()


class ReviewFollower:
    """Follows one or more logs as they grow: the gateway's view of the analysts' decisions.

    :meth:`get` costs a dictionary look-up, plus one ``stat`` of each log at most every
    ``every_s`` seconds; only the bytes appended since are read, so a decision reaches the
    door within ``every_s`` of being written. A log replaced by a new file or made shorter
    is read again from its start; a line not yet complete waits for its end; a line that is
    not a decision is counted in :attr:`errors` and skipped, never fatal.
    """

    def __init__(self, paths: Iterable[Path | str], *, every_s: float = 0.1) -> None:
        self.every_s = every_s
        self.errors = 0
        self._files = [_Followed(Path(p)) for p in paths]
        self._merged: dict[str, Standing] = {}
        self._next = 0.0
        self.refresh()

    def get(self, account_id: str) -> Standing | None:
        if time.monotonic() >= self._next:
            self.refresh()
        return self._merged.get(account_id)

    def standings(self) -> dict[str, Standing]:
        self.refresh()
        return dict(self._merged)

    def decisions(self) -> list[Decision]:
        self.refresh()
        return sorted((d for f in self._files for d in f.decisions), key=lambda d: d.at)

    def refresh(self) -> None:
        self._next = time.monotonic() + self.every_s
        changed = False
        for f in self._files:
            changed |= f.poll()
        self.errors = sum(f.errors for f in self._files)
        if not changed:
            return
        if len(self._files) == 1:
            self._merged = dict(self._files[0].standing)
            return
        merged: dict[str, Standing] = {}
        for f in self._files:  # several logs: the latest decision of an account wins
            for account, s in f.standing.items():
                have = merged.get(account)
                merged[account] = s if have is None or _last(s) >= _last(have) else have
        self._merged = merged


def _last(s: Standing) -> str:
    return max((d.at for d in (s.decision, s.appeal) if d is not None), default="")


class _Followed:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._reset(None)

    def _reset(self, inode: int | None) -> None:
        self.inode = inode
        self.offset = 0
        self.decisions: list[Decision] = []
        self.standing: dict[str, Standing] = {}
        self.errors = 0

    def poll(self) -> bool:
        """Read what was appended since the last poll; whether any standing may have changed."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if self.inode is None:
                return False
            self._reset(None)  # removed: nothing stands any more
            return True
        reset = st.st_ino != self.inode or st.st_size < self.offset
        if reset:  # a new file (replaced, or truncated): read it from its start
            reset = bool(self.decisions)
            self._reset(st.st_ino)
        if st.st_size == self.offset:
            return reset
        with self.path.open("rb") as fh:
            fh.seek(self.offset)
            chunk = fh.read(st.st_size - self.offset)
        end = chunk.rfind(b"\n") + 1  # complete lines only: a line being written waits for its end
        new = []
        for line in chunk[:end].splitlines():
            if not line.strip():
                continue
            try:
                new.append(Decision.from_json(line.decode()))
            except (ValueError, KeyError, TypeError, UnicodeDecodeError):
                self.errors += 1
        self.offset += end
        self.decisions.extend(new)
        standings(new, self.standing)
        return reset or bool(new)
