"""Condolences, part 2 (union officers): monthly payment batches for finance, gifts delivered, the ledger, the
figures, the quarter's 公示 draft and what each type discloses."""

from __future__ import annotations

import io
from datetime import date

from flask import Blueprint, g
from pydantic import AliasPath, BaseModel, ConfigDict, Field, computed_field, model_validator

from app.api.condolences import CreatedType, RequestSummary
from app.api.endpoint import READS_RECORDS, AuthLevel, XLSX, endpoint, file_download, never_cached
from app.services.condolences import disclosures, payments, rates
from app.services.condolences.disclosures import QuarterFields
from app.services.condolences.payments import DeliveryFields, PaidFields
from app.services.condolences.rates import TypeChanges
from app.validation import BeijingTime
from models import BatchStatus, PaymentMethod

bp = Blueprint("condolence_payments", __name__)
OFFICER = AuthLevel.OFFICER

never_cached(bp)


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"month": "2027-03"}]})
    month: str = Field(pattern=r"^20\d\d-(0[1-9]|1[0-2])$", description="月份 YYYY-MM（在当月结算日当天或之后结算）")


class BatchOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    month: str
    status: BatchStatus
    cut_off_at: BeijingTime = Field(description="批准时间早于此刻的慰问金进入本批")
    count: int
    total_fen: int
    closed_at: BeijingTime
    paid_on: date | None
    method: PaymentMethod | None
    handled_by: str | None = Field(description="经办人")

    @computed_field
    @property
    def status_label(self) -> str:
        return "已发放" if self.status is BatchStatus.PAID else "已结算，待发放"

    @computed_field
    @property
    def method_label(self) -> str | None:
        return payments.METHOD_LABELS[self.method] if self.method else None


class TotalOut(BaseModel):
    model_config = READS_RECORDS
    name: str
    count: int
    total_fen: int


class LineOut(BaseModel):
    model_config = READS_RECORDS
    employee_no: str
    name: str
    sub_union: str
    type_name: str
    event_date: date
    decided_at: BeijingTime = Field(description="批准（或登记走访）的时间")
    amount_fen: int


class BatchDetail(BatchOut):
    requests: list[RequestSummary] = Field(description="本批的慰问申请")
    lines: list[LineOut] = Field(description="本批的全部发放：慰问申请，以及走访时垫付需报销的慰问金")
    by_type: list[TotalOut]
    by_sub_union: list[TotalOut]


class BatchList(BaseModel):
    items: list[BatchOut]


class PeriodQuery(BaseModel):
    start: date = Field(description="开始日期（含）")
    end: date = Field(description="结束日期（含）")

    @model_validator(mode="after")
    def _ordered(self):
        if self.end < self.start:
            raise ValueError("结束日期不能早于开始日期")
        return self


class FiguresOut(BaseModel):
    model_config = READS_RECORDS
    count: int
    total_fen: int
    by_type: list[TotalOut]
    by_sub_union: list[TotalOut]


class DraftOut(BaseModel):
    model_config = READS_RECORDS
    announcement_id: int = Field(validation_alias=AliasPath("id"), description="公示草稿（公告）的编号：审核后发布")
    title: str
    body: str


def _detail(batch) -> BatchDetail:
    lines = payments.lines_of(batch)
    return BatchDetail.model_validate({
        **BatchOut.model_validate(batch).model_dump(),
        "requests": [RequestSummary.model_validate(r) for r in payments.batch_requests(batch)],
        "lines": lines, "by_type": payments.totals(lines, lambda line: line.type_name),
        "by_sub_union": payments.totals(lines, lambda line: line.sub_union)})


@bp.get("/officer/condolence-batches")
@endpoint("慰问金发放批次（校工会）", auth=OFFICER, response=BatchList, tags=("officer",))
def batch_list():
    return BatchList(items=[BatchOut.model_validate(b) for b in payments.all_batches(g.staff)])


@bp.post("/officer/condolence-batches")
@endpoint("结算某月的慰问金批次：截至结算日已批准、以慰问金发放的申请（校工会；每月一次）", auth=OFFICER, body=BatchIn,
          response=BatchDetail, status=201, tags=("officer",))
def close_batch(body: BatchIn):
    return _detail(payments.close_batch(g.staff, body.month))


@bp.get("/officer/condolence-batches/<int:batch_id>")
@endpoint("批次明细（按类型、按分工会合计）", auth=OFFICER, response=BatchDetail, tags=("officer",))
def batch_detail(batch_id: int):
    return _detail(payments.get_batch(g.staff, batch_id))


@bp.get("/officer/condolence-batches/<int:batch_id>.xlsx")
@endpoint("批次明细 Excel（交财务）", auth=OFFICER, tags=("officer",))
def batch_xlsx(batch_id: int):
    batch, data = payments.batch_xlsx(g.staff, batch_id)
    return file_download(io.BytesIO(data), f"慰问金-{batch.month}.xlsx", XLSX,
                         ascii_name=f"condolence-batch-{batch.month}.xlsx")


@bp.post("/officer/condolence-batches/<int:batch_id>/paid")
@endpoint("标记批次已发放（日期、现金/转账、经办人）：其中的申请随之办结，批次不再变更", auth=OFFICER, body=PaidFields,
          response=BatchOut, tags=("officer",))
def mark_paid(batch_id: int, body: PaidFields):
    return BatchOut.model_validate(payments.mark_paid(g.staff, batch_id, body))


@bp.post("/officer/condolences/<int:request_id>/delivered")
@endpoint("登记慰问品已送达：以慰问品发放的申请随之办结", auth=OFFICER, body=DeliveryFields, response=RequestSummary,
          tags=("officer",))
def delivered(request_id: int, body: DeliveryFields):
    return RequestSummary.model_validate(payments.record_delivery(g.staff, request_id, body))


@bp.get("/officer/condolence-ledger.xlsx")
@endpoint("慰问台账 Excel（按批准日期的区间）", auth=OFFICER, query=PeriodQuery, tags=("officer",))
def ledger(query: PeriodQuery):
    data = payments.ledger_xlsx(g.staff, query.start, query.end)
    return file_download(io.BytesIO(data), f"慰问台账-{query.start}至{query.end}.xlsx", XLSX,
                         ascii_name=f"condolence-ledger-{query.start}-{query.end}.xlsx")


@bp.get("/officer/condolence-figures")
@endpoint("慰问的年度数字（按发放或送达日期；按类型、按分工会）", auth=OFFICER, query=PeriodQuery, response=FiguresOut,
          tags=("officer",))
def figures(query: PeriodQuery):
    return FiguresOut.model_validate(payments.figures_for(g.staff, query.start, query.end))


@bp.post("/officer/condolence-disclosures")
@endpoint("起草季度慰问公示（一条发给全体会员的公告草稿，审核后按公告发布）", auth=OFFICER, body=QuarterFields,
          response=DraftOut, status=201, tags=("officer",))
def draft_disclosure(body: QuarterFields):
    return DraftOut.model_validate(disclosures.draft(g.staff, body))


@bp.patch("/officer/condolence-types/<int:type_id>")
@endpoint("修改慰问类型的公示名称、是否不公示（系统管理员）", auth=OFFICER, body=TypeChanges, response=CreatedType,
          tags=("officer",))
def change_type(type_id: int, body: TypeChanges):
    return CreatedType.model_validate(rates.change_type(g.staff, type_id, body))
