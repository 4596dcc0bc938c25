"""Birthday cake vouchers (生日蛋糕券): the policy they are issued under (one row per version), the vouchers (at most
one per member per solar year: a unique constraint on every backend) and each voucher's history."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, str_enum, utcnow
from models.roster import Staff

if TYPE_CHECKING:
    from models.merchants import Cashier


class IssueMode(enum.Enum):
    DAYS_BEFORE = "days_before"      # N days before the birthday
    MONTH_START = "month_start"      # the first day of the birthday month


class VoucherPolicy(Base):
    """What a voucher is worth and how it is issued. Never changed in place: each change is a new version."""

    __tablename__ = "voucher_policies"
    _repr_fields = ("version", "merchant", "face_value_fen")

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(unique=True)
    face_value_fen: Mapped[int]
    cost_fen: Mapped[int]                   # what the union pays the bakery for one voucher
    merchant: Mapped[str] = mapped_column(String(100))
    issue_mode: Mapped[IssueMode] = mapped_column(str_enum(IssueMode))
    issue_days_before: Mapped[int] = mapped_column(default=0)
    valid_days: Mapped[int]
    retirees_eligible: Mapped[bool] = mapped_column(default=True)
    yearly_cap_fen: Mapped[int]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VoucherStatus(enum.Enum):
    VALID = "valid"            # 有效
    REDEEMED = "redeemed"      # 已使用
    EXPIRED = "expired"        # 已过期
    VOID = "void"              # 已作废


class Voucher(Base):
    __tablename__ = "vouchers"
    __table_args__ = (UniqueConstraint("staff_id", "year"), Index("ix_vouchers_status_valid_until", "status",
                                                                  "valid_until"))
    _repr_fields = ("id", "staff_id", "year", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    year: Mapped[int]                        # the solar year (Beijing time) it belongs to
    birthday: Mapped[date]                   # the birthday in that year it was issued for
    serial: Mapped[str] = mapped_column(String(16), unique=True)
    secret: Mapped[str] = mapped_column(String(64))      # the codes the holder shows are derived from it
    status: Mapped[VoucherStatus] = mapped_column(str_enum(VoucherStatus), default=VoucherStatus.VALID)
    merchant: Mapped[str] = mapped_column(String(100))
    face_value_fen: Mapped[int]
    cost_fen: Mapped[int]
    policy_version: Mapped[int]
    issued_at: Mapped[datetime]
    valid_until: Mapped[datetime]
    first_shown_at: Mapped[datetime | None]
    printed_at: Mapped[datetime | None]      # a printed voucher is no longer shown in the mini-program
    printed_code_hash: Mapped[str | None] = mapped_column(String(64))   # its one-time code, hashed
    redeemed_at: Mapped[datetime | None]
    redeemed_by_id: Mapped[int | None] = mapped_column(ForeignKey("cashiers.id", ondelete="SET NULL"))
    redeemed_shop: Mapped[str | None] = mapped_column(String(100))
    void_reason: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[Staff] = relationship(lazy="joined")
    redeemed_by: Mapped["Cashier | None"] = relationship()
    history: Mapped[list[VoucherEvent]] = relationship(back_populates="voucher", cascade="all, delete-orphan",
                                                       order_by="VoucherEvent.id")


class VoucherEvent(Base):
    """One change of a voucher's state: issued, shown (the first time), redeemed, expired, voided, reissued."""

    __tablename__ = "voucher_events"
    _repr_fields = ("voucher_id", "action")

    id: Mapped[int] = mapped_column(primary_key=True)
    voucher_id: Mapped[int] = mapped_column(ForeignKey("vouchers.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    voucher: Mapped[Voucher] = relationship(back_populates="history")
