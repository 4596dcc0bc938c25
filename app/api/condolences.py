"""Condolences (慰问): members' routes under /condolences, reviewers' under /officer/condolences, the rates under
/officer/condolence-rates and /officer/condolence-types. Every answer is `Cache-Control: no-store`: these are
health and family records."""

from __future__ import annotations

import io
from datetime import date

from flask import Blueprint, Response, g
from pydantic import AliasPath, BaseModel, Field, computed_field

from app.api.endpoint import (
    READS_RECORDS, AuthLevel, Merged, endpoint, file_download, never_cached, uploaded_file,
)
from app.services import attachments, policy
from app.services.condolences import files, filing, rates, records, review
from app.services.condolences.filing import OfficerRequestFields, RequestFields, ResubmitFields
from app.services.condolences.rates import RateFields, TypeFields
from app.services.condolences.review import ApproveFields, RejectFields, ReturnFields
from app.validation import BeijingTime
from models import CondolenceRequest, CondolenceStatus, CondolenceSubject, MemberCategory, PaymentKind, Relation

bp = Blueprint("condolences", __name__)
OFFICER = AuthLevel.OFFICER

never_cached(bp)


# --- responses ----------------------------------------------------------------------------------------------------

class RequestSummary(BaseModel):
    """A request in a list: no sealed field (relative, place, description, files)."""

    model_config = READS_RECORDS
    id: int
    status: CondolenceStatus
    type_id: int
    type_name: str = Field(validation_alias=AliasPath("type", "name"))
    employee_no: str = Field(validation_alias=AliasPath("member", "employee_no"))
    name: str = Field(validation_alias=AliasPath("member", "name"))
    applicant_employee_no: str = Field(validation_alias=AliasPath("applicant", "employee_no"))
    member_category: MemberCategory = Field(validation_alias="category")
    relation: Relation | None
    event_date: date
    submitted_at: BeijingTime
    amount_fen: int | None
    payment: PaymentKind | None

    @computed_field
    @property
    def status_label(self) -> str:
        return records.STATUS_LABELS[self.status]

    @computed_field
    @property
    def member_category_label(self) -> str:
        return rates.CATEGORY_LABELS[self.member_category]

    @computed_field
    @property
    def relation_label(self) -> str | None:
        return filing.RELATION_LABELS[self.relation] if self.relation else None

    @computed_field
    @property
    def payment_label(self) -> str | None:
        return review.PAYMENT_LABELS[self.payment] if self.payment else None


class ReviewerSummary(RequestSummary):
    sub_union: str | None = Field(default=None, validation_alias=AliasPath("member", "sub_union", "name"))
    possible_duplicate_of_id: int | None = Field(description="同一会员 30 天内同类申请的编号（提醒核实，不代表重复）")


class RequestList(BaseModel):
    items: list[RequestSummary]


class ReviewerPage(BaseModel):
    items: list[ReviewerSummary]
    total: int
    page: int


class AttachmentOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    filename: str
    content_type: str
    size: int
    created_at: BeijingTime


class StepOut(BaseModel):
    model_config = READS_RECORDS
    action: str = Field(description="submitted 提交 / returned 退回补材料 / resubmitted 重新提交 / verified 核实 / "
                                    "approved 批准 / rejected 不予批准 / withdrawn 撤回")
    actor: str | None = Field(default=None, validation_alias=AliasPath("actor", "name"))
    at: BeijingTime


class RequestDetail(ReviewerSummary):
    """The whole request, for those it concerns and its reviewers (opening it is recorded in the audit log)."""

    relative_name: str | None
    place: str | None
    description: str | None
    consent_by: str | None
    consent_at: BeijingTime | None
    missing_material: str | None = Field(description="退回补材料时说明的缺少材料")
    reject_reason: str | None
    amount_reason: str | None
    gift: str | None
    standard_amount_fen: int = Field(validation_alias=AliasPath("rate", "amount_fen"))
    ceiling_fen: int = Field(validation_alias=AliasPath("rate", "ceiling_fen"))
    rate_version: int = Field(validation_alias=AliasPath("rate", "version"))
    details_erased_at: BeijingTime | None = Field(description="保存期满：附件与加密内容已删除，台账信息保留")
    attachments: list[AttachmentOut]
    history: list[StepOut]


def _summary(row: CondolenceRequest, model: type[RequestSummary] = RequestSummary) -> RequestSummary:
    return model.model_validate(row)


def attachment_out(attachment) -> AttachmentOut:
    return AttachmentOut.model_validate(Merged(attachment, filename=files.file_name(attachment)))


def sealed_download(attachment, data: bytes, ascii_prefix: str) -> Response:
    """A sealed file, opened, as a download under its typed name (and an ASCII one with its true extension)."""
    return file_download(io.BytesIO(data), files.file_name(attachment), attachment.content_type,
                         ascii_name=f"{ascii_prefix}-{attachment.id}{attachments.extension_of(attachment)}")


def _detail(row: CondolenceRequest) -> RequestDetail:
    """The duplicate hint is for reviewers only."""
    attached = [attachment_out(a) for a in row.attachments]
    hint = row.possible_duplicate_of_id if policy.reviews_condolence(g.staff, row) else None
    return RequestDetail.model_validate(Merged(row, **records.opened(row), attachments=attached,
                                               possible_duplicate_of_id=hint))


# --- members --------------------------------------------------------------------------------------------------

class TypeOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    name: str
    label: str
    subject: CondolenceSubject


class TypeList(BaseModel):
    items: list[TypeOut]
    relations: list[str] = Field(description="可选的亲属关系（本工会的规定）")


@bp.get("/condolences/types")
@endpoint("慰问类型（申请时选择）", response=TypeList, tags=("condolences",))
def types():
    relations = [label for relation, label in filing.RELATION_LABELS.items()
                 if relation is not Relation.PARENT_IN_LAW or filing.parents_in_law_count()]
    return TypeList(items=[TypeOut.model_validate(t) for t in rates.all_types()], relations=relations)


@bp.post("/condolences")
@endpoint("提交慰问申请（本人或直系亲属；之后上传材料）", body=RequestFields, response=RequestDetail, status=201,
          tags=("condolences",))
def file_own(body: RequestFields):
    return _detail(filing.file_own(g.staff, body))


@bp.get("/condolences")
@endpoint("我的慰问申请（我提交的和与我有关的）", response=RequestList, tags=("condolences",))
def mine():
    return RequestList(items=[_summary(r) for r in filing.mine(g.staff)])


@bp.get("/condolences/<int:request_id>")
@endpoint("慰问申请详情（仅申请人、当事人和负责审核的工会干部可见；查看会被记录）", response=RequestDetail,
          tags=("condolences",))
def detail(request_id: int):
    return _detail(records.read_request(g.staff, request_id))


@bp.post("/condolences/<int:request_id>/attachments")
@endpoint("上传申请材料（发票、病历首页、出院记录、死亡证明等；图片或 PDF，multipart 字段名 file）",
          response=AttachmentOut, status=201, tags=("condolences",), upload="file")
def upload(request_id: int):
    return attachment_out(filing.attach(g.staff, request_id, *uploaded_file()))


@bp.get("/condolences/<int:request_id>/attachments/<int:file_id>")
@endpoint("下载申请材料（查看会被记录）", tags=("condolences",))
def download(request_id: int, file_id: int):
    return sealed_download(*filing.read_file(g.staff, request_id, file_id), f"condolence-{request_id}")


@bp.post("/condolences/<int:request_id>/resubmit")
@endpoint("补充材料后重新提交", body=ResubmitFields, response=RequestDetail, tags=("condolences",))
def resubmit(request_id: int, body: ResubmitFields):
    return _detail(filing.resubmit(g.staff, request_id, body))


@bp.post("/condolences/<int:request_id>/withdraw")
@endpoint("撤回申请（批准之前）", response=RequestSummary, tags=("condolences",))
def withdraw(request_id: int):
    return _summary(filing.withdraw(g.staff, request_id))


# --- reviewers --------------------------------------------------------------------------------------------------

class ReviewerQuery(BaseModel):
    status: CondolenceStatus | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=50, ge=1, le=200)


@bp.get("/officer/condolences")
@endpoint("慰问申请（按管理范围；不含加密内容）", auth=OFFICER, query=ReviewerQuery, response=ReviewerPage,
          tags=("officer",))
def reviewer_list(query: ReviewerQuery):
    rows, total = filing.for_reviewers(g.staff, query.status, query.page, query.page_size)
    return ReviewerPage(items=[_summary(r, ReviewerSummary) for r in rows], total=total, page=query.page)


@bp.post("/officer/condolences")
@endpoint("代会员提交慰问申请（须记录本人或家属同意及时间）", auth=OFFICER, body=OfficerRequestFields,
          response=RequestDetail, status=201, tags=("officer",))
def file_for_member(body: OfficerRequestFields):
    return _detail(filing.file_for_member(g.staff, body))


@bp.post("/officer/condolences/<int:request_id>/verify")
@endpoint("核实（会员所在分工会；分工会无人可核实时由校工会）", auth=OFFICER, response=RequestSummary,
          tags=("officer",))
def verify(request_id: int):
    return _summary(review.verify(g.staff, request_id))


@bp.post("/officer/condolences/<int:request_id>/return")
@endpoint("退回补材料（说明缺少的材料）", auth=OFFICER, body=ReturnFields, response=RequestSummary, tags=("officer",))
def return_for_material(request_id: int, body: ReturnFields):
    return _summary(review.return_for_material(g.staff, request_id, body))


@bp.post("/officer/condolences/<int:request_id>/approve")
@endpoint("批准（校工会；默认标准金额，慰问金或慰问品）", auth=OFFICER, body=ApproveFields, response=RequestSummary,
          tags=("officer",))
def approve(request_id: int, body: ApproveFields):
    return _summary(review.approve(g.staff, request_id, body))


@bp.post("/officer/condolences/<int:request_id>/reject")
@endpoint("不予批准（说明原因）", auth=OFFICER, body=RejectFields, response=RequestSummary, tags=("officer",))
def reject(request_id: int, body: RejectFields):
    return _summary(review.reject(g.staff, request_id, body))


# --- rates ------------------------------------------------------------------------------------------------------

class RateOut(BaseModel):
    model_config = READS_RECORDS
    type_id: int
    type_name: str = Field(validation_alias=AliasPath("type", "name"))
    label: str = Field(validation_alias=AliasPath("type", "label"))
    member_category: MemberCategory = Field(validation_alias="category")
    version: int
    amount_fen: int
    ceiling_fen: int
    times_per_year: int
    effective_from: date


class RateList(BaseModel):
    in_force: list[RateOut] = Field(description="今天适用的标准")
    history: list[RateOut] = Field(description="全部版本")


class CreatedType(TypeOut):
    never_disclosed: bool


@bp.get("/officer/condolence-rates")
@endpoint("慰问标准（现行与历史版本）", auth=OFFICER, response=RateList, tags=("officer",))
def rate_list():
    return RateList(in_force=[RateOut.model_validate(r) for r in rates.rates_in_force()],
                    history=[RateOut.model_validate(r) for r in rates.rate_history()])


@bp.put("/officer/condolence-rates")
@endpoint("修改慰问标准（系统管理员；生成新版本，自 effective_from 起发生的事件适用）", auth=OFFICER, body=RateFields,
          response=RateOut, tags=("officer",))
def set_rate(body: RateFields):
    return RateOut.model_validate(rates.set_rate(g.staff, body))


@bp.post("/officer/condolence-types")
@endpoint("新增慰问类型（系统管理员；再为它设定标准）", auth=OFFICER, body=TypeFields, response=CreatedType,
          status=201, tags=("officer",))
def add_type(body: TypeFields):
    return CreatedType.model_validate(rates.add_type(g.staff, body))
