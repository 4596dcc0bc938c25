"""Audiences: who a notice, an event or an announcement is for, stored as criteria over the roster.

Every area that addresses people keeps an `Audience` (as JSON) and resolves it here, in one query.
Criteria combine with AND; each list is an OR over its values; an empty list means "no restriction".
Staff who have left (离职) or died are never in any audience.
"""

from __future__ import annotations

import functools

from typing import Iterable

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Table, and_, delete, exists, false, func, insert, or_, select
from sqlalchemy.sql.elements import ColumnElement

from app.errors import Invalid
from app.extensions import db
from app.validation import Id
from models import Gender, Role, RoleAssignment, Staff, StaffStatus, SubUnion

RECEIVING_STATUSES = (StaffStatus.ACTIVE, StaffStatus.RETIRED)


class Audience(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sub_union_ids: list[Id] = Field(
        default_factory=list, max_length=500, description="限定分工会（空表示全部）")
    statuses: list[StaffStatus] = Field(default_factory=list, description="在职 active / 退休 retired（空表示都包括）")
    genders: list[Gender] = Field(default_factory=list, description="性别（如三八节仅女职工）")
    roles: list[Role] = Field(default_factory=list, description="限定角色（如仅工会干部）")

    def describe(self) -> str:
        """A short Chinese label for officers' previews."""
        parts = []
        if self.sub_union_ids:
            parts.append(f"{len(self.sub_union_ids)} 个分工会")
        labels = {StaffStatus.ACTIVE: "在职", StaffStatus.RETIRED: "退休", Gender.FEMALE: "女职工", Gender.MALE: "男职工"}
        parts += [labels[s] for s in self.statuses if s in labels]
        parts += [labels[g] for g in self.genders]
        if self.roles:
            parts.append("工会干部")
        return "、".join(parts) or "全体会员"


def audience_condition(audience: Audience) -> ColumnElement[bool]:
    """The WHERE clause over `Staff` that selects exactly this audience."""
    conditions: list[ColumnElement[bool]] = [Staff.status.in_(_statuses(audience)), Staff.died_on.is_(None)]
    if audience.sub_union_ids:
        conditions.append(Staff.sub_union_id.in_(audience.sub_union_ids))
    if audience.genders:
        conditions.append(Staff.gender.in_(audience.genders))
    if audience.roles:
        conditions.append(exists().where(RoleAssignment.staff_id == Staff.id,
                                         RoleAssignment.role.in_(audience.roles)))
    return and_(*conditions)


def _statuses(audience: Audience) -> Iterable[StaffStatus]:
    return [s for s in (audience.statuses or RECEIVING_STATUSES) if s in RECEIVING_STATUSES]


def resolve_audience(audience: Audience) -> list[Staff]:
    """The staff in the audience, ordered by 工号, in one query."""
    stmt = select(Staff).where(audience_condition(audience)).order_by(Staff.employee_no)
    return list(db.session.scalars(stmt).unique())


def count_audience(audience: Audience) -> int:
    return db.session.scalar(select(func.count()).select_from(Staff).where(audience_condition(audience)))


def includes(audience: Audience, staff: Staff) -> bool:
    """Whether one staff member belongs to the audience, without a query (roles are loaded with staff)."""
    if staff.status not in _statuses(audience) or staff.died_on is not None:
        return False
    if audience.sub_union_ids and staff.sub_union_id not in audience.sub_union_ids:
        return False
    if audience.genders and staff.gender not in audience.genders:
        return False
    return not audience.roles or any(r.role in audience.roles for r in staff.roles)


# --- rows addressed to an audience (models.base.TargetsAudience) ----------------------------------------------

STATUS_BITS = {StaffStatus.ACTIVE: 1, StaffStatus.RETIRED: 2}
GENDER_BITS = {Gender.MALE: 1, Gender.FEMALE: 2}
ROLE_BITS = {Role.UNION_OFFICER: 1, Role.SUB_UNION_OFFICER: 2, Role.ADMIN: 4, Role.REPRESENTATIVE: 8,
             Role.PROPOSAL_COMMITTEE: 16, Role.DEPARTMENT_LIAISON: 32}


def address(record, audience: Audience) -> None:
    """Addresses a TargetsAudience row (already in the session) to an audience: its columns and its rows of
    sub-unions. Unknown sub-unions are refused."""
    check_sub_unions_exist(audience.sub_union_ids)
    for column, value in audience_columns(audience).items():
        setattr(record, column, value)
    db.session.flush()
    links = type(record).sub_union_links
    db.session.execute(delete(links).where(links.c.target_id == record.id))
    if audience.sub_union_ids:
        db.session.execute(insert(links), [{"target_id": record.id, "sub_union_id": i}
                                           for i in sorted(set(audience.sub_union_ids))])


def check_sub_unions_exist(ids: Iterable[int]) -> None:
    wanted = set(ids)
    known = set(db.session.scalars(select(SubUnion.id).where(SubUnion.id.in_(wanted)))) if wanted else set()
    missing = sorted(wanted - known)
    if missing:
        raise Invalid("unknown_sub_union", f"找不到分工会：{'、'.join(map(str, missing))}")


def audience_columns(audience: Audience) -> dict:
    """The TargetsAudience column values for an audience."""
    return {
        "audience": audience.model_dump(mode="json"),
        "audience_status_mask": sum(STATUS_BITS[s] for s in set(audience.statuses) if s in STATUS_BITS),
        "audience_gender_mask": sum(GENDER_BITS[g] for g in set(audience.genders)),
        "audience_role_mask": sum(ROLE_BITS[r] for r in set(audience.roles)),
        "audience_sub_unions": "".join(f",{i}" for i in sorted(set(audience.sub_union_ids))) + ","
        if audience.sub_union_ids else "",
    }


def visible_to(model, staff: Staff) -> ColumnElement[bool]:
    """WHERE clause: the rows of a TargetsAudience model whose audience includes this staff member."""
    return _visible_to(model, *member_kind(staff))


def visible_to_kind(model, kind: tuple[int, int, int, int | None]) -> ColumnElement[bool]:
    """The same clause for every member of one kind (member_kind)."""
    return _visible_to(model, *kind)


def member_kind(staff: Staff) -> tuple[int, int, int, int | None]:
    """All an audience looks at in a member: two members of one kind are in exactly the same audiences."""
    roles = frozenset(r.role for r in staff.roles)          # a role held in two scopes: once
    return (STATUS_BITS.get(staff.status, 0), GENDER_BITS.get(staff.gender, 0),
            sum(ROLE_BITS[role] for role in roles), staff.sub_union_id)


def built_per_kind(statement):
    """A Core statement built once per kind of member shares its compiled form with every other kind's (the kind's
    values are bound parameters). Its rows are read by position or by name, so SQLAlchemy is told not to map each
    kind's own column objects onto the cached result on every execution (the ORM turns that off the same way; it
    was 8 % of a signup)."""
    return statement.execution_options(_result_disable_adapt_to_context=True)


@functools.lru_cache(maxsize=4096)
def _visible_to(model, status_bit: int, gender_bit: int, role_bits: int,
                sub_union_id: int | None) -> ColumnElement[bool]:
    """Built once per kind of member (the clause depends on nothing else, and building it costs more than the
    query it goes into); the values in it are bound parameters, so every kind shares one compiled statement."""
    if not status_bit:
        return false()
    if isinstance(model, Table):        # a Core statement on the table itself (no ORM layer)
        model = model.c
    return and_(
        or_(model.audience_status_mask == 0, model.audience_status_mask.op("&")(status_bit) != 0),
        or_(model.audience_gender_mask == 0, model.audience_gender_mask.op("&")(gender_bit) != 0),
        or_(model.audience_role_mask == 0, model.audience_role_mask.op("&")(role_bits) != 0),
        or_(model.audience_sub_unions == "", model.audience_sub_unions.contains(f",{sub_union_id},")),
    )
