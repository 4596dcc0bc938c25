from __future__ import annotations

import enum
from datetime import datetime, timezone

from typing import Any, ClassVar

from sqlalchemy import JSON, Column, DateTime, Enum, ForeignKey, MetaData, Table, Text, TypeDecorator
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _system_clock() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


_clock = _system_clock


def use_clock(clock) -> None:
    """The app installs its clock (app.clock.now) here, so column defaults read the same time as the services."""
    global _clock
    _clock = clock


def utcnow() -> datetime:
    """The default of every timestamp column: the app's clock."""
    return _clock()


class UTCDateTime(TypeDecorator):
    """Stores naive UTC (portable across SQLite, PostgreSQL and MariaDB); always returns aware UTC."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=timezone.utc)


def str_enum(enum_cls: type[enum.Enum], length: int = 20) -> Enum:
    """An enum stored as its value in a VARCHAR: readable in SQL, no native ENUM type to migrate."""
    return Enum(enum_cls, native_enum=False, length=length, values_callable=lambda e: [m.value for m in e],
                validate_strings=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}

    _repr_fields: tuple[str, ...] = ("id",)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name, None)!r}" for name in self._repr_fields)
        return f"<{type(self).__name__} {fields}>"


class TargetsAudience:
    """Columns of a row addressed to an audience (announcements, events): the criteria as JSON, plus a form SQL
    can test a person against without parsing JSON (app.services.audiences.visible_to)."""

    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    audience_status_mask: Mapped[int] = mapped_column(default=0)     # 0 = every status that receives
    audience_gender_mask: Mapped[int] = mapped_column(default=0)     # 0 = both
    audience_role_mask: Mapped[int] = mapped_column(default=0)       # 0 = no role needed
    audience_sub_unions: Mapped[str] = mapped_column(Text, default="")   # ",3,5," or "" = all

    # The sub-unions the audience names, one row each (none: every sub-union): what the policy module asks when
    # it decides whether a record is addressed only to an officer's sub-unions (app.services.policy).
    sub_union_links: ClassVar[Table]


def audience_links_table(name: str, target_table: str) -> Table:
    """The join table of a TargetsAudience model: (target_id, sub_union_id), removed with its row."""
    return Table(name, Base.metadata,
                 Column("target_id", ForeignKey(f"{target_table}.id", ondelete="CASCADE"), primary_key=True),
                 Column("sub_union_id", ForeignKey("sub_unions.id", ondelete="CASCADE"), primary_key=True,
                        index=True))
