"""The announcement list's pages, kept in Redis per kind of member (app.services.audiences.member_kind), and each
member's read flags for the pages they opened.

Two members of one kind see exactly the same announcements, and a union of 100,000 has a few dozen kinds: when the
whole union opens the list after a holiday notice, each page is read from the database once per kind instead of
once per person. A member's read flags (which of the page's announcements they opened) are kept beside it, so a
list shown again needs no query at all: one lookup in Redis brings the page and the flags, and the list's endpoint
makes it in the round trip that fetches the caller's card (`lookup_call`, app.extensions.prefetched).

Keeping it right follows the unit of work, as the staff cards do. Generations move once a transaction ends:
- the pages' generation, after any change to announcements (an ORM flush or a Core statement) or a Core statement
  on reads;
- a member's reads generation, after a read of theirs is recorded.
A value is kept under the generation seen before it was read, and stored only if that generation is still current
(a compare-and-set in Lua), so a page or flags read before a commit are never kept after it. Nothing is stored by a
transaction that changed announcements itself, or whose snapshot may be older than the generation it saw (MariaDB's
REPEATABLE READ fixes the snapshot at the transaction's first read). Should moving a generation fail (Redis lost at
that moment), what was kept expires KEPT_SECONDS after the generation's first store. With Redis down, the list is
read from the database. Only the first KEPT_PAGES pages are kept.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, Callable

from flask import has_app_context
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from app.extensions import (
    ScriptCall, db, get_redis, lua_script, prefetched, redis_key, run_scripts, unpickled_once,
)
from app.services.kept_records import snapshot_fixed
from models import Announcement, AnnouncementRead

log = logging.getLogger(__name__)

VERSION = "v2"                 # bump with any change to what is kept: older entries are then never read
KEPT_SECONDS = 300
KEPT_PAGES = 5
POINTER_SECONDS = 3600
CHANGED = "announcement_pages.changed"     # session.info: this transaction changed announcements
READERS = "announcement_pages.readers"     # session.info: staff whose reads this transaction recorded

# KEYS: pages' generation, the member's kind pointer, the member's reads generation, the member's hash; ARGV: the
# page. The pointer names the hash of the member's kind as last seen (a key named at run time: one Redis, not a
# cluster), so the lookup needs only the member's id and can ride with the card's (app.extensions.prefetched). Each
# hash holds the entries of one generation (field _gen); the flags' generation is the pages' and the reads'.
_LOOKUP = """
local pages_gen = redis.call('GET', KEYS[1]) or '0'
local flags_gen = pages_gen .. ':' .. (redis.call('GET', KEYS[3]) or '0')
local kind = redis.call('GET', KEYS[2])
local page, flags = false, false
if kind and redis.call('HGET', kind, '_gen') == pages_gen then page = redis.call('HGET', kind, ARGV[1]) end
if redis.call('HGET', KEYS[4], '_gen') == flags_gen then flags = redis.call('HGET', KEYS[4], ARGV[1]) end
return {pages_gen, kind, page, flags_gen, flags}
"""

# KEYS: the member's kind pointer, the kind's hash; ARGV: the pages' generation seen, the page, the seconds.
_POINT = """
redis.call('SET', KEYS[1], KEYS[2], 'EX', ARGV[3])
if redis.call('HGET', KEYS[2], '_gen') == ARGV[1] then return redis.call('HGET', KEYS[2], ARGV[2]) end
return false
"""

# KEYS: one or two generation keys, then the hash; ARGV: the generation seen, the field, the value, the seconds.
# A hash starting a new generation is emptied, and its life is set once, when that generation's first entry comes.
_STORE = """
local gen = redis.call('GET', KEYS[1]) or '0'
if #KEYS == 3 then gen = gen .. ':' .. (redis.call('GET', KEYS[2]) or '0') end
if gen ~= ARGV[1] then return 0 end
local hash = KEYS[#KEYS]
if redis.call('HGET', hash, '_gen') ~= gen then
  redis.call('DEL', hash)
  redis.call('HSET', hash, '_gen', gen)
  redis.call('EXPIRE', hash, ARGV[4])
end
redis.call('HSET', hash, ARGV[2], ARGV[3])
return 1
"""

Page = Any                       # what read_page returns: (rows, total, exact), rows' first column the id
Flags = Callable[[list[int]], frozenset[int]]     # read_flags: the ids among these the member has read


def page_for(kind: tuple, staff_id: int, page: int, page_size: int, read_page: Callable[[], Page],
             read_flags: Flags) -> tuple[Page, frozenset[int]]:
    """The page for this kind of member and the ids among it this member has read: from Redis when kept there
    for the current generations, else from `read_page` / `read_flags` (and then kept, unless a change came in)."""
    call, kind_key = lookup_call(staff_id, page, page_size), _kind_key(kind)
    if call is None:
        return _from_database(read_page, read_flags)
    stale = _may_be_stale()
    try:
        pages_gen, pointed, kept_page, flags_gen, kept_flags = prefetched(call) or run_scripts([call])[0]
        if pointed != kind_key.encode():            # first time, or the member's kind changed
            kept_page = lua_script(_POINT)(keys=[call.keys[1], kind_key], args=[pages_gen, call.args[0],
                                                                                POINTER_SECONDS])
    except RedisError as exc:
        log.warning("announcement pages unavailable (%s); reading the database", type(exc).__name__)
        return _from_database(read_page, read_flags)
    found = _loaded(kept_page)
    if found is None:
        found = read_page()
        if not stale:
            _keep([call.keys[0], kind_key], pages_gen, call.args[0], found)
    flags = _loaded(kept_flags)         # (kind, ids): read for a page of the member's kind as it was then
    if flags is None or flags[0] != kind:
        flags = (kind, read_flags(_ids(found)))
        if not stale:
            _keep([call.keys[0], *call.keys[2:]], flags_gen, call.args[0], flags)
    return found, flags[1]


def lookup_call(staff_id: int, page: int, page_size: int) -> ScriptCall | None:
    """The Redis lookup of that page for that member (the request can make it ahead, with its card's); None for a
    page that is never kept."""
    if not 1 <= page <= KEPT_PAGES:
        return None
    return ScriptCall(_LOOKUP, (_pages_generation(), _pointer_key(staff_id), _reads_generation(staff_id),
                                _reads_key(staff_id)), (f"{page}:{page_size}",))


def _from_database(read_page: Callable[[], Page], read_flags: Flags) -> tuple[Page, frozenset[int]]:
    found = read_page()
    return found, read_flags(_ids(found))


def _ids(found: Page) -> list[int]:
    return [row[0] for row in found[0]]


def _loaded(raw: bytes | None) -> Any:
    return None if raw is None else unpickled_once(raw)       # unreadable: None, so the database is read


def _keep(keys: list[str], generation: bytes, field: str, value: Any) -> None:
    try:
        lua_script(_STORE)(keys=keys, args=[generation, field, pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL),
                                            KEPT_SECONDS])
    except RedisError as exc:
        log.warning("announcement pages unavailable (%s); not kept", type(exc).__name__)


def _may_be_stale() -> bool:
    """Whether what this transaction is about to read may be older than the generations it is about to see: it
    changed announcements or reads itself (not yet committed), or its snapshot is fixed (kept_records)."""
    if not db.scoped.registry.has():        # no session yet: nothing read or changed (and none opened for this)
        return False
    session = db.session
    return bool(session.info.get(CHANGED) or session.info.get(READERS)) or snapshot_fixed()


def forget_all() -> None:
    """Every kept page and read flag is read again: announcements changed."""
    _move(_pages_generation())


def forget_reads(staff_ids: set[int]) -> None:
    """These members' read flags are read again: they opened an announcement."""
    for staff_id in staff_ids:
        _move(_reads_generation(staff_id))


def _move(generation_key: str) -> None:
    try:
        get_redis().incr(generation_key)
    except RedisError as exc:
        log.warning("announcement pages: could not move a generation (%s); entries expire within %ss",
                    type(exc).__name__, KEPT_SECONDS)


def _pages_generation() -> str:
    return redis_key("announcement-pages", VERSION, "generation")


def _kind_key(kind: tuple) -> str:
    return redis_key("announcement-pages", VERSION, "kind", *kind)


def _pointer_key(staff_id: int) -> str:
    return redis_key("announcement-pages", VERSION, "kind-of", staff_id)


def _reads_generation(staff_id: int) -> str:
    return redis_key("announcement-pages", VERSION, "reads-generation", staff_id)


def _reads_key(staff_id: int) -> str:
    return redis_key("announcement-pages", VERSION, "reads", staff_id)


# --- the unit of work's session events -------------------------------------------------------------------------

@event.listens_for(Session, "after_flush")
def _note_flushed(session: Session, _context) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        if isinstance(obj, Announcement):
            session.info[CHANGED] = True
        elif isinstance(obj, AnnouncementRead):
            session.info.setdefault(READERS, set()).add(obj.staff_id)


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    table = getattr(state.statement, "table", None)
    if not state.is_select and getattr(table, "name", None) in (Announcement.__tablename__,
                                                                 AnnouncementRead.__tablename__):
        state.session.info[CHANGED] = True


@event.listens_for(Session, "after_transaction_end")
def _forget_changed(session: Session, transaction) -> None:
    if transaction.parent is None and has_app_context():
        if session.info.pop(CHANGED, False):
            forget_all()
        forget_reads(session.info.pop(READERS, set()))
