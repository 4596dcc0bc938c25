"""The bakery's monthly statement: what a merchant redeemed in a month (Beijing time) — count, face value, the
union's cost and each redemption — as JSON and as XLSX with Chinese headers. An officer closes a month once the
union has paid it; its redemptions cannot change after. A merchant's cashiers read their statement without the
union's cost."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import Conflict, NotFound
from app.extensions import db
from app.services import audit, policy, spreadsheets
from models import Cashier, Merchant, Staff, StatementMonth, Voucher, VoucherStatus

MONTH = re.compile(r"(20\d\d)-(0[1-9]|1[0-2])")
HEADERS = ["序号", "券号", "持券人", "工号", "门店", "收银员", "核销时间", "面值（元）", "成本（元）"]


def month_of(moment: datetime) -> str:
    return f"{clock.local(moment):%Y-%m}"


def _bounds(month: str) -> tuple[datetime, datetime]:
    if not MONTH.fullmatch(month):
        raise NotFound("月份应为 YYYY-MM", code="month_not_found")
    year, number = int(month[:4]), int(month[5:])
    start = datetime(year, number, 1, tzinfo=clock.zone())
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=clock.zone())
    return start, end


@dataclass
class Statement:
    merchant: Merchant
    month: str
    closed: bool
    items: list[Voucher] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.items)

    @property
    def face_value_fen(self) -> int:
        return sum(v.face_value_fen for v in self.items)

    @property
    def cost_fen(self) -> int:
        return sum(v.cost_fen for v in self.items)


def is_closed(merchant_id: int, month: str) -> bool:
    return db.session.scalar(select(StatementMonth.id).where(StatementMonth.merchant_id == merchant_id,
                                                             StatementMonth.month == month)) is not None


def statement(merchant_id: int, month: str) -> Statement:
    start, end = _bounds(month)
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound("找不到该商户", code="merchant_not_found")
    items = list(db.session.scalars(select(Voucher).join(Cashier, Voucher.redeemed_by_id == Cashier.id).where(
        Cashier.merchant_id == merchant_id, Voucher.status == VoucherStatus.REDEEMED, Voucher.redeemed_at >= start,
        Voucher.redeemed_at < end).order_by(Voucher.redeemed_at, Voucher.id)).unique())
    return Statement(merchant, month, is_closed(merchant_id, month), items)


def for_officer(officer: Staff, merchant_id: int, month: str) -> Statement:
    policy.ensure_officer(officer)
    return statement(merchant_id, month)


def for_cashier(cashier: Cashier, month: str) -> Statement:
    return statement(cashier.merchant_id, month)


def close_month(officer: Staff, merchant_id: int, month: str) -> Statement:
    """Closes the month (union officers); closing twice is refused."""
    policy.ensure_union_officer(officer)
    _bounds(month)
    if db.session.get(Merchant, merchant_id) is None:
        raise NotFound("找不到该商户", code="merchant_not_found")
    try:
        with db.session.begin_nested():
            db.session.add(StatementMonth(merchant_id=merchant_id, month=month, closed_at=clock.now(),
                                          closed_by_id=officer.id))
    except IntegrityError:
        raise Conflict("month_closed", "该月已结算") from None
    audit.record(officer, "merchant.close_month", "merchant", merchant_id, month=month)
    return statement(merchant_id, month)


def xlsx(officer: Staff, merchant_id: int, month: str) -> tuple[Statement, bytes]:
    """The statement as a workbook: one row per redemption, then the totals; typed text stays text."""
    found = for_officer(officer, merchant_id, month)
    rows = [[n, v.serial, v.staff.name, v.staff.employee_no, v.redeemed_shop,
             v.redeemed_by.name if v.redeemed_by else None, clock.local_cell(v.redeemed_at),
             v.face_value_fen / 100, v.cost_fen / 100] for n, v in enumerate(found.items, start=1)]
    rows.append(["合计", f"{found.count} 张", None, None, None, None, None, found.face_value_fen / 100,
                 found.cost_fen / 100])
    data = spreadsheets.workbook(f"{month} 核销明细", HEADERS, rows, [6, 20, 10, 10, 12, 12, 18, 12, 12])
    audit.record(officer, "merchant.statement_export", "merchant", merchant_id, month=month)
    return found, data
