"""Announcements and information disclosure (公告 / 信息公开): drafts, attachments and who read what."""

from __future__ import annotations

import enum
from datetime import datetime
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, TargetsAudience, audience_links_table, str_enum, utcnow


class AnnouncementCategory(enum.Enum):
    NOTICE = "notice"          # 通知
    ACTIVITY = "activity"      # 活动
    WELFARE = "welfare"        # 福利
    DISCLOSURE = "disclosure"  # 公示


class AnnouncementStatus(enum.Enum):
    DRAFT = "draft"
    PUBLISHED = "published"
    WITHDRAWN = "withdrawn"


class Announcement(TargetsAudience, Base):
    __tablename__ = "announcements"
    sub_union_links = audience_links_table("announcement_sub_unions", "announcements")
    # The audience columns ride in the listing index (PostgreSQL INCLUDE) so "what may I see" is index-only.
    __table_args__ = (Index("ix_announcements_listing", "status", "pinned", "published_at",
                            postgresql_include=["audience_status_mask", "audience_gender_mask",
                                                "audience_role_mask", "audience_sub_unions"]),)
    _repr_fields = ("id", "title", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100), default="")
    body: Mapped[str] = mapped_column(Text, default="")
    category: Mapped[AnnouncementCategory] = mapped_column(str_enum(AnnouncementCategory),
                                                           default=AnnouncementCategory.NOTICE)
    pinned: Mapped[bool] = mapped_column(default=False)
    status: Mapped[AnnouncementStatus] = mapped_column(str_enum(AnnouncementStatus),
                                                       default=AnnouncementStatus.DRAFT)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    published_at: Mapped[datetime | None]
    disclosure_ends_at: Mapped[datetime | None]       # 公示期截止
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    attachments: Mapped[list[AnnouncementAttachment]] = relationship(
        back_populates="announcement", cascade="all, delete-orphan", order_by="AnnouncementAttachment.id")


class AnnouncementAttachment(Base):
    """An image or PDF, kept in the storage directory (never a public path) and served with access checks."""

    __tablename__ = "announcement_attachments"
    _repr_fields = ("id", "announcement_id", "filename")

    id: Mapped[int] = mapped_column(primary_key=True)
    announcement_id: Mapped[int] = mapped_column(ForeignKey("announcements.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    storage_key: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    announcement: Mapped[Announcement] = relationship(back_populates="attachments")


class AnnouncementRead(Base):
    __tablename__ = "announcement_reads"
    __table_args__ = (UniqueConstraint("announcement_id", "staff_id"),
                      Index("ix_announcement_reads_staff", "staff_id", "announcement_id"))
    _repr_fields = ("announcement_id", "staff_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    announcement_id: Mapped[int] = mapped_column(ForeignKey("announcements.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    read_at: Mapped[datetime] = mapped_column(default=utcnow)
