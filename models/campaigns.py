"""Holiday gift campaigns: what the union gives for an occasion, and where and when to collect it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class GiftCampaign(Base):
    __tablename__ = "gift_campaigns"
    __table_args__ = (UniqueConstraint("occasion", "year"),)
    _repr_fields = ("id", "occasion", "year")

    id: Mapped[int] = mapped_column(primary_key=True)
    occasion: Mapped[str] = mapped_column(String(32))     # a holiday key, e.g. "mid_autumn"
    year: Mapped[int]
    gift: Mapped[str] = mapped_column(String(200))
    pickup_place: Mapped[str] = mapped_column(String(200))
    pickup_start: Mapped[datetime]
    pickup_end: Mapped[datetime]
    audience: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
