"""The two-level review: 核实 by an officer of the member's sub-union (or a union officer where none is free), then
approval by a union officer at the rate's amount — or 补材料, or a rejection, at either level. Four eyes: the
verifier and the approver are different people, and neither is the applicant or the member (app.services.policy).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import Conflict, Invalid
from app.extensions import db
from app.services import policy
from app.services.condolences.records import get_request, not_allowed, record_step, sealed, transition
from app.validation import labelled, whole
from models import CondolenceRequest, CondolenceStatus, CondolenceYearlyCount, PaymentKind, Staff

PAYMENT_LABELS = {PaymentKind.MONEY: "慰问金", PaymentKind.GIFT: "慰问品"}
PaymentChoice = labelled(PaymentKind, PAYMENT_LABELS)


class ReturnFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"missing": "请补充出院记录和住院费用清单"}]})
    missing: str = Field(min_length=1, max_length=500, description="需要补充的材料")


class RejectFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"reason": "不属于直系亲属慰问范围"}]})
    reason: str = Field(min_length=1, max_length=200, description="不予批准的原因")


class ApproveFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"payment": "money"}, {"payment": "gift", "gift": "水果篮和营养品", "amount_fen": 30000, "amount_reason": "按实物价值"}]})
    payment: PaymentChoice = Field(description="money 慰问金 / gift 慰问品")
    amount_fen: whole(ge=1, le=10_000_000) | None = Field(default=None, description="金额（分）；不填为标准金额")
    amount_reason: str | None = Field(default=None, min_length=1, max_length=200,
                                      description="金额与标准不同时必填")
    gift: str | None = Field(default=None, min_length=1, max_length=100, description="慰问品（payment 为 gift 时必填）")

    @model_validator(mode="after")
    def _gift_named(self):
        if self.payment is PaymentKind.GIFT and not self.gift:
            raise ValueError("以慰问品发放时请填写慰问品")
        return self


def verify(officer: Staff, request_id: int) -> CondolenceRequest:
    request = get_request(officer, request_id)
    policy.ensure_may_verify(officer, request)
    transition(request, (CondolenceStatus.SUBMITTED,), CondolenceStatus.VERIFIED, "核实",
               verified_by_id=officer.id, verified_at=clock.now())
    record_step(request, "verified", officer)
    return request


def return_for_material(officer: Staff, request_id: int, fields: ReturnFields) -> CondolenceRequest:
    request = get_request(officer, request_id)
    _ensure_reviews_now(officer, request, "退回补材料")
    transition(request, (request.status,), CondolenceStatus.RETURNED, "退回补材料",
               **sealed(request, missing_material=fields.missing))
    record_step(request, "returned", officer)
    return request


def reject(officer: Staff, request_id: int, fields: RejectFields) -> CondolenceRequest:
    request = get_request(officer, request_id)
    _ensure_reviews_now(officer, request, "不予批准")
    transition(request, (request.status,), CondolenceStatus.REJECTED, "不予批准", rejected_by_id=officer.id,
               rejected_at=clock.now(), **sealed(request, reject_reason=fields.reason))
    record_step(request, "rejected", officer)
    return request


def _ensure_reviews_now(officer: Staff, request: CondolenceRequest, action: str) -> None:
    """补材料 and rejection belong to whoever reviews the request at its present level (the conditional UPDATE
    after this holds the request to that level: an approval meanwhile makes it refuse)."""
    if request.status is CondolenceStatus.SUBMITTED:
        policy.ensure_may_verify(officer, request)
    elif request.status is CondolenceStatus.VERIFIED:
        policy.ensure_may_approve(officer, request)
    else:
        raise not_allowed(request.status, action)


def approve(officer: Staff, request_id: int, fields: ApproveFields) -> CondolenceRequest:
    """At the rate's amount unless a reason says otherwise, never above its ceiling, and never past the member's
    yearly count for the type."""
    request = get_request(officer, request_id)
    policy.ensure_may_approve(officer, request)
    if request.status is not CondolenceStatus.VERIFIED:
        raise not_allowed(request.status, "批准")
    amount = _amount(request, fields)
    # the four-eyes check read the verifier before this UPDATE: a re-verification meanwhile must not slip through
    transition(request, (CondolenceStatus.VERIFIED,), CondolenceStatus.APPROVED, "批准",
               CondolenceRequest.verified_by_id == request.verified_by_id, approved_by_id=officer.id,
               approved_at=clock.now(), amount_fen=amount, payment=fields.payment,
               gift=fields.gift if fields.payment is PaymentKind.GIFT else None,
               **sealed(request, amount_reason=fields.amount_reason))
    _count_approval(request)
    record_step(request, "approved", officer, amount_fen=amount, payment=fields.payment.value)
    return request


def _amount(request: CondolenceRequest, fields: ApproveFields) -> int:
    rate = request.rate
    amount = rate.amount_fen if fields.amount_fen is None else fields.amount_fen
    if amount > rate.ceiling_fen:
        raise Invalid("over_ceiling", f"金额超过该类慰问每次 {rate.ceiling_fen / 100:g} 元的上限")
    if amount != rate.amount_fen and not fields.amount_reason:
        raise Invalid("reason_required", f"金额与标准金额 {rate.amount_fen / 100:g} 元不同，请说明原因")
    return amount


def _count_approval(request: CondolenceRequest) -> None:
    """One more approval of this type for this member in the event's year, unless the rate's count is reached: a
    conditional UPDATE, so of two approvals racing for the last one exactly one passes."""
    key = {"staff_id": request.staff_id, "type_id": request.type_id, "year": request.event_year}
    # The member's row first: approvals for one member queue here. Without it, two transactions that both met the
    # counter's row in the INSERT below hold shared locks on it and deadlock in the UPDATE (InnoDB).
    db.session.execute(select(Staff.id).where(Staff.id == request.staff_id).with_for_update())
    try:
        with db.session.begin_nested():
            db.session.execute(insert(CondolenceYearlyCount).values(**key, approved=0))
    except IntegrityError:
        pass                                  # counted before (or by the approval racing this one)
    counted = db.session.execute(update(CondolenceYearlyCount).where(
        *(getattr(CondolenceYearlyCount, name) == value for name, value in key.items()),
        CondolenceYearlyCount.approved < request.rate.times_per_year)
        .values(approved=CondolenceYearlyCount.approved + 1).execution_options(synchronize_session=False))
    if not counted.rowcount:
        raise Conflict("yearly_count_reached",
                       f"该会员 {request.event_year} 年此类慰问已达 {request.rate.times_per_year} 次，不能再批准")

