"""The signed-in staff member, cached in Redis: what every request needs to know about its caller, without a query.

A `StaffCard` holds the staff row's columns, the sub-union's name and the roles, read once and kept under
`principal:<staff id>`. A request whose token names that staff member reads the card (one round trip to Redis)
and checks the token's `auth_version` against it, so a revoked token is refused exactly as before.

Keeping it right is the unit of work's business, not each service's: any write to a staff row, a role or a
sub-union — ORM or Core — marks the cards it touches, and

- **at the flush**, before the commit, each touched card is dropped and the writer's own *pending* mark put on its
  key: while a change is on its way to the database nobody may store a card for that person (a reader of the old
  row cannot put it back), and each writer lifts only its own mark, so overlapping changes keep each other's;
- **after the commit** (or the rollback), the writer's mark is lifted with a fresh generation and caching resumes.
  A card is stored only if the generation it saw before reading the database is still the one in Redis and no
  mark is pending (a Lua compare-and-set).

So a request that starts after the commit either finds no card (and reads the committed row) or a card stored
from a read that began after the change was marked. A write that touches staff in bulk (a Core UPDATE, a
sub-union renamed) marks every card at once through a single `epoch` key. A pending mark expires after
`PENDING_SECONDS`, so a process that died between flush and commit stops caching only for a while; a card expires
after `CARD_SECONDS` whatever happens. When Redis cannot be reached, authentication reads the database as before,
and a write fails (its unit of work rolls back) rather than leave a card that no longer holds.
"""

from __future__ import annotations

import logging
import pickle
import secrets
import time
from dataclasses import dataclass, field
from datetime import date
from typing import Iterable

from flask import has_app_context
from redis.exceptions import RedisError
from sqlalchemy import bindparam, event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session

from app.extensions import (
    ScriptCall, db, get_redis, keep_prefetched, lua_script, redis_key, run_scripts, unpickled_once,
)
from models import BirthdayCalendar, Gender, Role, RoleAssignment, Staff, StaffStatus, SubUnion

log = logging.getLogger(__name__)

CARD_VERSION = "v1"            # bump with any change to StaffCard: older cards are then never read
CARD_SECONDS = 1800            # a card read again at least this often, whatever happens to Redis writes
PENDING_SECONDS = 900           # longer than any unit of work that writes staff (a 100,000-row import included)
CARDED_TABLES = frozenset({Staff.__tablename__, RoleAssignment.__tablename__, SubUnion.__tablename__})
CHANGED = "principals.changed"   # session.info: what this transaction has marked (_Marks)


@dataclass(frozen=True)
class RoleCard:
    role: Role
    sub_union_id: int | None
    term_id: int | None
    department_id: int | None


@dataclass(frozen=True)
class SubUnionName:
    name: str


@dataclass(frozen=True)
class StaffCard:
    """A staff member as policy and the profile read them (the same attribute names as `Staff`), detached from any
    session. Services that write, or need a relationship, load the row (`g.staff`)."""

    id: int
    employee_no: str
    name: str
    gender: Gender | None
    birthday: date | None
    birthday_calendar: BirthdayCalendar
    department: str
    department_id: int | None
    sub_union_id: int | None
    sub_union: SubUnionName | None
    phone: str | None
    status: StaffStatus
    member_since: date | None
    died_on: date | None
    auth_version: int
    roles: tuple[RoleCard, ...]
    epoch: bytes = b""


def staff_card(staff_id: int, also: ScriptCall | None = None) -> StaffCard | None:
    """The card of that staff member: from Redis when one is there and current, else from the database (and then
    stored for the next request, unless a change came in between). None when there is no such staff member.
    `also`: a lookup the request will need, made in the same round trip (app.extensions.prefetched)."""
    try:
        card, seen = _cached(staff_id, also)
    except RedisError as exc:
        log.warning("principal cache unavailable (%s); reading the staff row", type(exc).__name__)
        return _load(staff_id, b"")
    if card is not None:
        return card
    card = _load(staff_id, seen[1])
    if card is not None:
        _store(card, seen)
    return card


_LOOKUP = """
local found = redis.call('HMGET', KEYS[1], 'card', 'gen')
return {found[1], found[2], redis.call('GET', KEYS[2])}
"""


def _cached(staff_id: int, also: ScriptCall | None = None) -> tuple[StaffCard | None, tuple[bytes, bytes]]:
    lookup = ScriptCall(_LOOKUP, (_key(staff_id), _epoch_key()))
    (raw, gen, epoch), *more = run_scripts([lookup, also] if also else [lookup])
    if also:
        keep_prefetched(also, more[0])
    seen = (gen or b"", epoch or b"")
    if raw is not None:
        card = unpickled_once(raw)     # another version's card is not a StaffCard
        if isinstance(card, StaffCard) and card.epoch == seen[1]:
            return card, seen
    return None, seen


_CARD_COLUMNS = (Staff.id, Staff.employee_no, Staff.name, Staff.gender, Staff.birthday, Staff.birthday_calendar,
                 Staff.department, Staff.department_id, Staff.sub_union_id, Staff.phone, Staff.status,
                 Staff.member_since, Staff.died_on, Staff.auth_version)
_ROLE_COLUMNS = (RoleAssignment.role, RoleAssignment.sub_union_id, RoleAssignment.term_id, RoleAssignment.department_id)
# The staff row, its sub-union's name and one row per role, as plain Core (read on every card miss: a first request,
# or the first after any change; the ORM's entity loading cost more than the query).
_CARD_QUERY = (select(*_CARD_COLUMNS, SubUnion.name, *_ROLE_COLUMNS)
               .outerjoin(SubUnion, SubUnion.id == Staff.sub_union_id)
               .outerjoin(RoleAssignment, RoleAssignment.staff_id == Staff.id)
               .where(Staff.id == bindparam("staff_id")).order_by(RoleAssignment.id))


def _load(staff_id: int, epoch: bytes) -> StaffCard | None:
    rows = db.session.connection().execute(_CARD_QUERY, {"staff_id": staff_id}).all()
    if not rows:
        return None
    first = rows[0]
    columns = dict(zip((c.key for c in _CARD_COLUMNS), first))
    sub_union_name = first[len(_CARD_COLUMNS)]
    roles = tuple(RoleCard(*row[len(_CARD_COLUMNS) + 1:]) for row in rows if row[len(_CARD_COLUMNS) + 1] is not None)
    return StaffCard(**columns, sub_union=SubUnionName(sub_union_name) if sub_union_name is not None else None,
                     roles=roles, epoch=epoch)


# Refused when a change was marked since `seen` (generation or epoch moved), or while any writer's pending mark
# (a field p:<token> of the person's hash, or a member of the epoch's pending set) has not passed its deadline.
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
redis.call('HSET', KEYS[1], 'card', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


def _store(card: StaffCard, seen: tuple[bytes, bytes]) -> None:
    """Stores the card only if no change was marked since `seen` was read (else the card may hold the old row)."""
    try:
        lua_script(_STORE)(keys=[_key(card.id), _epoch_key(), _epoch_key("pending")],
                                 args=[seen[0], seen[1], pickle.dumps(card, protocol=pickle.HIGHEST_PROTOCOL),
                                       CARD_SECONDS])
    except RedisError as exc:
        log.warning("principal cache unavailable (%s); card not stored", type(exc).__name__)


# --- marking changes (called by the unit of work's session events, app.unit_of_work) ---------------------------

def mark_pending(token: str, staff_ids: Iterable[int], everyone: bool = False) -> None:
    """Before the commit: drop the cards and forbid storing them until this writer's `release` (each writer holds
    its own mark, so one writer's release never lifts another's). Raises when Redis fails, so the change is rolled
    back instead of committed behind a card that would outlive it."""
    deadline = int(time.time()) + PENDING_SECONDS
    pipe = get_redis().pipeline(transaction=True)
    if everyone:
        pipe.zadd(_epoch_key("pending"), {token: deadline})
        pipe.expire(_epoch_key("pending"), PENDING_SECONDS)
        pipe.set(_epoch_key(), secrets.token_hex(8))
    for staff_id in staff_ids:
        key = _key(staff_id)
        pipe.hset(key, mapping={f"p:{token}": deadline, "gen": secrets.token_hex(8)})
        pipe.hdel(key, "card")
        pipe.expire(key, CARD_SECONDS)
    pipe.execute()


def release(token: str, staff_ids: Iterable[int], everyone: bool = False) -> None:
    """After the commit or rollback: this writer's marks lifted and a new generation, so cards read from now on may
    be stored again. A failure is only logged: the marks pass their deadline by themselves, and until then the
    staff row is read."""
    pipe = get_redis().pipeline(transaction=True)
    if everyone:
        pipe.zrem(_epoch_key("pending"), token)
        pipe.set(_epoch_key(), secrets.token_hex(8))
    for staff_id in staff_ids:
        key = _key(staff_id)
        pipe.hdel(key, f"p:{token}", "card")
        pipe.hset(key, "gen", secrets.token_hex(8))
        pipe.expire(key, CARD_SECONDS)
    try:
        pipe.execute()
    except RedisError as exc:
        log.warning("principal cache: could not release marks (%s); they lapse in %ss", type(exc).__name__,
                    PENDING_SECONDS)


def _key(staff_id: int) -> str:
    return redis_key("principal", CARD_VERSION, staff_id)


def _epoch_key(*suffix: str) -> str:
    return redis_key("principal", CARD_VERSION, "epoch", *suffix)


# --- the unit of work's session events -------------------------------------------------------------------------

@event.listens_for(Session, "after_flush")
def _mark_flushed(session: Session, _context) -> None:
    touched: set[int] = set()
    everyone = False
    for obj in (*session.new, *session.dirty, *session.deleted):    # as flushed: history is still there
        if isinstance(obj, Staff) and obj not in session.new and (
                obj in session.deleted or session.is_modified(obj, include_collections=False)):
            touched.add(obj.id)
        elif isinstance(obj, RoleAssignment):
            touched.update(i for i in (obj.staff_id, *inspect(obj).attrs.staff_id.history.deleted) if i)
        elif isinstance(obj, SubUnion) and obj not in session.new and (
                obj in session.deleted or session.is_modified(obj, include_collections=False)):
            everyone = True                      # a renamed sub-union: every member's card shows the name
    _mark(session, touched, everyone)


@event.listens_for(Session, "do_orm_execute")
def _mark_bulk_write(state: ORMExecuteState) -> None:
    """A Core INSERT, UPDATE or DELETE of staff, roles or sub-unions may touch anyone: every card is marked."""
    if state.is_select or not has_app_context():
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in CARDED_TABLES and not (state.is_insert and table.name != "role_assignments"):
        _mark(state.session, set(), everyone=True)


@event.listens_for(Session, "after_transaction_end")
def _release_marks(session: Session, transaction) -> None:
    if transaction.parent is None and CHANGED in session.info and has_app_context():
        marks = session.info.pop(CHANGED)
        release(marks.token, marks.staff_ids, marks.everyone)


@dataclass
class _Marks:
    """What one transaction has marked, under one token of its own."""

    token: str = field(default_factory=lambda: secrets.token_hex(8))
    staff_ids: set[int] = field(default_factory=set)
    everyone: bool = False


def _mark(session: Session, staff_ids: set[int], everyone: bool = False) -> None:
    if not (staff_ids or everyone) or not has_app_context():
        return
    marks = session.info.setdefault(CHANGED, _Marks())
    new = staff_ids - marks.staff_ids
    everyone_now = everyone and not marks.everyone
    if new or everyone_now:
        marks.staff_ids |= new                   # before Redis: a reply lost after EXEC is still released
        marks.everyone |= everyone_now
        mark_pending(marks.token, new, everyone_now)
