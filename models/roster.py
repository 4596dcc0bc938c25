"""The roster: sub-unions, staff, their roles and their WeChat identities."""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, str_enum, utcnow


class SubUnionKind(enum.Enum):
    SUB_UNION = "sub_union"          # 分工会
    DIRECT_GROUP = "direct_group"    # 直属工会小组


class Gender(enum.Enum):
    MALE = "male"
    FEMALE = "female"


class StaffStatus(enum.Enum):
    ACTIVE = "active"     # 在职
    RETIRED = "retired"   # 退休
    LEFT = "left"         # 离职


class BirthdayCalendar(enum.Enum):
    SOLAR = "solar"
    LUNAR = "lunar"


class Role(enum.Enum):
    UNION_OFFICER = "union_officer"
    SUB_UNION_OFFICER = "sub_union_officer"
    ADMIN = "admin"
    REPRESENTATIVE = "representative"            # 教代会代表, for one congress term
    PROPOSAL_COMMITTEE = "proposal_committee"    # 提案工作委员会
    DEPARTMENT_LIAISON = "department_liaison"    # a department's 提案联络人, for one department


class WeChatApp(enum.Enum):
    MINI_PROGRAM = "mini"
    OFFICIAL_ACCOUNT = "mp"


class SubUnion(Base):
    __tablename__ = "sub_unions"
    _repr_fields = ("id", "name")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[SubUnionKind] = mapped_column(str_enum(SubUnionKind), default=SubUnionKind.SUB_UNION)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Staff(Base):
    __tablename__ = "staff"
    __table_args__ = (
        Index("ix_staff_sub_union_status", "sub_union_id", "status"),
        Index("ix_staff_birth_month_day", "birth_month", "birth_day"),
        Index("ix_staff_lunar_birth_month_day", "lunar_birth_month", "lunar_birth_day"),
    )
    _repr_fields = ("id", "employee_no", "name")

    id: Mapped[int] = mapped_column(primary_key=True)
    employee_no: Mapped[str] = mapped_column(String(32), unique=True)   # 工号: text, leading zeros kept
    name: Mapped[str] = mapped_column(String(64))
    gender: Mapped[Gender | None] = mapped_column(str_enum(Gender, 10))
    birthday: Mapped[date | None]
    birthday_calendar: Mapped[BirthdayCalendar] = mapped_column(
        str_enum(BirthdayCalendar, 10), default=BirthdayCalendar.SOLAR)
    # Derived from `birthday` whenever it changes, so the daily birthday job is an indexed lookup.
    birth_month: Mapped[int | None]
    birth_day: Mapped[int | None]
    lunar_birth_month: Mapped[int | None]
    lunar_birth_day: Mapped[int | None]
    department: Mapped[str] = mapped_column(String(128), default="")
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))   # the same, as a row
    sub_union_id: Mapped[int | None] = mapped_column(ForeignKey("sub_unions.id"))
    phone: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[StaffStatus] = mapped_column(str_enum(StaffStatus, 10), default=StaffStatus.ACTIVE)
    member_since: Mapped[date | None]
    died_on: Mapped[date | None]        # beside the status: no greeting, voucher or notice after it
    # Bumped whenever a change must end this person's sessions (unbind, roles, status): tokens carry it.
    auth_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    sub_union: Mapped[SubUnion | None] = relationship(lazy="joined")
    roles: Mapped[list[RoleAssignment]] = relationship(back_populates="staff",
                                                       cascade="all, delete-orphan")


class RoleAssignment(Base):
    """A role held by a staff member; `scope_key` is "all", "sub_union:<id>", "term:<id>" (a representative) or
    "department:<id>" (a liaison), so one unique key covers every scope."""

    __tablename__ = "role_assignments"
    __table_args__ = (UniqueConstraint("staff_id", "role", "scope_key"),)
    _repr_fields = ("id", "staff_id", "role", "scope_key")

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    role: Mapped[Role] = mapped_column(str_enum(Role, 32))
    sub_union_id: Mapped[int | None] = mapped_column(ForeignKey("sub_unions.id"))
    term_id: Mapped[int | None] = mapped_column(ForeignKey("congress_terms.id", ondelete="CASCADE"))
    department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"), index=True)
    scope_key: Mapped[str] = mapped_column(String(32))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[Staff] = relationship(back_populates="roles")


class WeChatIdentity(Base):
    """One WeChat user of one of our two apps. A staff member has at most one per app."""

    __tablename__ = "wechat_identities"
    __table_args__ = (
        UniqueConstraint("app", "openid"),
        UniqueConstraint("app", "staff_id"),
        Index("ix_wechat_identities_unionid", "unionid"),
    )
    _repr_fields = ("id", "app", "staff_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    app: Mapped[WeChatApp] = mapped_column(str_enum(WeChatApp, 8))
    openid: Mapped[str] = mapped_column(String(64))
    unionid: Mapped[str | None] = mapped_column(String(64))
    staff_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    following: Mapped[bool] = mapped_column(default=False)   # official account only
    bound_at: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[Staff | None] = relationship()


class BindCode(Base):
    """A one-time code an officer hands to staff who have no phone on the roster. Only its hash is kept."""

    __tablename__ = "bind_codes"
    _repr_fields = ("id", "staff_id", "expires_at")

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
