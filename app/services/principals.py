"""The signed-in staff member, cached in Redis: what every request needs to know about its caller, without a query.

A `StaffCard` holds the staff row's columns, the sub-union's name and the roles, read once and kept under
`principal:<staff id>`. A request whose token names that staff member reads the card (one round trip to Redis)
and checks the token's `auth_version` against it, so a revoked token is refused exactly as before.

Keeping it right is the unit of work's business (app.services.kept_records): any write to a staff row, a role or a
sub-union — ORM or Core — marks the cards it touches before its commit, and no card read before a change is
stored after it. A write that touches staff in bulk (a Core UPDATE, a sub-union renamed) marks every card at once.
When Redis cannot be reached, authentication reads the database as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from flask import has_app_context
from sqlalchemy import bindparam, event, inspect, select
from sqlalchemy.orm import ORMExecuteState, Session

from app.extensions import ScriptCall, db
from app.services.kept_records import KeptRecords
from models import BirthdayCalendar, Gender, Role, RoleAssignment, Staff, StaffStatus, SubUnion

CARD_VERSION = "v2"            # bump with any change to StaffCard: older cards are then never read
CARDS = KeptRecords("principal", CARD_VERSION)
CARDED_TABLES = frozenset({Staff.__tablename__, RoleAssignment.__tablename__, SubUnion.__tablename__})


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


def staff_card(staff_id: int, also: ScriptCall | None = None) -> StaffCard | None:
    """The card of that staff member: from Redis when one is there and current, else from the database (and then
    stored for the next request, unless a change came in between). None when there is no such staff member.
    `also`: a lookup the request will need, made in the same round trip (app.extensions.prefetched)."""
    return CARDS.get(staff_id, lambda: _load(staff_id), also)


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


def _load(staff_id: int) -> StaffCard | None:
    rows = db.session.connection().execute(_CARD_QUERY, {"staff_id": staff_id}).all()
    if not rows:
        return None
    first = rows[0]
    columns = dict(zip((c.key for c in _CARD_COLUMNS), first))
    sub_union_name = first[len(_CARD_COLUMNS)]
    roles = tuple(RoleCard(*row[len(_CARD_COLUMNS) + 1:]) for row in rows if row[len(_CARD_COLUMNS) + 1] is not None)
    return StaffCard(**columns, sub_union=SubUnionName(sub_union_name) if sub_union_name is not None else None,
                     roles=roles)


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
    CARDS.mark(session, touched, everyone)


@event.listens_for(Session, "do_orm_execute")
def _mark_bulk_write(state: ORMExecuteState) -> None:
    """A Core INSERT, UPDATE or DELETE of staff, roles or sub-unions may touch anyone: every card is marked."""
    if state.is_select or not has_app_context():
        return
    table = getattr(state.statement, "table", None)
    if getattr(table, "name", None) in CARDED_TABLES and not (state.is_insert and table.name != "role_assignments"):
        CARDS.mark(state.session, set(), everyone=True)
