"""Events (活动) with limited seats: the event, its places per sub-union (名额分配) and each person's signup.

Seats are counted on the locked rows themselves: `confirmed_count` and `waitlisted_count` of the event (and of
each `EventQuota` when places are allocated per sub-union) change only while a transaction holds the event row's
lock, and CHECK constraints refuse any write that would hand out more seats than there are.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TargetsAudience, audience_links_table, str_enum, utcnow
from models.roster import Staff, SubUnion


class EventCategory(enum.Enum):
    SPORTS = "sports"        # 体育
    CULTURE = "culture"      # 文化
    OUTDOOR = "outdoor"      # 户外
    OTHER = "other"          # 其他


class EventStatus(enum.Enum):
    DRAFT = "draft"            # 草稿：仅工作人员可见
    OPEN = "open"              # 已发布，报名窗口内可报名
    CLOSED = "closed"          # 工作人员提前截止报名
    CANCELLED = "cancelled"    # 活动取消
    FINISHED = "finished"      # 活动已结束


class SignupStatus(enum.Enum):
    CONFIRMED = "confirmed"      # 报名成功，占一个名额
    WAITLISTED = "waitlisted"    # 候补，按 sequence 顺序递补
    CANCELLED = "cancelled"      # 已取消（可在报名期内重新报名，排到队尾）


class Event(TargetsAudience, Base):
    __tablename__ = "events"
    sub_union_links = audience_links_table("event_sub_unions", "events")
    __table_args__ = (
        CheckConstraint("confirmed_count >= 0 AND confirmed_count <= capacity", name="seats_within_capacity"),
        CheckConstraint("waitlisted_count >= 0", name="waitlisted_count_not_negative"),
        Index("ix_events_status_starts_at", "status", "starts_at"),
    )
    _repr_fields = ("id", "title", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[EventCategory] = mapped_column(str_enum(EventCategory), default=EventCategory.OTHER)
    place: Mapped[str] = mapped_column(String(200), default="")
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    signup_opens_at: Mapped[datetime]
    signup_closes_at: Mapped[datetime]
    cancel_deadline: Mapped[datetime | None]          # None: until the event starts
    capacity: Mapped[int]                              # with places per sub-union: the sum of their places
    by_sub_union: Mapped[bool] = mapped_column(default=False)   # 名额按分工会分配 (event_quotas)
    waitlist_enabled: Mapped[bool] = mapped_column(default=True)
    questions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    status: Mapped[EventStatus] = mapped_column(str_enum(EventStatus), default=EventStatus.DRAFT)
    confirmed_count: Mapped[int] = mapped_column(default=0)    # changed only under the event row's lock
    waitlisted_count: Mapped[int] = mapped_column(default=0)   # likewise: a new waiter's place is this count
    last_sequence: Mapped[int] = mapped_column(default=0)      # the queue: each (re)signup takes the next number
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    published_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    quotas: Mapped[list[EventQuota]] = relationship(back_populates="event", cascade="all, delete-orphan",
                                                    order_by="EventQuota.sub_union_id")


class EventQuota(Base):
    """Places reserved for one sub-union's members (e.g. 4 per volleyball team): a seat pool of its own."""

    __tablename__ = "event_quotas"
    __table_args__ = (
        UniqueConstraint("event_id", "sub_union_id"),
        CheckConstraint("confirmed_count >= 0 AND confirmed_count <= places", name="seats_within_places"),
        CheckConstraint("waitlisted_count >= 0", name="waitlisted_count_not_negative"),
    )
    _repr_fields = ("event_id", "sub_union_id", "places", "confirmed_count")

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    sub_union_id: Mapped[int] = mapped_column(ForeignKey("sub_unions.id"))
    places: Mapped[int]
    confirmed_count: Mapped[int] = mapped_column(default=0)
    waitlisted_count: Mapped[int] = mapped_column(default=0)

    event: Mapped[Event] = relationship(back_populates="quotas")
    sub_union: Mapped[SubUnion] = relationship(lazy="selectin")


class Signup(Base):
    """One person's signup for one event: at most one row per (event, staff), re-used when they sign up again."""

    __tablename__ = "event_signups"
    __table_args__ = (
        UniqueConstraint("event_id", "staff_id"),
        UniqueConstraint("event_id", "sequence"),
        Index("ix_event_signups_queue", "event_id", "status", "sequence"),
        Index("ix_event_signups_staff", "staff_id", "event_id"),
    )
    _repr_fields = ("id", "event_id", "staff_id", "status", "sequence")

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("events.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    status: Mapped[SignupStatus] = mapped_column(str_enum(SignupStatus))
    sequence: Mapped[int]                              # place in the event's queue, in commit order
    pool_sub_union_id: Mapped[int | None] = mapped_column(ForeignKey("sub_unions.id"))   # quota pool, if any
    answers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    signed_up_at: Mapped[datetime] = mapped_column(default=utcnow)      # the latest (re)signup
    confirmed_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    checked_in_at: Mapped[datetime | None]
    signed_up_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))  # 代报名
    cancelled_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    checked_in_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    event: Mapped[Event] = relationship()
    staff: Mapped[Staff] = relationship(foreign_keys=[staff_id])
