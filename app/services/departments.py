"""Departments (部门): rows made from the roster's 部门 column as staff are imported or edited, renamed only by an
officer. A rename keeps the old name as an alias, so a later import under the old name maps to the same department
and every proposal assignment and liaison keeps it."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, event, insert, or_, select, update
from sqlalchemy.orm import Session

from app import clock
from app.validation import line
from app.errors import Conflict, NotFound
from app.extensions import db
from app.services import audit, policy
from models import Department, DepartmentAlias, Staff

_CACHE = "department_ids"      # name -> id within one transaction (an import of thousands asks once per name)


@event.listens_for(Session, "after_soft_rollback")
def _forget_on_rollback(session: Session, previous_transaction) -> None:
    session.info.pop(_CACHE, None)      # a department created in the rolled-back transaction is gone


class RenameFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra={"examples": [{"name": "教务部"}]})
    name: line(1, 128) = Field(description="新名称（旧名称保留为别名）")


def resolve(name: str) -> tuple[str, int | None]:
    """The department a roster's 部门 text names: its current name and id, created when the name is new. Empty
    text is no department."""
    name = name.strip()
    if not name:
        return "", None
    cache = db.session.info.setdefault(_CACHE, {})
    if name not in cache:
        cache[name] = _find_or_create(name)
    return cache[name]


def resolve_all(names: set[str]) -> None:
    """Looks up many names at once (an import), creating the new ones: `resolve` then answers from memory."""
    cache = db.session.info.setdefault(_CACHE, {})
    wanted = {n.strip() for n in names} - {""} - set(cache)
    if not wanted:
        return
    with db.session.no_autoflush:
        cache.update(_known(wanted))
        new = {name.casefold(): name for name in sorted(wanted - set(cache))}    # "IT中心" and "it中心": one
        if new:
            db.session.execute(insert(Department), [{"name": name, "created_at": clock.now()}
                                                     for name in new.values()])
            cache.update(_known(wanted - set(cache)))
        for name in sorted(wanted - set(cache)):        # whatever the database's collation matched otherwise
            cache[name] = _find_or_create(name)


def _known(names: set[str]) -> dict[str, tuple[str, int]]:
    """The departments these names (or old names) belong to, in one query, by exact spelling and by case."""
    if not names:
        return {}
    rows = db.session.execute(select(Department.name, Department.id, DepartmentAlias.name.label("alias"))
                              .outerjoin(DepartmentAlias, DepartmentAlias.department_id == Department.id)
                              .where(or_(Department.name.in_(names), DepartmentAlias.name.in_(names)))).all()
    by_case = {known.casefold(): (name, department_id) for name, department_id, alias in rows
               for known in (name, alias) if known}
    return {name: by_case[name.casefold()] for name in names if name.casefold() in by_case}


def canonical_names(names: set[str]) -> dict[str, str]:
    """Each name as the department is called now (an old name gives the new one); unknown names stay as typed."""
    known = _known({n.strip() for n in names} - {""})
    return {name: known[name.strip()][0] if name.strip() in known else name.strip() for name in names}


def _find_or_create(name: str) -> tuple[str, int]:
    # Core statements without autoflush: the staff row asking is still being filled in.
    with db.session.no_autoflush:
        found = db.session.execute(select(Department.name, Department.id).where(Department.name == name)).first() \
            or db.session.execute(select(Department.name, Department.id).join(
                DepartmentAlias, DepartmentAlias.department_id == Department.id)
                .where(DepartmentAlias.name == name)).first()
        if found:
            return found.name, found.id
        created = db.session.execute(insert(Department).values(name=name, created_at=clock.now()))
        return name, created.inserted_primary_key[0]


def forget_cached() -> None:
    db.session.info.pop(_CACHE, None)


def all_departments() -> list[Department]:
    return list(db.session.scalars(select(Department).order_by(Department.name)))


def aliases_of(department_ids: list[int]) -> dict[int, list[str]]:
    rows = db.session.execute(select(DepartmentAlias.department_id, DepartmentAlias.name).where(
        DepartmentAlias.department_id.in_(department_ids)).order_by(DepartmentAlias.id)) if department_ids else []
    found: dict[int, list[str]] = {}
    for department_id, name in rows:
        found.setdefault(department_id, []).append(name)
    return found


def get_department(department_id: int) -> Department:
    department = db.session.get(Department, department_id)
    if department is None:
        raise NotFound("找不到该部门", code="department_not_found")
    return department


def rename(officer: Staff, department_id: int, fields: RenameFields) -> Department:
    """Old name → new: the old one becomes an alias, staff records show the new one, nothing else moves."""
    policy.ensure_manages_congress(officer)
    department = get_department(department_id)
    old, new = department.name, fields.name
    if new == old:
        return department
    taken = db.session.scalar(select(Department.id).where(Department.name == new, Department.id != department.id))
    other_alias = db.session.scalar(select(DepartmentAlias.department_id).where(
        DepartmentAlias.name == new, DepartmentAlias.department_id != department.id))
    if taken or other_alias:
        raise Conflict("department_name_taken", f"已有名为“{new}”的部门（或其曾用名），不能重名")
    db.session.execute(delete(DepartmentAlias).where(DepartmentAlias.department_id == department.id,
                                                     DepartmentAlias.name == new))
    department.name = new
    db.session.add(DepartmentAlias(department_id=department.id, name=old))
    db.session.execute(update(Staff).where(Staff.department_id == department.id).values(department=new)
                       .execution_options(synchronize_session=False))
    forget_cached()
    audit.record(officer, "department.rename", "department", department.id, old=old, new=new)
    return department
