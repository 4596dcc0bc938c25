"""The roster: staff records, sub-unions, roles and WeChat bindings. Every change to them goes through here."""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import date, timedelta
from typing import Annotated

from flask import current_app
from pydantic import AfterValidator, BeforeValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select, update

from app import clock
from app.errors import Refusal, Conflict, NotFound
from app.validation import labelled, validate_model
from app.extensions import db
from app.services import audit, departments, policy, rate_limits, vouchers
from app.services.calendar import lunar_month_day
from models import (
    BindCode, BirthdayCalendar, CongressTerm, Department, Gender, Role, RoleAssignment, Staff, StaffStatus, SubUnion, WeChatApp,
    WeChatIdentity,
)

GENDER_LABELS = {Gender.MALE: "男", Gender.FEMALE: "女"}
STATUS_LABELS = {StaffStatus.ACTIVE: "在职", StaffStatus.RETIRED: "退休", StaffStatus.LEFT: "离职"}
ROLE_LABELS = {Role.UNION_OFFICER: "校工会干部", Role.SUB_UNION_OFFICER: "分工会干部", Role.ADMIN: "系统管理员",
               Role.REPRESENTATIVE: "教代会代表", Role.PROPOSAL_COMMITTEE: "提案工作委员会委员",
               Role.DEPARTMENT_LIAISON: "部门提案联络人"}
GenderChoice = labelled(Gender, GENDER_LABELS)
StatusChoice = labelled(StaffStatus, STATUS_LABELS)
RoleChoice = labelled(Role, ROLE_LABELS)
EMPLOYEE_NO_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z_-]{0,31}$"
PHONE_PATTERN = r"^1\d{10}$"


def normalize_phone(raw: str | None) -> str | None:
    """Keeps the 11 digits of a mainland mobile number: drops spaces, dashes and a +86/86 prefix."""
    if raw is None:
        return None
    digits = "".join(ch for ch in str(raw) if ch.isdigit())
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    return digits or None


def _phone_text(value: object) -> str | None:
    """Only null or "" clears a phone; anything but text or digits is refused (never read as "no phone")."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError("手机号应为 11 位大陆手机号码")
    return str(value)


def _valid_phone(raw: str | None) -> str | None:
    if raw is None:
        return None
    phone = normalize_phone(raw)
    if phone is None or not re.fullmatch(PHONE_PATTERN, phone):
        raise ValueError("手机号应为 11 位大陆手机号码")
    return phone


Phone = Annotated[str | None, BeforeValidator(_phone_text), AfterValidator(_valid_phone)]


def _not_in_the_future(value: date | None) -> date | None:
    if value is not None and value > clock.today():
        raise ValueError("日期不能晚于今天")
    return value


def _plausible_birthday(value: date | None) -> date | None:
    if value is not None and not date(1900, 1, 1) <= value <= clock.today():
        raise ValueError("出生日期应在 1900 年到今天之间")
    return value


class StaffFields(BaseModel):
    """What the roster keeps about a person (工号 aside). Used by the import, the CLI and the officer API."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=64)
    gender: GenderChoice | None = None
    birthday: Annotated[date | None, AfterValidator(_plausible_birthday)] = None
    birthday_calendar: BirthdayCalendar | None = None
    department: str = Field(default="", max_length=128)
    sub_union: str | None = Field(default=None, max_length=64, description="分工会名称；不存在时自动创建")
    phone: Phone = None
    status: StatusChoice = StaffStatus.ACTIVE
    member_since: date | None = None
    died_on: Annotated[date | None, AfterValidator(_not_in_the_future)] = Field(default=None, description="去世日期")


def scope_key(sub_union_id: int | None = None, term_id: int | None = None, department_id: int | None = None) -> str:
    for name, value in (("sub_union", sub_union_id), ("term", term_id), ("department", department_id)):
        if value is not None:
            return f"{name}:{value}"
    return "all"


def find_staff(employee_no: str) -> Staff | None:
    return db.session.scalar(select(Staff).where(Staff.employee_no == employee_no))


def get_staff(employee_no: str) -> Staff:
    staff = find_staff(employee_no)
    if staff is None:
        raise NotFound("找不到该工号的教职工", code="staff_not_found")
    return staff


def ensure_sub_union(name: str) -> tuple[SubUnion, bool]:
    """The sub-union of that name, created when missing; the flag says whether it was created."""
    sub_union = db.session.scalar(select(SubUnion).where(SubUnion.name == name))
    if sub_union:
        return sub_union, False
    sub_union = SubUnion(name=name)
    db.session.add(sub_union)
    db.session.flush()
    return sub_union, True


def upsert_staff(employee_no: str, fields: StaffFields, actor: Staff | None = None,
                 actor_label: str = "") -> tuple[Staff, bool]:
    """Creates or updates one staff member; returns (staff, changed). Unchanged records are not touched."""
    sub_union_id = ensure_sub_union(fields.sub_union)[0].id if fields.sub_union else None
    staff, changed = save_staff(find_staff(employee_no), employee_no, fields, sub_union_id, actor, actor_label)
    if changed:
        db.session.flush()
    return staff, changed


def create_staff(officer: Staff, employee_no: str, fields: StaffFields) -> Staff:
    """An officer adds one person to the roster (union officers only; HR imports add the rest)."""
    policy.ensure_union_officer(officer)
    if find_staff(employee_no):
        raise Conflict("staff_exists", "该工号已存在")
    return upsert_staff(employee_no, fields, actor=officer)[0]


def edit_staff(officer: Staff, employee_no: str, changes: dict) -> Staff:
    """An officer changes some fields of a person they manage; the rest stay as they are."""
    policy.ensure_may_edit_staff(officer, get_staff(employee_no), set(changes))
    return update_staff(employee_no, changes, actor=officer)[0]


def update_staff(employee_no: str, changes: dict, actor: Staff | None = None,
                 actor_label: str = "") -> tuple[Staff, bool]:
    """Creates or changes one staff member from the fields given (the rest stay as they are); returns (staff,
    changed). The officer API and the CLI come here; the HR import merges the same way (merged_fields)."""
    return upsert_staff(employee_no, merged_fields(find_staff(employee_no), changes), actor, actor_label)


def merged_fields(staff: Staff | None, changes: dict) -> StaffFields:
    """A staff member's fields with some changed, validated (a refusal names the field)."""
    current = staff_fields_of(staff).model_dump() if staff else {}
    return validate_model(StaffFields, {**current, **changes})


def save_staff(staff: Staff | None, employee_no: str, fields: StaffFields, sub_union_id: int | None,
               actor: Staff | None = None, actor_label: str = "") -> tuple[Staff, bool]:
    """Applies fields to a staff member already looked up (None: a new one) and audits the change; no flush,
    so bulk callers (the HR import) can write many at once."""
    created = staff is None
    if created:
        staff = Staff(employee_no=employee_no, auth_version=1)
        db.session.add(staff)
    changes = _apply_fields(staff, fields, sub_union_id)
    if not created and not changes:
        return staff, False
    if not created and (("status" in changes and staff.status is StaffStatus.LEFT) or
                        ("died_on" in changes and staff.died_on is not None)):
        _end_membership(staff, end_sessions="status" not in changes)    # a status change ended them already
    audit.record(actor, "staff.create" if created else "staff.update", "staff", employee_no,
                 actor_label=actor_label, fields=sorted(changes))
    return staff, True


def _apply_fields(staff: Staff, fields: StaffFields, sub_union_id: int | None) -> set[str]:
    wanted = fields.model_dump(exclude={"sub_union", "birthday_calendar"})
    wanted["sub_union_id"] = sub_union_id
    wanted["department"], wanted["department_id"] = departments.resolve(fields.department)
    if fields.birthday_calendar is not None:
        wanted["birthday_calendar"] = fields.birthday_calendar
    changed = {key for key, value in wanted.items() if getattr(staff, key) != value}
    if "status" in changed and staff.id is not None:
        staff.auth_version += 1   # a status change (above all 离职) ends every session at once
    for key in changed:
        setattr(staff, key, wanted[key])
    if "birthday" in changed:
        _derive_birth_fields(staff)
    return changed


def _end_membership(staff: Staff, end_sessions: bool = True) -> None:
    """Left (离职) or died: WeChat accounts released, sessions ended, unused vouchers void, nothing more sent."""
    for identity in db.session.scalars(select(WeChatIdentity).where(WeChatIdentity.staff_id == staff.id)):
        identity.staff_id, identity.bound_at = None, None
    if end_sessions:
        staff.auth_version += 1
    vouchers.void_unused(staff, "去世" if staff.died_on else "离职")


def _derive_birth_fields(staff: Staff) -> None:
    """Keeps the indexed month/day columns the daily birthday job looks up in step with `birthday`."""
    birthday = staff.birthday
    staff.birth_month, staff.birth_day = (birthday.month, birthday.day) if birthday else (None, None)
    staff.lunar_birth_month, staff.lunar_birth_day = lunar_month_day(birthday) if birthday else (None, None)


def set_status(staff: Staff, status: StaffStatus, actor: Staff | None = None, actor_label: str = "") -> None:
    if staff.status is status:
        return
    audit.record(actor, "staff.status", "staff", staff.employee_no, actor_label=actor_label,
                 old=staff.status.value, new=status.value)
    staff.status = status
    staff.auth_version += 1
    if status is StaffStatus.LEFT:
        _end_membership(staff, end_sessions=False)


def set_birthday_calendar(staff: Staff, calendar: BirthdayCalendar) -> None:
    staff.birthday_calendar = calendar


def change_role(officer: Staff, employee_no: str, role: Role, sub_union_id: int | None, grant: bool) -> bool:
    """An officer grants or revokes a role (app.services.policy says which)."""
    policy.ensure_may_change_role(officer, role)
    change = grant_role if grant else revoke_role
    return change(get_staff(employee_no), role, sub_union_id, actor=officer)


def grant_role(staff: Staff, role: Role, sub_union_id: int | None = None, actor: Staff | None = None,
               actor_label: str = "", *, term_id: int | None = None, department_id: int | None = None) -> bool:
    """Grants a role (idempotent); returns False when the staff member already held it."""
    scope = {"sub_union_id": sub_union_id, "term_id": term_id, "department_id": department_id}
    _check_role_scope(role, **scope)
    key = scope_key(**scope)
    if any(r.role is role and r.scope_key == key for r in staff.roles):
        return False
    staff.roles.append(RoleAssignment(role=role, scope_key=key, **scope))
    staff.auth_version += 1
    audit.record(actor, "role.grant", "staff", staff.employee_no, actor_label=actor_label,
                 role=role.value, scope=key)
    return True


def revoke_role(staff: Staff, role: Role, sub_union_id: int | None = None, actor: Staff | None = None,
                actor_label: str = "", *, term_id: int | None = None, department_id: int | None = None) -> bool:
    key = scope_key(sub_union_id, term_id, department_id)
    held = [r for r in staff.roles if r.role is role and r.scope_key == key]
    if not held:
        return False
    for assignment in held:
        staff.roles.remove(assignment)
    staff.auth_version += 1
    audit.record(actor, "role.revoke", "staff", staff.employee_no, actor_label=actor_label,
                 role=role.value, scope=key)
    return True


ROLE_SCOPES = {Role.SUB_UNION_OFFICER: ("sub_union_id", SubUnion, "分工会干部必须指定所在的分工会"),
               Role.REPRESENTATIVE: ("term_id", CongressTerm, "教代会代表必须指定届次"),
               Role.DEPARTMENT_LIAISON: ("department_id", Department, "部门提案联络人必须指定部门")}


def _check_role_scope(role: Role, **scope: int | None) -> None:
    """A role scoped to a sub-union, a congress term or a department names exactly that one; the others none."""
    wanted, model, message = ROLE_SCOPES.get(role, (None, None, ""))
    for name, value in scope.items():
        if name == wanted:
            if value is None or db.session.get(model, value) is None:
                raise Refusal("invalid_scope", message)
        elif value is not None:
            raise Refusal("invalid_scope", "该角色不区分分工会、届次或部门")


def mini_identity_of(staff: Staff) -> WeChatIdentity | None:
    return db.session.scalar(select(WeChatIdentity).where(
        WeChatIdentity.app == WeChatApp.MINI_PROGRAM, WeChatIdentity.staff_id == staff.id))


def unbind(staff: Staff, actor: Staff | None = None, actor_label: str = "") -> bool:
    """Releases the staff member's WeChat accounts (mini-program and official account) so another may bind;
    ends their sessions. The official-account follower stays a follower, but no longer speaks for them."""
    if actor is not None:
        policy.ensure_may_manage_staff(actor, staff)
    identities = db.session.scalars(select(WeChatIdentity).where(WeChatIdentity.staff_id == staff.id)).all()
    if not identities:
        return False
    for identity in identities:
        identity.staff_id = None
        identity.bound_at = None
    staff.auth_version += 1
    audit.record(actor, "staff.unbind", "staff", staff.employee_no, actor_label=actor_label,
                 apps=sorted(i.app.value for i in identities))
    return True


def _hash_bind_code(code: str) -> str:
    secret = current_app.config["SU"].app.secret_key
    return hashlib.sha256(f"{secret}:bind:{code}".encode()).hexdigest()


def issue_bind_code(staff: Staff, actor: Staff | None = None, actor_label: str = "") -> str:
    """A fresh one-time code (8 digits) for staff without a phone on the roster; older codes stop working, and so
    does the pause on guessing this person's code."""
    if actor is not None:
        policy.ensure_may_manage_staff(actor, staff)
        rate_limits.hit("bind_codes_per_officer", actor.id)
    rate_limits.clear("bind_code_failures_per_staff", staff.employee_no)
    if staff.status is StaffStatus.LEFT:
        raise Conflict("staff_left", "该教职工已离职，不能绑定")
    now = clock.now()
    db.session.execute(update(BindCode).where(BindCode.staff_id == staff.id, BindCode.used_at.is_(None))
                       .values(expires_at=now))
    code = f"{secrets.randbelow(10**8):08d}"
    ttl = current_app.config["SU"].auth.bind_code_ttl_seconds
    db.session.add(BindCode(staff_id=staff.id, code_hash=_hash_bind_code(code), expires_at=now + timedelta(seconds=ttl),
                            created_by_id=actor.id if actor else None))
    audit.record(actor, "staff.bind_code", "staff", staff.employee_no, actor_label=actor_label)
    return code


def consume_bind_code(staff: Staff, code: str) -> bool:
    """Uses the code exactly once: a conditional UPDATE, so two binds racing with one code cannot both win."""
    now = clock.now()
    result = db.session.execute(
        update(BindCode)
        .where(BindCode.staff_id == staff.id, BindCode.code_hash == _hash_bind_code(code),
               BindCode.used_at.is_(None), BindCode.expires_at > now)
        .values(used_at=now)
        .execution_options(synchronize_session=False))
    return result.rowcount == 1


def staff_fields_of(staff: Staff) -> StaffFields:
    return StaffFields(name=staff.name, gender=staff.gender, birthday=staff.birthday,
                       birthday_calendar=staff.birthday_calendar, department=staff.department,
                       sub_union=staff.sub_union.name if staff.sub_union else None, phone=staff.phone,
                       status=staff.status, member_since=staff.member_since, died_on=staff.died_on)


def list_staff(officer: Staff, search: str = "", sub_union_id: int | None = None,
               status: StaffStatus | None = None, page: int = 1, page_size: int = 20) -> tuple[list[Staff], int]:
    """A page of the roster within an officer's scope, with the total count."""
    from sqlalchemy import func, or_

    policy.ensure_officer(officer)
    stmt = select(Staff).where(policy.staff_condition(officer))
    if sub_union_id is not None:
        stmt = stmt.where(Staff.sub_union_id == sub_union_id)
    if status is not None:
        stmt = stmt.where(Staff.status == status)
    if search:
        stmt = stmt.where(or_(Staff.employee_no == search, Staff.name.contains(search, autoescape=True)))
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(stmt.order_by(Staff.employee_no).limit(page_size).offset((page - 1) * page_size))
    return list(rows.unique()), total


def list_sub_unions() -> list[SubUnion]:
    return list(db.session.scalars(select(SubUnion).order_by(SubUnion.name)))
