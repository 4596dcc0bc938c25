"""Who may do what: roles and their scopes, in one place for every area."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.errors import Forbidden
from models import Role, Staff

if TYPE_CHECKING:
    from app.services.audiences import Audience

ALL = "all"


def scope_key(sub_union_id: int | None) -> str:
    return ALL if sub_union_id is None else f"sub_union:{sub_union_id}"


def has_role(staff: Staff, role: Role) -> bool:
    return any(r.role is role for r in staff.roles)


def is_union_officer(staff: Staff) -> bool:
    """Union-wide officers; an admin may do everything an officer may."""
    return has_role(staff, Role.UNION_OFFICER) or has_role(staff, Role.ADMIN)


def is_officer(staff: Staff) -> bool:
    return is_union_officer(staff) or has_role(staff, Role.SUB_UNION_OFFICER)


def officer_sub_unions(staff: Staff) -> set[int] | None:
    """The sub-unions an officer acts for: None means the whole union."""
    if is_union_officer(staff):
        return None
    return {r.sub_union_id for r in staff.roles if r.role is Role.SUB_UNION_OFFICER and r.sub_union_id}


def ensure_officer(staff: Staff) -> None:
    if not is_officer(staff):
        raise Forbidden("仅工会工作人员可以进行此操作", code="officer_only")


def ensure_union_officer(staff: Staff) -> None:
    if not is_union_officer(staff):
        raise Forbidden("仅校工会工作人员可以进行此操作", code="union_officer_only")


ROLE_RANK = {Role.SUB_UNION_OFFICER: 1, Role.UNION_OFFICER: 2, Role.ADMIN: 3}


def _rank(staff: Staff) -> int:
    return max((ROLE_RANK[r.role] for r in staff.roles), default=0)


def ensure_may_manage(officer: Staff, target: Staff) -> None:
    """An officer manages staff of their scope, but only those of a lower rank (admins manage everyone):
    otherwise a sub-union officer could unbind a union officer or an admin and take over their account."""
    ensure_covers_sub_union(officer, target.sub_union_id)
    if _rank(officer) < ROLE_RANK[Role.ADMIN] and _rank(target) >= _rank(officer):
        raise Forbidden("不能管理与您同级或更高权限的工会干部", code="higher_role")


def ensure_covers_sub_union(officer: Staff, sub_union_id: int | None) -> None:
    scope = officer_sub_unions(officer)
    if scope is not None and sub_union_id not in scope:
        raise Forbidden("超出您所在分工会的管理范围", code="out_of_scope")


def restrict_audience(officer: Staff, audience: "Audience") -> "Audience":
    """A sub-union officer addresses only their own sub-unions: an audience without sub-unions becomes theirs,
    one naming others is refused."""
    scope = officer_sub_unions(officer)
    if scope is None:
        return audience
    if not audience.sub_union_ids:
        return audience.model_copy(update={"sub_union_ids": sorted(scope)})
    if not set(audience.sub_union_ids) <= scope:
        raise Forbidden("只能向本分工会的会员发送", code="out_of_scope")
    return audience
