"""Mutual-aid claims (互助保障): union officers track them under /officer/mutual-aid-claims; a member reads their own
under /mutual-aid-claims. Answers are `Cache-Control: no-store`; sealed fields appear only in a claim's detail."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, g
from pydantic import AliasPath, BaseModel, Field, computed_field

from app.api.condolences import AttachmentOut, attachment_out, sealed_download
from app.api.endpoint import READS_RECORDS, AuthLevel, Merged, endpoint, never_cached, uploaded_file
from app.services.condolences import claims
from app.services.condolences.claims import ClaimFields, PaidFields, RefusedFields, SubmittedFields
from app.validation import BeijingTime
from models import ClaimStatus

bp = Blueprint("mutual_aid", __name__)
OFFICER = AuthLevel.OFFICER

never_cached(bp)


class ClaimOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    employee_no: str = Field(validation_alias=AliasPath("member", "employee_no"))
    name: str = Field(validation_alias=AliasPath("member", "name"))
    sub_union: str | None = Field(default=None, validation_alias=AliasPath("member", "sub_union", "name"))
    plan: str
    filed_on: date
    status: ClaimStatus
    submitted_on: date | None
    paid_on: date | None
    amount_paid_fen: int | None

    @computed_field
    @property
    def status_label(self) -> str:
        return claims.STATUS_LABELS[self.status]


class ClaimDetail(ClaimOut):
    description: str | None
    refusal: str | None = Field(description="未获赔付的原因")
    documents: list[AttachmentOut]
    created_at: BeijingTime
    details_erased_at: BeijingTime | None


class ClaimList(BaseModel):
    items: list[ClaimOut]


class ClaimQuery(BaseModel):
    status: ClaimStatus | None = None


def _detail(claim) -> ClaimDetail:
    documents = [attachment_out(d) for d in claim.documents]
    return ClaimDetail.model_validate(Merged(claim, **claims.opened(claim), documents=documents))


@bp.get("/mutual-aid-claims")
@endpoint("我的互助保障申请", response=ClaimList, tags=("condolences",))
def mine():
    return ClaimList(items=[ClaimOut.model_validate(c) for c in claims.mine(g.staff)])


@bp.get("/officer/mutual-aid-claims")
@endpoint("互助保障申请（按管理范围；不含加密内容）", auth=OFFICER, query=ClaimQuery, response=ClaimList,
          tags=("officer",))
def officer_list(query: ClaimQuery):
    return ClaimList(items=[ClaimOut.model_validate(c) for c in claims.for_officer(g.staff, query.status)])


@bp.post("/officer/mutual-aid-claims")
@endpoint("为会员登记互助保障申请（校工会）", auth=OFFICER, body=ClaimFields, response=ClaimDetail, status=201,
          tags=("officer",))
def file_claim(body: ClaimFields):
    return _detail(claims.file_claim(g.staff, body))


@bp.get("/mutual-aid-claims/<int:claim_id>")
@endpoint("互助保障申请详情（本人、所在分工会和校工会的工会干部可见；查看会被记录）", response=ClaimDetail,
          tags=("condolences",))
def detail(claim_id: int):
    return _detail(claims.read_claim(g.staff, claim_id))


@bp.post("/officer/mutual-aid-claims/<int:claim_id>/documents")
@endpoint("上传申请材料（图片或 PDF，multipart 字段名 file；校工会）", auth=OFFICER, response=AttachmentOut, status=201,
          tags=("officer",), upload="file")
def upload(claim_id: int):
    return attachment_out(claims.add_document(g.staff, claim_id, *uploaded_file()))


@bp.get("/mutual-aid-claims/<int:claim_id>/documents/<int:file_id>")
@endpoint("下载申请材料（查看会被记录）", tags=("condolences",))
def download(claim_id: int, file_id: int):
    return sealed_download(*claims.read_document(g.staff, claim_id, file_id), f"claim-{claim_id}")


@bp.post("/officer/mutual-aid-claims/<int:claim_id>/submitted")
@endpoint("已报送市总工会", auth=OFFICER, body=SubmittedFields, response=ClaimOut, tags=("officer",))
def submitted(claim_id: int, body: SubmittedFields):
    return ClaimOut.model_validate(claims.submitted(g.staff, claim_id, body))


@bp.post("/officer/mutual-aid-claims/<int:claim_id>/paid")
@endpoint("已赔付（日期与金额）", auth=OFFICER, body=PaidFields, response=ClaimOut, tags=("officer",))
def paid(claim_id: int, body: PaidFields):
    return ClaimOut.model_validate(claims.paid(g.staff, claim_id, body))


@bp.post("/officer/mutual-aid-claims/<int:claim_id>/refused")
@endpoint("未获赔付（日期与原因）", auth=OFFICER, body=RefusedFields, response=ClaimOut, tags=("officer",))
def refused(claim_id: int, body: RefusedFields):
    return ClaimOut.model_validate(claims.refused(g.staff, claim_id, body))
