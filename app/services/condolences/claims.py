"""Mutual-aid claims (互助保障): union officers help members claim from the city's plans — filed → submitted to the
city union → paid or refused — with the member's documents. The same privacy as a condolence request: visible to
the member, the officers of their sub-union and union officers (nobody else: 404); the description and a refusal's
reason are sealed, so are the documents; opening a claim or a document is audited; each change tells the member
that something changed, and nothing of what."""

from __future__ import annotations

from datetime import date

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select

from app import clock
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.extensions import db
from app.services import audit, notifications, policy, roster, sealing
from app.services.condolences import files
from app.services.state_changes import move_status
from app.validation import whole
from models import ClaimStatus, CondolenceAttachment, MutualAidClaim, Staff

STATUS_LABELS = {ClaimStatus.FILED: "已登记", ClaimStatus.SUBMITTED: "已报送市总工会", ClaimStatus.PAID: "已赔付",
                 ClaimStatus.REFUSED: "未获赔付"}
NOT_FOUND = ("找不到该互助保障申请", "claim_not_found")
TABLE = "mutual_aid_claims"
SEALED = ("description", "refusal")


def plans() -> list[str]:
    return current_app.config["SU"].condolences.mutual_aid_plans


class ClaimFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"employee_no": "000002", "plan": "住院医疗互助保障", "filed_on": "2027-03-01", "description": "住院 12 天"}]})
    employee_no: str = Field(min_length=1, max_length=32, description="会员工号")
    plan: str = Field(min_length=1, max_length=64, description="互助保障项目（见配置 condolences.mutual_aid_plans）")
    filed_on: date = Field(description="登记日期")
    description: str | None = Field(default=None, min_length=1, max_length=2000, description="情况说明（加密保存）")

    @field_validator("plan")
    @classmethod
    def _known_plan(cls, value: str) -> str:
        if value not in plans():
            raise ValueError(f"不是本市的互助保障项目，可选：{'、'.join(plans())}")
        return value


class SubmittedFields(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"submitted_on": "2027-03-05"}]})
    submitted_on: date = Field(description="报送市总工会的日期")


class PaidFields(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"paid_on": "2027-04-10", "amount_fen": 100000}]})
    paid_on: date = Field(description="赔付日期")
    amount_fen: whole(ge=1, le=100_000_000) = Field(description="赔付金额（分）")


class RefusedFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"refused_on": "2027-04-10", "reason": "不在保障范围内"}]})
    refused_on: date = Field(description="市总工会答复的日期")
    reason: str = Field(min_length=1, max_length=500, description="未获赔付的原因（加密保存）")


def _ensure_tracks_claims(officer: Staff) -> None:
    if not policy.reviews_all_condolences(officer):
        raise Forbidden("互助保障申请由校工会工作人员办理", code="union_officer_only")


def _aad(claim: MutualAidClaim, field: str) -> bytes:
    return sealing.associated_data(TABLE, claim.id, field)


def opened(claim: MutualAidClaim) -> dict[str, str | None]:
    return {name: sealing.open_text(getattr(claim, f"{name}_sealed"), _aad(claim, name)) for name in SEALED}


def file_claim(officer: Staff, fields: ClaimFields) -> MutualAidClaim:
    _ensure_tracks_claims(officer)
    member = roster.get_staff(fields.employee_no)
    if fields.filed_on > clock.today():
        raise Invalid("filed_in_the_future", "登记日期不能晚于今天")
    claim = MutualAidClaim(staff_id=member.id, plan=fields.plan, filed_on=fields.filed_on, status=ClaimStatus.FILED,
                           created_by_id=officer.id)
    db.session.add(claim)
    db.session.flush()
    claim.description_sealed = sealing.seal_text(fields.description, _aad(claim, "description"))
    _changed(officer, claim, "filed")
    return claim


def get_claim(staff: Staff, claim_id: int) -> MutualAidClaim:
    """A claim the caller may see: the member's own, or one of a member an officer looks after (404 otherwise)."""
    claim = db.session.get(MutualAidClaim, claim_id)
    scope = policy.condolence_scope(staff)
    if claim is None or (claim.staff_id != staff.id and scope is not None and claim.member.sub_union_id not in scope):
        raise NotFound(*NOT_FOUND)
    return claim


def read_claim(staff: Staff, claim_id: int) -> MutualAidClaim:
    claim = get_claim(staff, claim_id)
    audit.record(staff, "claim.read", TABLE, claim.id)
    return claim


def mine(staff: Staff) -> list[MutualAidClaim]:
    return list(db.session.scalars(select(MutualAidClaim).where(MutualAidClaim.staff_id == staff.id)
                                   .order_by(MutualAidClaim.id.desc())).unique())


def for_officer(officer: Staff, status: ClaimStatus | None) -> list[MutualAidClaim]:
    scope = policy.condolence_scope(officer)
    if not policy.is_officer(officer) or scope == set():
        raise Forbidden("互助保障申请只由分工会和校工会的工会干部查看", code="condolence_reviewers_only")
    stmt = select(MutualAidClaim).order_by(MutualAidClaim.id.desc())
    if scope is not None:
        stmt = stmt.where(MutualAidClaim.staff_id.in_(select(Staff.id).where(Staff.sub_union_id.in_(scope))))
    if status is not None:
        stmt = stmt.where(MutualAidClaim.status == status)
    return list(db.session.scalars(stmt).unique())


def add_document(officer: Staff, claim_id: int, filename: str, data: bytes) -> CondolenceAttachment:
    claim = get_claim(officer, claim_id)
    _ensure_tracks_claims(officer)
    if claim.status not in (ClaimStatus.FILED, ClaimStatus.SUBMITTED):
        raise Conflict("claim_closed", "申请已有结果，不能再添加材料")
    document = files.store(claim.documents, {"claim_id": claim.id}, officer, filename, data)
    audit.record(officer, "claim.attach", TABLE, claim.id, attachment_id=document.id, size=len(data))
    return document


def read_document(staff: Staff, claim_id: int, file_id: int) -> tuple[CondolenceAttachment, bytes]:
    claim = get_claim(staff, claim_id)
    document = files.one_of(claim.documents, file_id)
    data = files.read(document)
    audit.record(staff, "claim.file", TABLE, claim.id, attachment_id=document.id)
    return document, data


def submitted(officer: Staff, claim_id: int, fields: SubmittedFields) -> MutualAidClaim:
    claim = _for_change(officer, claim_id)
    _move(claim, (ClaimStatus.FILED,), ClaimStatus.SUBMITTED, submitted_on=fields.submitted_on)
    _changed(officer, claim, "submitted")
    return claim


def paid(officer: Staff, claim_id: int, fields: PaidFields) -> MutualAidClaim:
    claim = _for_change(officer, claim_id)
    _move(claim, (ClaimStatus.SUBMITTED,), ClaimStatus.PAID, paid_on=fields.paid_on,
          amount_paid_fen=fields.amount_fen, closed_at=clock.now())
    _changed(officer, claim, "paid", amount_fen=fields.amount_fen)
    return claim


def refused(officer: Staff, claim_id: int, fields: RefusedFields) -> MutualAidClaim:
    claim = _for_change(officer, claim_id)
    _move(claim, (ClaimStatus.SUBMITTED,), ClaimStatus.REFUSED, closed_at=clock.now(),
          refusal_sealed=sealing.seal_text(fields.reason, _aad(claim, "refusal")))
    _changed(officer, claim, "refused")
    return claim


def _for_change(officer: Staff, claim_id: int) -> MutualAidClaim:
    claim = get_claim(officer, claim_id)
    _ensure_tracks_claims(officer)
    return claim


def _move(claim: MutualAidClaim, allowed: tuple[ClaimStatus, ...], new: ClaimStatus, **values) -> None:
    """Of two officers recording at once, one does; the other is told the state now."""
    now = move_status(claim, allowed, new, **values)
    if now is not None:
        raise Conflict("transition_not_allowed", f"该申请当前状态为“{STATUS_LABELS[now]}”，不能改为“{STATUS_LABELS[new]}”")


def _changed(officer: Staff, claim: MutualAidClaim, action: str, **detail) -> None:
    """Audited, and told to the member: that it changed and where to look, nothing more."""
    audit.record(officer, f"claim.{action}", TABLE, claim.id, **detail)
    status = STATUS_LABELS[claim.status]
    notifications.notify_people(
        "service", f"claim:{claim.id}:{claim.status.value}", [claim.staff_id], "互助保障申请有新进展",
        f"您的互助保障申请（编号 {claim.id}）状态：{status}。详情请向所在分工会或校工会咨询。",
        data={"summary": f"状态：{status}"})


def figures(start: date, end: date) -> dict[str, int]:
    """For the work report: claims filed in [start, end] (by the day filed), and paid (count and total, by the day
    paid)."""
    filed = db.session.scalars(select(MutualAidClaim.id).where(
        MutualAidClaim.filed_on >= start, MutualAidClaim.filed_on <= end)).all()
    paid_rows = db.session.scalars(select(MutualAidClaim.amount_paid_fen).where(
        MutualAidClaim.status == ClaimStatus.PAID, MutualAidClaim.paid_on >= start,
        MutualAidClaim.paid_on <= end)).all()
    return {"filed": len(filed), "paid": len(paid_rows), "paid_fen": sum(paid_rows)}
