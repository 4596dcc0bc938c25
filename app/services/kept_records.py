"""Records read on every request, kept in Redis, that must never outlive a change to the rows they come from: the
signed-in staff member's card (app.services.principals) and a follower's link to a member (app.services.followers).

A `KeptRecords` keeps one value per item (a staff id, an openid) under `<name>:<version>:<item>`. Keeping it right is
the unit of work's business, not each service's: the area tells, from its session events, which items a flush
touches (`mark`), or that a Core statement may have touched any of them (`everyone`), and

- **at the flush**, before the commit, each touched value is dropped and the writer's own *pending* mark put on its
  key: while a change is on its way to the database nobody may store a value for that item (a reader of the old
  row cannot put it back), and each writer lifts only its own mark, so overlapping changes keep each other's;
- **after the commit** (or the rollback), the writer's mark is lifted with a fresh generation and keeping resumes.
  A value is stored only if the generation it saw before reading the database is still the one in Redis and no
  mark is pending (a Lua compare-and-set).

So a request that starts after the commit either finds no value (and reads the committed row) or one stored from a
read that began after the change was marked. A change that may touch every item marks them all at once through a
single `epoch` key. A pending mark expires after PENDING_SECONDS, so a process that died between flush and commit
stops keeping only for a while; a value expires after KEPT_SECONDS whatever happens. When Redis cannot be reached,
readers read the database, and a write fails (its unit of work rolls back) rather than leave a value that no
longer holds.
"""

from __future__ import annotations

import functools
import logging
import pickle
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from flask import has_app_context
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.extensions import (
    ScriptCall, db, get_redis, keep_prefetched, prefetched, redis_key, run_scripts, unpickled_once,
)

log = logging.getLogger(__name__)

KEPT_SECONDS = 1800            # a value read again at least this often, whatever happens to Redis writes
PENDING_SECONDS = 900          # longer than any unit of work that writes such rows (a 100,000-row import included)
Seen = tuple[bytes, bytes] | None     # the item's generation and the epoch, read before the database (None: keep not)

_LOOKUP = """
local found = redis.call('HMGET', KEYS[1], 'value', 'gen')
return {found[1], found[2], redis.call('GET', KEYS[2])}
"""

# The item's lookup as _LOOKUP, then the lookup of the item of another kind its value names (its `ref` field, kept
# beside the value): ARGV[1] is that kind's key without the item. (A key built in the script: fine on one Redis,
# not on a cluster.)
_LOOKUP_THROUGH = """
local found = redis.call('HMGET', KEYS[1], 'value', 'gen', 'ref')
local result = {found[1], found[2], redis.call('GET', KEYS[2]), found[3]}
if found[1] and found[3] then
  local other = redis.call('HMGET', ARGV[1] .. found[3], 'value', 'gen')
  result[5], result[6], result[7] = other[1], other[2], redis.call('GET', KEYS[3])
end
return result
"""

# Refused when a change was marked since `seen` (generation or epoch moved), or while any writer's pending mark
# (a field p:<token> of the item's hash, or a member of the epoch's pending set) has not passed its deadline.
_STORE = """
local now = tonumber(redis.call('TIME')[1])
if (redis.call('HGET', KEYS[1], 'gen') or '') ~= ARGV[1] or (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then
  return 0
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) > 0 then return 0 end
local fields = redis.call('HGETALL', KEYS[1])
for i = 1, #fields, 2 do
  if string.sub(fields[i], 1, 2) == 'p:' and tonumber(fields[i + 1]) > now then return 0 end
end
redis.call('HSET', KEYS[1], 'value', ARGV[3])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'ref', ARGV[5]) else redis.call('HDEL', KEYS[1], 'ref') end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

_KINDS: list[KeptRecords] = []


@functools.lru_cache(maxsize=8192)
def _lookup_call(base: str, item: object) -> ScriptCall:
    """Made several times per request (ahead, then when the value is needed): its keys built once per item."""
    return ScriptCall(_LOOKUP, (f"{base}:{item}", f"{base}:epoch"))


class KeptRecords:
    def __init__(self, name: str, version: str, ref_of: Callable[[Any], object | None] | None = None):
        self.name, self.version = name, version          # bump the version with any change to what is kept
        self.ref_of = ref_of                             # the item of another kind a value names (lookup_through)
        self.changed = f"{name}.changed"                 # session.info: what this transaction has marked (_Marks)
        _KINDS.append(self)

    def key(self, item: object) -> str:
        return redis_key(self.name, self.version, item)

    def epoch_key(self, *suffix: str) -> str:
        return redis_key(self.name, self.version, "epoch", *suffix)

    def lookup_call(self, item: object) -> ScriptCall:
        """The Redis read of the item: a request can make it ahead, in another lookup's round trip."""
        return _lookup_call(redis_key(self.name, self.version), item)

    def lookup_through(self, item: object, other: KeptRecords) -> ScriptCall:
        """The item's lookup and, when its kept value names an item of `other` (ref_of), that item's lookup too, in
        one script: a push reads the follower's link and the member's card in its claim's round trip. Each result is
        kept for its own lookup (app.extensions.keep_prefetched), and judged there like any other."""
        def unpack(result: list) -> list[tuple[ScriptCall, Any]]:
            pairs = [(self.lookup_call(item), result[:3])]
            if len(result) > 4:
                pairs.append((other.lookup_call(int(result[3])), result[4:7]))
            return pairs

        return ScriptCall(_LOOKUP_THROUGH, (self.key(item), self.epoch_key(), other.epoch_key()),
                          (other.key(""),), unpack=unpack)

    def cached(self, item: object, also: ScriptCall | None = None) -> tuple[Any | None, Seen]:
        """The kept value (None when there is none for the current epoch) and what was seen, to store a value read
        from the database afterwards (None when what this transaction reads may be older than that). Made ahead by
        the request when it was (prefetched); `also` goes in the same round trip. Raises RedisError."""
        lookup = self.lookup_call(item)
        found = prefetched(lookup)
        if found is None:
            found, *more = run_scripts([lookup, also] if also else [lookup])
            if also:
                keep_prefetched(also, more[0])
        raw, gen, epoch = found
        seen = (gen or b"", epoch or b"")
        kept = unpickled_once(raw) if raw is not None else None
        if isinstance(kept, tuple) and len(kept) == 2 and kept[0] == seen[1]:    # kept under the current epoch
            return kept[1], seen
        return None, None if snapshot_fixed() else seen      # as before the caller's read, which comes next

    def get(self, item: object, read: Callable[[], Any], also: ScriptCall | None = None) -> Any:
        """The item's kept value, else `read()` from the database (then kept, unless a change came in between; a
        None is never kept). With Redis down, `read()`. `also`: as for `cached`."""
        try:
            value, seen = self.cached(item, also)
        except RedisError as exc:
            log.warning("%s: Redis unavailable (%s); reading the database", self.name, type(exc).__name__)
            return read()
        if value is not None:
            return value
        value = read()
        if value is not None:
            self.store(item, value, seen)
        return value

    def store(self, item: object, value: Any, seen: Seen) -> None:
        """Keeps the value only if no change was marked since `seen` was read (else it may hold the old row)."""
        if seen is None:
            return
        try:
            ref = self.ref_of(value) if self.ref_of else None
            run_scripts([ScriptCall(_STORE, (self.key(item), self.epoch_key(), self.epoch_key("pending")),
                                    (seen[0], seen[1], pickle.dumps((seen[1], value), pickle.HIGHEST_PROTOCOL),
                                     KEPT_SECONDS, "" if ref is None else str(ref)))])
        except RedisError as exc:
            log.warning("%s: Redis unavailable (%s); value not kept", self.name, type(exc).__name__)

    def mark_pending(self, token: str, items: Iterable[object], everyone: bool = False) -> None:
        """Before the commit: drop the values and forbid storing them until this writer's `release` (each writer
        holds its own mark, so one writer's release never lifts another's). Raises when Redis fails, so the change
        is rolled back instead of committed behind a value that would outlive it."""
        deadline = int(time.time()) + PENDING_SECONDS
        pipe = get_redis().pipeline(transaction=True)
        if everyone:
            pipe.zadd(self.epoch_key("pending"), {token: deadline})
            pipe.expire(self.epoch_key("pending"), PENDING_SECONDS)
            pipe.set(self.epoch_key(), secrets.token_hex(8))
        for item in items:
            key = self.key(item)
            pipe.hset(key, mapping={f"p:{token}": deadline, "gen": secrets.token_hex(8)})
            pipe.hdel(key, "value", "ref")
            pipe.expire(key, KEPT_SECONDS)
        pipe.execute()

    def release(self, token: str, items: Iterable[object], everyone: bool = False) -> None:
        """After the commit or rollback: this writer's marks lifted and a new generation, so values read from now on
        may be stored again. A failure is only logged: the marks pass their deadline by themselves, and until then
        the rows are read."""
        pipe = get_redis().pipeline(transaction=True)
        if everyone:
            pipe.zrem(self.epoch_key("pending"), token)
            pipe.set(self.epoch_key(), secrets.token_hex(8))
        for item in items:
            key = self.key(item)
            pipe.hdel(key, f"p:{token}", "value", "ref")
            pipe.hset(key, "gen", secrets.token_hex(8))
            pipe.expire(key, KEPT_SECONDS)
        try:
            pipe.execute()
        except RedisError as exc:
            log.warning("%s: could not release marks (%s); they lapse in %ss", self.name, type(exc).__name__,
                        PENDING_SECONDS)

    def mark(self, session: Session, items: set, everyone: bool = False) -> None:
        """From the area's session events: these items (or every one) are changing in this transaction."""
        if not (items or everyone) or not has_app_context():
            return
        marks = session.info.setdefault(self.changed, _Marks())
        new = items - marks.items
        everyone_now = everyone and not marks.everyone
        if new or everyone_now:
            marks.items |= new                   # before Redis: a reply lost after EXEC is still released
            marks.everyone |= everyone_now
            self.mark_pending(marks.token, new, everyone_now)


def snapshot_fixed() -> bool:
    """Whether this transaction's reads may be older than what Redis says now: on MariaDB, REPEATABLE READ fixes the
    snapshot at the transaction's first read. (PostgreSQL's READ COMMITTED reads afresh at each statement; SQLite's
    writer lock keeps every other commit out.)"""
    if not db.scoped.registry.has():        # no session yet: nothing read (and none opened for this)
        return False
    session = db.session
    return session.in_transaction() and session.get_bind().dialect.name in ("mysql", "mariadb")


@dataclass
class _Marks:
    """What one transaction has marked of one kind of record, under one token of its own."""

    token: str = field(default_factory=lambda: secrets.token_hex(8))
    items: set = field(default_factory=set)
    everyone: bool = False


@event.listens_for(Session, "after_transaction_end")
def _release_marks(session: Session, transaction) -> None:
    if transaction.parent is None and has_app_context():
        for kind in _KINDS:
            marks = session.info.pop(kind.changed, None)
            if marks is not None:
                kind.release(marks.token, marks.items, marks.everyone)
