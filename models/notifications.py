"""The outbox: notices (one per occasion), notifications (one per person: inbox entry and delivery state), and the
subscribe-message consents the mini-program collected."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, str_enum, utcnow


class NoticeStatus(enum.Enum):
    FANNING_OUT = "fanning_out"   # an audience notice whose per-person rows are still being written
    READY = "ready"               # every per-person row exists
    CANCELLED = "cancelled"


class DeliveryStatus(enum.Enum):
    PENDING = "pending"           # due at next_attempt_at
    SENDING = "sending"           # claimed by a sender until lease_until
    SENT = "sent"
    INBOX_ONLY = "inbox_only"     # no WeChat channel for this person: the in-app inbox alone
    SKIPPED = "skipped"           # deliberately not sent (reason in last_error)
    FAILED = "failed"             # gave up after max attempts or a permanent error
    UNKNOWN = "unknown"           # may or may not have reached WeChat (a crash mid-send); never resent
    CANCELLED = "cancelled"       # the occasion was withdrawn before sending


class Channel(enum.Enum):
    TEMPLATE = "template"         # official-account template message
    SUBSCRIBE = "subscribe"       # mini-program subscribe message
    INBOX = "inbox"


class Notice(Base):
    """One occasion: an announcement published, a signup confirmed, a birthday greeting of one year...
    `occasion` is unique, so one occasion can never produce two notices for one person."""

    __tablename__ = "notices"
    __table_args__ = (Index("ix_notices_status", "status"),)
    _repr_fields = ("id", "kind", "occasion")

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    occasion: Mapped[str] = mapped_column(String(128), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    page: Mapped[str | None] = mapped_column(String(255))
    audience: Mapped[dict[str, Any] | None] = mapped_column(JSON)    # set for fan-out notices
    status: Mapped[NoticeStatus] = mapped_column(str_enum(NoticeStatus), default=NoticeStatus.READY)
    fanout_cursor: Mapped[int] = mapped_column(default=0)            # highest staff id expanded so far
    send_after: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]
    request_id: Mapped[str | None] = mapped_column(String(64))   # the request or job run that wrote it (app.logs)


class Notification(Base):
    """A notice for one person: their inbox entry, and the state of its WeChat delivery."""

    __tablename__ = "notifications"
    __table_args__ = (
        UniqueConstraint("notice_id", "staff_id"),
        Index("ix_notifications_inbox", "staff_id", "notice_id"),
        Index("ix_notifications_due", "status", "next_attempt_at"),
    )
    _repr_fields = ("id", "notice_id", "staff_id", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)           # per-person values over the notice's
    read_at: Mapped[datetime | None]
    status: Mapped[DeliveryStatus] = mapped_column(str_enum(DeliveryStatus), default=DeliveryStatus.PENDING)
    channel: Mapped[Channel | None] = mapped_column(str_enum(Channel, 10))
    excluded_channels: Mapped[str] = mapped_column(String(32), default="")  # channels that said "not allowed"
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(255))
    # A template send that may have reached WeChat (a timeout, a sender that died): resending is safe only within
    # WeChat's 10-minute client_msg_id window counted from here.
    uncertain_since: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    notice: Mapped[Notice] = relationship(lazy="joined", innerjoin=True)


class SubscriptionConsent(Base):
    """How many subscribe messages of one template a person still allows: each "accept" in
    wx.requestSubscribeMessage allows one send, and WeChat has no API to ask, so we count."""

    __tablename__ = "subscription_consents"
    __table_args__ = (UniqueConstraint("staff_id", "template_id"),)
    _repr_fields = ("staff_id", "template_id", "remaining")

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    template_id: Mapped[str] = mapped_column(String(64))
    remaining: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
