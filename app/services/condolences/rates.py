"""Condolence types and their rates. The first rates come from [condolences] in the config, copied only into an
empty table; then an admin changes them (API or CLI), each change a new version from a given day. A request keeps
the version in force on the day of its event."""

from __future__ import annotations

from datetime import date

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import Conflict, Invalid, NotFound
from app.extensions import db
from app.services import audit, policy
from app.validation import labelled, whole
from models import CondolenceRate, CondolenceSubject, CondolenceType, MemberCategory, Staff, StaffStatus

CATEGORY_LABELS = {MemberCategory.ACTIVE: "在职", MemberCategory.RETIRED: "退休"}
SUBJECT_LABELS = {CondolenceSubject.SELF: "本人", CondolenceSubject.RELATIVE: "直系亲属"}
CategoryChoice = labelled(MemberCategory, CATEGORY_LABELS)
SubjectChoice = labelled(CondolenceSubject, SUBJECT_LABELS)
TYPE_NOT_FOUND = ("找不到该慰问类型", "condolence_type_not_found")
EARLIEST = date(2000, 1, 1)           # the seeded rates apply to every event


class RateFields(BaseModel):
    """One rate (money in fen, 分)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"type": "本人住院", "member_category": "在职", "amount_fen": 50000, "ceiling_fen": 100000,
         "times_per_year": 2, "effective_from": "2027-01-01"}]})
    type: str = Field(min_length=1, max_length=32, description="慰问类型名称，如 本人住院")
    member_category: CategoryChoice = Field(description="active 在职 / retired 退休")
    amount_fen: whole(ge=1, le=10_000_000) = Field(description="标准金额（分）")
    ceiling_fen: whole(ge=1, le=10_000_000) = Field(description="每次申请的上限（分）")
    times_per_year: whole(ge=1, le=100) = Field(description="每人每年次数（按事件日期的公历年）")
    effective_from: date = Field(description="自该日期（含）起发生的事件适用")

    @model_validator(mode="after")
    def _within_the_ceiling(self):
        if self.amount_fen > self.ceiling_fen:
            raise ValueError("标准金额不能超过每次申请的上限")
        return self


class TypeFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"name": "子女重大疾病", "label": "大病慰问", "subject": "relative"}]})
    name: str = Field(min_length=1, max_length=32, description="类型名称（只在申请本身中出现）")
    label: str = Field(min_length=1, max_length=32, description="公示等场合显示的名称，如 住院慰问")
    subject: SubjectChoice = Field(description="self 本人 / relative 直系亲属")
    never_disclosed: bool = Field(default=False, description="不在季度公示中出现")


def category_of(member: Staff) -> MemberCategory:
    if member.status is StaffStatus.RETIRED:
        return MemberCategory.RETIRED
    if member.status is StaffStatus.ACTIVE:
        return MemberCategory.ACTIVE
    raise Invalid("not_a_member", "已离职人员不在慰问范围内")


def ensure_seeded() -> None:
    """Copies the config's rates into empty tables (a second process seeding at the same moment loses quietly)."""
    if db.session.scalar(select(CondolenceType.id).limit(1)) is not None:
        return
    try:
        with db.session.begin_nested():
            for seed in current_app.config["SU"].condolences.rates:
                kind = CondolenceType(name=seed.name, label=seed.label, subject=CondolenceSubject(seed.subject))
                db.session.add(kind)
                db.session.flush()
                for category in MemberCategory:
                    amount, ceiling, times = getattr(seed, category.value)
                    db.session.add(CondolenceRate(type=kind, category=category, version=1, amount_fen=amount * 100,
                                                  ceiling_fen=ceiling * 100, times_per_year=times,
                                                  effective_from=EARLIEST))
    except IntegrityError:
        pass


def all_types() -> list[CondolenceType]:
    ensure_seeded()
    return list(db.session.scalars(select(CondolenceType).order_by(CondolenceType.id)))


def get_type(type_id: int) -> CondolenceType:
    ensure_seeded()
    kind = db.session.get(CondolenceType, type_id)
    if kind is None:
        raise NotFound(*TYPE_NOT_FOUND)
    return kind


def _type_named(name: str) -> CondolenceType:
    ensure_seeded()
    kind = db.session.scalar(select(CondolenceType).where(CondolenceType.name == name))
    if kind is None:
        raise NotFound(*TYPE_NOT_FOUND)
    return kind


def rate_in_force(kind: CondolenceType, category: MemberCategory, on: date) -> CondolenceRate:
    rate = db.session.scalar(select(CondolenceRate).where(
        CondolenceRate.type_id == kind.id, CondolenceRate.category == category, CondolenceRate.effective_from <= on)
        .order_by(CondolenceRate.effective_from.desc(), CondolenceRate.version.desc()).limit(1))
    if rate is None:
        raise Invalid("no_rate", f"“{kind.name}”没有适用于该日期的慰问标准，请联系校工会")
    return rate


def rates_in_force(on: date | None = None) -> list[CondolenceRate]:
    """Each type × category's rate in force on a day (today by default)."""
    on = on or clock.today()
    return [rate for kind in all_types() for category in MemberCategory
            for rate in _maybe(lambda: rate_in_force(kind, category, on))]


def _maybe(read):
    try:
        return [read()]
    except Invalid:
        return []


def rate_history() -> list[CondolenceRate]:
    ensure_seeded()
    return list(db.session.scalars(select(CondolenceRate).order_by(
        CondolenceRate.type_id, CondolenceRate.category, CondolenceRate.version)))


def set_rate(admin: Staff | None, fields: RateFields) -> CondolenceRate:
    """A new version of one type × category's rate (admins; the CLI passes no one)."""
    if admin is not None:
        policy.ensure_may_manage_rates(admin)
    kind = _type_named(fields.type)
    newest = db.session.scalar(select(func.max(CondolenceRate.version)).where(
        CondolenceRate.type_id == kind.id, CondolenceRate.category == fields.member_category)) or 0
    rate = CondolenceRate(type_id=kind.id, category=fields.member_category, version=newest + 1,
                          amount_fen=fields.amount_fen, ceiling_fen=fields.ceiling_fen,
                          times_per_year=fields.times_per_year, effective_from=fields.effective_from,
                          created_by_id=admin.id if admin else None)
    try:
        with db.session.begin_nested():
            db.session.add(rate)
    except IntegrityError:       # another version of the same rate was written at the same moment
        raise Conflict("rate_changed_meanwhile", "慰问标准刚被其他人修改，请刷新后再试") from None
    audit.record(admin, "condolence.rate", "condolence_rate", rate.id,
                 **fields.model_dump(mode="json"), version=rate.version)
    return rate


class TypeChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"never_disclosed": True}]})
    label: str | None = Field(default=None, min_length=1, max_length=32, description="公示等场合显示的名称")
    never_disclosed: bool | None = Field(default=None, description="不在季度公示中出现")


def change_type(admin: Staff | None, type_id: int, changes: TypeChanges) -> CondolenceType:
    """Its disclosure label, or whether the 公示 leaves it out (admins); its name and subject stay."""
    if admin is not None:
        policy.ensure_may_manage_rates(admin)
    kind = get_type(type_id)
    given = {name: value for name, value in changes.model_dump(exclude_none=True).items()}
    for name, value in given.items():
        setattr(kind, name, value)
    audit.record(admin, "condolence.type_change", "condolence_type", kind.id, **given)
    return kind


def add_type(admin: Staff | None, fields: TypeFields) -> CondolenceType:
    """A type the union adds; it can be filed once it has rates."""
    if admin is not None:
        policy.ensure_may_manage_rates(admin)
    ensure_seeded()
    kind = CondolenceType(created_by_id=admin.id if admin else None, **fields.model_dump())
    try:
        with db.session.begin_nested():
            db.session.add(kind)
    except IntegrityError:
        raise Conflict("type_exists", f"已有名为“{fields.name}”的慰问类型") from None
    audit.record(admin, "condolence.type", "condolence_type", kind.id,
                 **fields.model_dump(mode="json"))
    return kind
