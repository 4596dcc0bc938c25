"""Filing a condolence request — by the member, or by an officer for a member of their sub-union who cannot (with
the consent of the member or their family, and when) — its attachments, 补材料 and withdrawal, and the lists."""

from __future__ import annotations

from datetime import date, timedelta

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, or_, select

from app import clock
from app.errors import Forbidden, Invalid
from app.extensions import db
from app.services import audit, calendar, policy, roster
from app.services.condolences import files, rates
from app.services.condolences.records import (
    TABLE, get_request, not_allowed, record_step, seal_fields,
    transition,
)
from app.validation import Id, Moment, labelled
from models import (
    CondolenceAttachment, CondolenceRequest, CondolenceStatus, CondolenceSubject, Relation, Staff,
)

RELATION_LABELS = {Relation.SPOUSE: "配偶", Relation.PARENT: "父母", Relation.CHILD: "子女",
                   Relation.PARENT_IN_LAW: "配偶父母"}
RelationChoice = labelled(Relation, RELATION_LABELS)
OPEN = (CondolenceStatus.SUBMITTED, CondolenceStatus.RETURNED, CondolenceStatus.VERIFIED)   # may be withdrawn
EDITABLE = (CondolenceStatus.SUBMITTED, CondolenceStatus.RETURNED)                          # may take files


def _settings():
    return current_app.config["SU"].condolences


def parents_in_law_count() -> bool:
    return _settings().parents_in_law_are_relatives


class RequestFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"type_id": 1, "event_date": "2026-11-20", "place": "市第一人民医院", "description": "住院治疗一周"},
        {"type_id": 3, "relation": "父母", "relative_name": "张建国", "event_date": "2026-11-20",
         "place": "市中医院", "description": "父亲住院"}]})
    type_id: Id = Field(description="慰问类型（GET /api/v1/condolences/types）")
    relation: RelationChoice | None = Field(default=None, description="亲属关系（直系亲属类型必填）")
    relative_name: str | None = Field(default=None, min_length=1, max_length=32, description="亲属姓名（加密保存）")
    event_date: date = Field(description="住院、去世或事故的日期")
    place: str | None = Field(default=None, min_length=1, max_length=100, description="医院或地点（加密保存）")
    description: str = Field(min_length=1, max_length=2000, description="情况说明（加密保存）")


class ConsentFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    employee_no: str = Field(min_length=1, max_length=32, description="当事会员的工号")
    consent_by: str = Field(pattern="^(本人|家属)$", description="谁同意由工会代为申请：本人 / 家属")
    consent_at: Moment = Field(description="同意的时间")


class OfficerRequestFields(RequestFields, ConsentFields):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"employee_no": "T0005", "consent_by": "家属", "consent_at": "2026-11-25T10:00:00+08:00", "type_id": 2,
         "event_date": "2026-11-22", "place": "市第一人民医院", "description": "家属电话告知，本人无法办理"}]})


class ResubmitFields(BaseModel):
    """What 补材料 may correct; the type and the event's date stay (withdraw and file again to change them)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"description": "已补充出院记录"}]})
    relation: RelationChoice | None = Field(default=None, description="亲属关系（不填则不变）")
    relative_name: str | None = Field(default=None, min_length=1, max_length=32, description="亲属姓名（不填则不变）")
    place: str | None = Field(default=None, min_length=1, max_length=100, description="医院或地点（不填则不变）")
    description: str | None = Field(default=None, min_length=1, max_length=2000, description="情况说明（不填则不变）")


# --- filing ---------------------------------------------------------------------------------------------------

def file_own(applicant: Staff, fields: RequestFields) -> CondolenceRequest:
    """The member files for themself or a relative."""
    return _file(applicant, applicant, fields)


def file_for_member(officer: Staff, fields: OfficerRequestFields) -> CondolenceRequest:
    member = roster.get_staff(fields.employee_no)
    policy.ensure_may_file_for(officer, member)
    if fields.consent_at > clock.now():
        raise Invalid("invalid_consent", "同意时间不能晚于现在")
    request = _file(officer, member, fields)
    request.consent_by, request.consent_at = fields.consent_by, fields.consent_at
    return request


def _file(applicant: Staff, member: Staff, fields: RequestFields) -> CondolenceRequest:
    kind = rates.get_type(fields.type_id)
    _check_subject(kind.subject, fields)
    _check_event_date(fields.event_date)
    category = rates.category_of(member)
    rate = rates.rate_in_force(kind, category, fields.event_date)
    request = CondolenceRequest(staff_id=member.id, applicant_id=applicant.id, type_id=kind.id, rate_id=rate.id,
                                category=category, relation=fields.relation, event_date=fields.event_date,
                                event_year=fields.event_date.year, status=CondolenceStatus.SUBMITTED,
                                submitted_at=clock.now(), possible_duplicate_of_id=_earlier_of_the_kind(
                                    member, kind.id, fields.event_date))
    db.session.add(request)
    db.session.flush()
    seal_fields(request, relative_name=fields.relative_name, place=fields.place, description=fields.description)
    record_step(request, "submitted", applicant)
    return request


def _check_subject(subject: CondolenceSubject, fields: RequestFields) -> None:
    if subject is CondolenceSubject.SELF:
        if fields.relation is not None or fields.relative_name is not None:
            raise Invalid("not_for_a_relative", "该慰问类型是本人的，不需要填写亲属")
        return
    if fields.relation is None or fields.relative_name is None:
        raise Invalid("relative_required", "直系亲属的慰问请填写亲属关系和亲属姓名")
    _check_relation(subject, fields.relation)


def _check_relation(subject: CondolenceSubject, relation: Relation) -> None:
    if subject is CondolenceSubject.SELF:
        raise Invalid("not_for_a_relative", "该慰问类型是本人的，不需要填写亲属")
    if relation is Relation.PARENT_IN_LAW and not parents_in_law_count():
        raise Invalid("not_a_direct_relative", "按本工会的规定，配偶父母不在直系亲属慰问范围内")


def _check_event_date(event_date: date) -> None:
    today = clock.today()
    if event_date > today:
        raise Invalid("event_in_the_future", "事件日期不能晚于今天")
    months = _settings().file_within_months
    if calendar.months_after(event_date, months) < today:
        raise Invalid("filed_too_late", f"事件发生已超过 {months} 个月，不能再申请")


def _earlier_of_the_kind(member: Staff, type_id: int, event_date: date) -> int | None:
    """A request of the same type for the same member within the window: flagged to reviewers, not refused."""
    window = timedelta(days=_settings().duplicate_window_days)
    return db.session.scalar(select(CondolenceRequest.id).where(
        CondolenceRequest.staff_id == member.id, CondolenceRequest.type_id == type_id,
        CondolenceRequest.status != CondolenceStatus.WITHDRAWN,
        CondolenceRequest.event_date.between(event_date - window, event_date + window))
        .order_by(CondolenceRequest.id.desc()).limit(1))


# --- attachments ----------------------------------------------------------------------------------------------

def attach(applicant: Staff, request_id: int, filename: str, data: bytes) -> CondolenceAttachment:
    """Bills, 病历首页, 出院记录, a death certificate: images or PDF, checked by content; stored sealed."""
    request = get_request(applicant, request_id, locking=True)
    _ensure_applicant(applicant, request)
    if request.status not in EDITABLE:
        raise not_allowed(request.status, "添加材料")
    attachment = files.store(request.attachments, {"request_id": request.id}, applicant, filename, data)
    audit.record(applicant, "condolence.attach", TABLE, request.id, attachment_id=attachment.id, size=len(data))
    return attachment


def read_file(staff: Staff, request_id: int, attachment_id: int) -> tuple[CondolenceAttachment, bytes]:
    """An attachment's bytes, for whoever may see the request; every opening is audited."""
    request = get_request(staff, request_id)
    attachment = files.one_of(request.attachments, attachment_id)
    data = files.read(attachment)
    audit.record(staff, "condolence.file", TABLE, request.id, attachment_id=attachment.id)
    return attachment, data


# --- the applicant's part of the workflow ---------------------------------------------------------------------

def _ensure_applicant(staff: Staff, request: CondolenceRequest) -> None:
    if staff.id != request.applicant_id:
        raise Forbidden("只有申请人可以进行此操作", code="applicant_only")


def resubmit(applicant: Staff, request_id: int, fields: ResubmitFields) -> CondolenceRequest:
    """补材料 done: back to the reviewers, changed where the applicant changed it."""
    request = get_request(applicant, request_id)
    _ensure_applicant(applicant, request)
    transition(request, (CondolenceStatus.RETURNED,), CondolenceStatus.SUBMITTED, "重新提交",
               missing_material_sealed=None, submitted_at=clock.now(), verified_by_id=None, verified_at=None)
    changes = {name: getattr(fields, name) for name in fields.model_fields_set if getattr(fields, name) is not None}
    if "relation" in changes:
        _check_relation(request.type.subject, changes["relation"])
        request.relation = changes.pop("relation")
    if "relative_name" in changes and request.type.subject is CondolenceSubject.SELF:
        raise Invalid("not_for_a_relative", "该慰问类型是本人的，不需要填写亲属")
    seal_fields(request, **changes)
    record_step(request, "resubmitted", applicant, changed=sorted(fields.model_fields_set))
    return request


def withdraw(applicant: Staff, request_id: int) -> CondolenceRequest:
    request = get_request(applicant, request_id)
    _ensure_applicant(applicant, request)
    transition(request, OPEN, CondolenceStatus.WITHDRAWN, "撤回", withdrawn_at=clock.now())
    record_step(request, "withdrawn", applicant)
    return request


# --- lists ------------------------------------------------------------------------------------------------------

def mine(staff: Staff) -> list[CondolenceRequest]:
    """The requests a member filed or that concern them."""
    return list(db.session.scalars(select(CondolenceRequest).where(
        or_(CondolenceRequest.applicant_id == staff.id, CondolenceRequest.staff_id == staff.id))
        .order_by(CondolenceRequest.id.desc())).unique())


def for_reviewers(officer: Staff, status: CondolenceStatus | None, page: int,
                  page_size: int) -> tuple[list[CondolenceRequest], int]:
    """The requests an officer reviews (an admin without the union officer role: none)."""
    if not policy.is_officer(officer) or (policy.condolence_scope(officer) == set()):
        raise Forbidden("慰问申请只由会员所在分工会和校工会的工会干部审核，系统管理员不查看",
                        code="condolence_reviewers_only")
    condition = policy.condolence_reviewer_condition(officer)
    if status is not None:
        condition = condition & (CondolenceRequest.status == status)
    total = db.session.scalar(select(func.count()).select_from(CondolenceRequest).where(condition))
    rows = db.session.scalars(select(CondolenceRequest).where(condition).order_by(CondolenceRequest.id.desc())
                              .limit(page_size).offset((page - 1) * page_size)).unique()
    return list(rows), total
