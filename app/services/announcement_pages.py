"""The announcement list's pages, kept in Redis per kind of member (app.services.audiences.member_kind).

Two members of one kind see exactly the same announcements, and a union of 100,000 has a few dozen kinds: when the
whole union opens the list after a holiday notice, each page is read from the database once per kind instead of
once per person. Each member's own `read` flags are read beside it, over the page's ids only.

Keeping it right follows the unit of work, as the staff cards do: any change to announcements (an ORM flush or a
Core statement) moves a generation once its transaction ends. A page is kept under the generation seen before it
was read and stored only if that generation is still current (a compare-and-set in Lua), so a page read before a
publication commits is never kept after it. Should moving the generation fail (Redis lost at that moment), a kind's
pages expire PAGE_SECONDS after the first was stored. With Redis down, the list is read from the database.
"""

from __future__ import annotations

import logging
import pickle
from typing import Any, Callable

from flask import has_app_context
from redis.exceptions import RedisError
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from app.extensions import get_redis, lua_script, redis_key
from models import Announcement

log = logging.getLogger(__name__)

PAGE_SECONDS = 300
CHANGED = "announcement_pages.changed"     # session.info: this transaction changed announcements

_READ = """
local gen = redis.call('GET', KEYS[1]) or '0'
if redis.call('HGET', KEYS[2], '_gen') ~= gen then return {gen, false} end
return {gen, redis.call('HGET', KEYS[2], ARGV[1])}
"""

# The kind's hash holds the pages of one generation; its life is set when that generation's first page is stored.
_STORE = """
local gen = redis.call('GET', KEYS[1]) or '0'
if gen ~= ARGV[1] then return 0 end
if redis.call('HGET', KEYS[2], '_gen') ~= gen then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[2], '_gen', gen)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1
"""


def cached(kind: tuple, page: str, read: Callable[[], Any]) -> Any:
    """What `read()` returns for this kind of member and page: from Redis when kept there for the current
    generation, else read from the database (and kept, unless announcements changed meanwhile)."""
    keys = [_generation_key(), _kind_key(kind)]
    try:
        generation, raw = lua_script(_READ)(keys=keys, args=[page])
    except RedisError as exc:
        log.warning("announcement pages unavailable (%s); reading the database", type(exc).__name__)
        return read()
    if raw is not None:
        return pickle.loads(raw)
    found = read()
    try:
        lua_script(_STORE)(keys=keys, args=[generation, page, pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL),
                                            PAGE_SECONDS])
    except RedisError as exc:
        log.warning("announcement pages unavailable (%s); page not kept", type(exc).__name__)
    return found


def forget_all() -> None:
    """Every kept page is read again: announcements changed."""
    try:
        get_redis().incr(_generation_key())
    except RedisError as exc:
        log.warning("announcement pages: could not move the generation (%s); pages expire within %ss",
                    type(exc).__name__, PAGE_SECONDS)


def _generation_key() -> str:
    return redis_key("announcement-pages", "generation")


def _kind_key(kind: tuple) -> str:
    return redis_key("announcement-pages", *kind)


# --- the unit of work's session events -------------------------------------------------------------------------

@event.listens_for(Session, "after_flush")
def _note_flushed(session: Session, _context) -> None:
    if any(isinstance(obj, Announcement) for obj in (*session.new, *session.dirty, *session.deleted)):
        session.info[CHANGED] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    table = getattr(state.statement, "table", None)
    if not state.is_select and getattr(table, "name", None) == Announcement.__tablename__:
        state.session.info[CHANGED] = True


@event.listens_for(Session, "after_transaction_end")
def _forget_changed(session: Session, transaction) -> None:
    if transaction.parent is None and session.info.pop(CHANGED, False) and has_app_context():
        forget_all()
