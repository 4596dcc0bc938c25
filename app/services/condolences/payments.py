"""Condolences, part 2: paying them. Finance pays approved condolences in a monthly batch cut off on a configured
day; a gift (慰问品) is closed when an officer records its delivery; the ledger for any period; the yearly figures.

- A month's batch is closed once (a unique month): it takes every request approved up to the cut-off, to be paid in
  money and in no batch yet, with a conditional UPDATE, so two batches closed at once never share a request.
- Marking the batch paid (the day, 现金 / 转账, 经办人) closes its requests; a paid batch never changes.
- Batches, the ledger and the figures are the union officers' (the union_officer role itself, as for reading
  requests); none of them carries a sealed field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.extensions import db
from app.services import audit, policy, spreadsheets
from app.services.condolences.records import STATUS_LABELS, get_request, record_step, transition
from app.services.condolences.review import PAYMENT_LABELS
from app.validation import labelled
from models import (
    BatchStatus, CondolenceBatch, CondolenceRequest, CondolenceStatus, PaymentKind, PaymentMethod, RetireeVisit,
    Staff, VisitStatus,
)

METHOD_LABELS = {PaymentMethod.CASH: "现金", PaymentMethod.TRANSFER: "转账"}
MethodChoice = labelled(PaymentMethod, METHOD_LABELS)
MONTH = re.compile(r"(20\d\d)-(0[1-9]|1[0-2])")
BATCH_NOT_FOUND = ("找不到该发放批次", "batch_not_found")


class PaidFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"paid_on": "2027-03-28", "method": "转账", "handled_by": "王会计"}]})
    paid_on: date = Field(description="发放日期")
    method: MethodChoice = Field(description="cash 现金 / transfer 转账")
    handled_by: str = Field(min_length=1, max_length=32, description="经办人")


class DeliveryFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"delivered_on": "2027-03-20", "note": "分工会主席陪同送到家中"}]})
    delivered_on: date = Field(description="慰问品送达日期")
    note: str | None = Field(default=None, min_length=1, max_length=200, description="说明")


def ensure_handles_payments(officer: Staff) -> None:
    if not policy.reviews_all_condolences(officer):
        raise Forbidden("仅校工会工作人员可以办理慰问金的结算与发放", code="union_officer_only")


# --- the monthly batch ----------------------------------------------------------------------------------------------

def cut_off_of(month: str) -> datetime:
    """The end of the month's cut-off day (Beijing time): approved before it, paid in this month's batch."""
    found = MONTH.fullmatch(month)
    if not found:
        raise Invalid("invalid_month", "月份应为 YYYY-MM，如 2027-03")
    day = current_app.config["SU"].condolences.payment_cut_off_day
    start = datetime.combine(date(int(found[1]), int(found[2]), day), time(), clock.zone())
    return start + timedelta(days=1)


def close_batch(officer: Staff, month: str) -> CondolenceBatch:
    """Closes a month's batch on or after its cut-off day; a month is closed once."""
    ensure_handles_payments(officer)
    cut_off = cut_off_of(month)
    cut_off_day = (cut_off - timedelta(days=1)).date()
    if clock.today() < cut_off_day:
        raise Conflict("before_cut_off", f"{month} 的结算日是 {cut_off_day.month} 月 {cut_off_day.day} 日，届时才能结算")
    batch = CondolenceBatch(month=month, cut_off_at=cut_off, status=BatchStatus.CLOSED, closed_by_id=officer.id,
                            closed_at=clock.now())
    try:
        with db.session.begin_nested():
            db.session.add(batch)
    except IntegrityError:          # closed by another officer, now or before
        raise Conflict("batch_closed", f"{month} 的慰问金已经结算") from None
    db.session.execute(update(CondolenceRequest).where(
        CondolenceRequest.status == CondolenceStatus.APPROVED, CondolenceRequest.payment == PaymentKind.MONEY,
        CondolenceRequest.approved_at < cut_off, CondolenceRequest.batch_id.is_(None))
        .values(batch_id=batch.id).execution_options(synchronize_session=False))
    db.session.execute(update(RetireeVisit).where(      # money an officer advanced on a visit, to be reimbursed
        RetireeVisit.status == VisitStatus.VISITED, RetireeVisit.reimburse.is_(True),
        RetireeVisit.recorded_at < cut_off, RetireeVisit.batch_id.is_(None))
        .values(batch_id=batch.id).execution_options(synchronize_session=False))
    batch_lines = lines_of(batch)
    batch.count, batch.total_fen = len(batch_lines), sum(line.amount_fen for line in batch_lines)
    audit.record(officer, "condolence.batch_close", "condolence_batch", batch.id, month=month, count=batch.count,
                 total_fen=batch.total_fen)
    return batch


def mark_paid(officer: Staff, batch_id: int, fields: PaidFields) -> CondolenceBatch:
    """Finance paid the batch: its requests are closed (each person concerned is told), and the batch is final."""
    batch = get_batch(officer, batch_id)
    changed = db.session.execute(update(CondolenceBatch).where(
        CondolenceBatch.id == batch.id, CondolenceBatch.status == BatchStatus.CLOSED)
        .values(status=BatchStatus.PAID, paid_on=fields.paid_on, method=fields.method, handled_by=fields.handled_by,
                marked_paid_by_id=officer.id).execution_options(synchronize_session=False))
    if not changed.rowcount:
        raise Conflict("batch_paid", "该批次已标记发放，不能再修改")
    db.session.refresh(batch)
    for request in batch_requests(batch):
        transition(request, (CondolenceStatus.APPROVED,), CondolenceStatus.CLOSED, "发放", paid_on=fields.paid_on,
                   closed_at=clock.now())
        record_step(request, "paid", officer, batch=batch.month)
    audit.record(officer, "condolence.batch_paid", "condolence_batch", batch.id, paid_on=fields.paid_on.isoformat(),
                 method=fields.method.value, handled_by=fields.handled_by)
    return batch


def record_delivery(officer: Staff, request_id: int, fields: DeliveryFields) -> CondolenceRequest:
    """A gift (慰问品) delivered: the request is closed, outside the finance batch."""
    request = get_request(officer, request_id)
    if not (policy.is_officer(officer) and policy.reviews_condolence(officer, request)):
        raise Forbidden("仅负责该会员的工会干部可以登记慰问品送达", code="officer_only")
    if request.status is CondolenceStatus.APPROVED and request.payment is not PaymentKind.GIFT:
        raise Conflict("paid_in_money", "慰问金随月度批次发放，不在这里登记")
    if fields.delivered_on > clock.today():
        raise Invalid("delivered_in_the_future", "送达日期不能晚于今天")
    transition(request, (CondolenceStatus.APPROVED,), CondolenceStatus.CLOSED, "登记慰问品送达",
               CondolenceRequest.payment == PaymentKind.GIFT, paid_on=fields.delivered_on,
               delivery_note=fields.note, closed_at=clock.now())
    record_step(request, "delivered", officer)
    return request


def get_batch(officer: Staff, batch_id: int) -> CondolenceBatch:
    ensure_handles_payments(officer)
    batch = db.session.get(CondolenceBatch, batch_id)
    if batch is None:
        raise NotFound(*BATCH_NOT_FOUND)
    return batch


def all_batches(officer: Staff) -> list[CondolenceBatch]:
    ensure_handles_payments(officer)
    return list(db.session.scalars(select(CondolenceBatch).order_by(CondolenceBatch.month.desc())))


def batch_requests(batch: CondolenceBatch) -> list[CondolenceRequest]:
    return list(db.session.scalars(select(CondolenceRequest).where(CondolenceRequest.batch_id == batch.id)
                                   .order_by(CondolenceRequest.approved_at, CondolenceRequest.id)).unique())


def batch_visits(batch: CondolenceBatch) -> list[RetireeVisit]:
    return list(db.session.scalars(select(RetireeVisit).where(RetireeVisit.batch_id == batch.id)
                                   .order_by(RetireeVisit.recorded_at, RetireeVisit.id)).unique())


VISIT_TYPE = "退休教职工走访（报销垫付）"


@dataclass
class Line:
    """One payment of a batch: a request's, or a visit's money to reimburse."""

    employee_no: str
    name: str
    sub_union: str
    type_name: str
    event_date: date
    decided_at: datetime
    amount_fen: int


def lines_of(batch: CondolenceBatch) -> list[Line]:
    return ([Line(r.member.employee_no, r.member.name, sub_union_of(r.member), r.type.name, r.event_date,
                  r.approved_at, r.amount_fen or 0) for r in batch_requests(batch)]
            + [Line(v.retiree.employee_no, v.retiree.name, sub_union_of(v.retiree), VISIT_TYPE, v.visited_on,
                    v.recorded_at, v.money_fen) for v in batch_visits(batch)])


@dataclass
class Total:
    name: str
    count: int = 0
    total_fen: int = 0


def totals(items: list, key, amount=lambda item: item.amount_fen or 0) -> list[Total]:
    """Count and sum per key (a type's name, a sub-union's), in the order first met."""
    found: dict[str, Total] = {}
    for item in items:
        total = found.setdefault(key(item), Total(key(item)))
        total.count += 1
        total.total_fen += amount(item)
    return list(found.values())


def sub_union_of(member: Staff) -> str:
    return member.sub_union.name if member.sub_union else "（未分配分工会）"


def by_type(request: CondolenceRequest) -> str:
    return request.type.name


def by_sub_union(request: CondolenceRequest) -> str:
    return sub_union_of(request.member)


BATCH_HEADERS = ["序号", "工号", "姓名", "分工会", "慰问类型", "事件日期", "批准日期", "金额（元）"]


def batch_xlsx(officer: Staff, batch_id: int) -> tuple[CondolenceBatch, bytes]:
    """For finance: one row per payment, then the totals per type and per sub-union, then the sum."""
    batch = get_batch(officer, batch_id)
    batch_lines = lines_of(batch)
    rows = [[n, line.employee_no, line.name, line.sub_union, line.type_name, line.event_date.isoformat(),
             clock.local_cell(line.decided_at), line.amount_fen / 100] for n, line in enumerate(batch_lines, start=1)]
    for title, attribute in (("按类型合计", "type_name"), ("按分工会合计", "sub_union")):
        rows += [[], [title]] + [[None, None, None, None, t.name, f"{t.count} 人次", None, t.total_fen / 100]
                                 for t in totals(batch_lines, lambda line: getattr(line, attribute))]
    rows += [[], ["总计", None, None, None, None, f"{batch.count} 人次", None, batch.total_fen / 100]]
    data = spreadsheets.workbook(f"{batch.month} 慰问金", BATCH_HEADERS, rows, [6, 12, 10, 18, 16, 12, 18, 12])
    audit.record(officer, "condolence.batch_export", "condolence_batch", batch.id)
    return batch, data


# --- the ledger and the figures -------------------------------------------------------------------------------------

LEDGER_HEADERS = ["编号", "工号", "姓名", "分工会", "慰问类型", "公示名称", "事件日期", "批准日期", "方式", "金额（元）", "状态",
                  "发放或送达日期", "批次"]


def ledger_xlsx(officer: Staff, start: date, end: date) -> bytes:
    """Every request approved in [start, end] (Beijing days), with what became of it."""
    ensure_handles_payments(officer)
    if end < start:
        raise Invalid("invalid_period", "结束日期不能早于开始日期")
    low, high = (datetime.combine(day, time(), clock.zone()) for day in (start, end + timedelta(days=1)))
    requests = list(db.session.scalars(select(CondolenceRequest).where(
        CondolenceRequest.approved_at >= low, CondolenceRequest.approved_at < high)
        .order_by(CondolenceRequest.approved_at, CondolenceRequest.id)).unique())
    months = dict(db.session.execute(select(CondolenceBatch.id, CondolenceBatch.month)).all())
    rows = [[r.id, r.member.employee_no, r.member.name, by_sub_union(r), r.type.name, r.type.label,
             r.event_date.isoformat(), clock.local_cell(r.approved_at), PAYMENT_LABELS[r.payment], r.amount_fen / 100,
             STATUS_LABELS[r.status], r.paid_on.isoformat() if r.paid_on else None, months.get(r.batch_id)]
            for r in requests]
    data = spreadsheets.workbook("慰问台账", LEDGER_HEADERS, rows, [8, 12, 10, 18, 16, 12, 12, 18, 10, 12, 14, 14, 10])
    audit.record(officer, "condolence.ledger_export", "condolence_requests", "", start=start.isoformat(),
                 end=end.isoformat(), rows=len(rows))
    return data


@dataclass
class Figures:
    by_type: list[Total]
    by_sub_union: list[Total]
    count: int
    total_fen: int


def figures(start: date, end: date) -> Figures:
    """For the work report: condolences paid or delivered in [start, end], counted by the day they were, by type and
    by sub-union (count, total)."""
    requests = list(db.session.scalars(select(CondolenceRequest).where(
        CondolenceRequest.status == CondolenceStatus.CLOSED, CondolenceRequest.paid_on >= start,
        CondolenceRequest.paid_on <= end).order_by(CondolenceRequest.paid_on, CondolenceRequest.id)).unique())
    return Figures(totals(requests, by_type), totals(requests, by_sub_union), len(requests),
                   sum(r.amount_fen or 0 for r in requests))


def figures_for(officer: Staff, start: date, end: date) -> Figures:
    ensure_handles_payments(officer)
    if end < start:
        raise Invalid("invalid_period", "结束日期不能早于开始日期")
    return figures(start, end)
