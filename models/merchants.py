"""The bakery and its cashiers (生日蛋糕券, part 2): a merchant with its shops, and the WeChat accounts bound to it as
cashiers. A cashier's token carries `auth_version`: revoking the cashier, or deactivating the merchant, ends it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, utcnow


class Merchant(Base):
    __tablename__ = "merchants"
    _repr_fields = ("id", "name", "active")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)     # the name vouchers are issued for
    shops: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Cashier(Base):
    __tablename__ = "cashiers"
    _repr_fields = ("id", "merchant_id", "shop", "name")

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"), index=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("wechat_identities.id", ondelete="CASCADE"), unique=True)
    shop: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(64))
    auth_version: Mapped[int] = mapped_column(default=1)
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    merchant: Mapped[Merchant] = relationship(lazy="joined")


class StatementMonth(Base):
    """A merchant's month of redemptions, closed by an officer once the union has paid it: none of its redemptions
    can change after."""

    __tablename__ = "statement_months"
    __table_args__ = (UniqueConstraint("merchant_id", "month"),)
    _repr_fields = ("merchant_id", "month")

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id", ondelete="CASCADE"))
    month: Mapped[str] = mapped_column(String(7))            # "2026-11", Beijing time
    closed_at: Mapped[datetime]
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
