"""Birthday cake vouchers (生日蛋糕券): the holder's routes under /vouchers, officers' under /officer/vouchers and
/officer/voucher-policy."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, g
from pydantic import AliasPath, BaseModel, ConfigDict, Field, computed_field

from app.api.endpoint import READS_RECORDS, AuthLevel, Merged, endpoint, partial_of
from app.services import vouchers
from app.services.vouchers import STATUS_LABELS, PolicyFields
from app.validation import BeijingTime, whole
from models import IssueMode, VoucherStatus

bp = Blueprint("vouchers", __name__)
OFFICER = AuthLevel.OFFICER


class EventOut(BaseModel):
    model_config = READS_RECORDS
    action: str = Field(description="issued 发放 / shown 首次出示 / redeemed 使用 / expired 过期 / voided 作废")
    at: BeijingTime


class VoucherOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    year: int
    birthday: date
    serial: str
    status: VoucherStatus
    merchant: str
    face_value_fen: int
    issued_at: BeijingTime
    valid_until: BeijingTime
    printed: bool = Field(description="已打印为纸质券（小程序中不再出示）")

    @computed_field
    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]

    @computed_field
    @property
    def face_value(self) -> str:
        return f"{vouchers.yuan(self.face_value_fen)} 元"


class VoucherDetail(VoucherOut):
    history: list[EventOut]


class VoucherList(BaseModel):
    items: list[VoucherOut]


class ShownOut(BaseModel):
    short_code: str = Field(description="收银员可手工输入的短码（10 位，不含 0/O、1/I/L）")
    token: str = Field(description="二维码内容")
    qr_url: str
    expires_at: BeijingTime = Field(description="到期后请重新获取（小程序在页面打开时自动刷新）")


def voucher_out(voucher, model: type[VoucherOut] = VoucherOut) -> VoucherOut:
    return model.model_validate(Merged(voucher, printed=voucher.printed_at is not None))


# --- the holder ----------------------------------------------------------------------------------------------------

@bp.get("/vouchers")
@endpoint("我的生日蛋糕券（有效 / 已使用 / 已过期 / 已作废）", response=VoucherList, tags=("vouchers",))
def my_vouchers():
    return VoucherList(items=[voucher_out(v) for v in vouchers.my_vouchers(g.staff)])


@bp.get("/vouchers/<int:voucher_id>")
@endpoint("生日蛋糕券详情与记录", response=VoucherDetail, tags=("vouchers",))
def detail(voucher_id: int):
    return voucher_out(vouchers.voucher_for(g.staff, voucher_id), VoucherDetail)


@bp.post("/vouchers/<int:voucher_id>/show")
@endpoint("出示：取得二维码内容和短码（约两分钟内有效，请在页面打开时定时刷新）", response=ShownOut,
          tags=("vouchers",))
def show(voucher_id: int):
    shown = vouchers.show(g.staff, voucher_id)
    return ShownOut(short_code=shown.short_code, token=shown.token, expires_at=shown.expires_at,
                    qr_url=f"/api/v1/vouchers/{voucher_id}/qr.svg")


@bp.get("/vouchers/<int:voucher_id>/qr.svg")
@endpoint("出示用的二维码图片（SVG，约两分钟内有效）", tags=("vouchers",))
def qr(voucher_id: int):
    response = Response(vouchers.qr_svg(g.staff, voucher_id), mimetype="image/svg+xml")
    response.headers["Cache-Control"] = "no-store"
    return response


# --- officers ----------------------------------------------------------------------------------------------------

class OfficerVoucherOut(VoucherOut):
    employee_no: str = Field(validation_alias=AliasPath("staff", "employee_no"))
    name: str = Field(validation_alias=AliasPath("staff", "name"))
    sub_union_id: int | None = Field(default=None, validation_alias=AliasPath("staff", "sub_union_id"))
    cost_fen: int
    void_reason: str | None


class OfficerVoucherPage(BaseModel):
    items: list[OfficerVoucherOut]
    total: int
    page: int


class VouchersQuery(BaseModel):
    year: int | None = Field(default=None, ge=2000, le=2099)
    sub_union_id: int | None = Field(default=None, ge=1)
    status: VoucherStatus | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=50, ge=1, le=200)


class VoidIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra={"examples": [{"reason": "重复发放"}]})
    reason: str = Field(min_length=1, max_length=200, description="作废原因")


class PolicyOut(BaseModel):
    model_config = READS_RECORDS
    version: int
    face_value_fen: int
    cost_fen: int
    merchant: str
    issue_mode: IssueMode
    issue_days_before: int
    valid_days: int
    retirees_eligible: bool
    yearly_cap_fen: int
    created_at: BeijingTime


PolicyPatch = partial_of(PolicyFields, "VoucherPolicyPatch", "Fields left out keep the policy's current values.")


class SummaryQuery(BaseModel):
    year: int = Field(ge=2000, le=2099, description="年度")


class SummaryOut(BaseModel):
    issued: int
    valid: int
    redeemed: int
    expired: int
    void: int
    face_value_fen: int
    cost_fen: int


@bp.get("/officer/vouchers")
@endpoint("生日蛋糕券（按年度、分工会、状态筛选；按管理范围）", auth=OFFICER, query=VouchersQuery,
          response=OfficerVoucherPage, tags=("officer",))
def officer_list(query: VouchersQuery):
    rows, total = vouchers.list_for_officer(g.staff, query.year, query.sub_union_id, query.status, query.page,
                                            query.page_size)
    return OfficerVoucherPage(items=[voucher_out(v, OfficerVoucherOut) for v in rows], total=total, page=query.page)


@bp.post("/officer/vouchers/<int:voucher_id>/void")
@endpoint("作废一张未使用的生日蛋糕券（校工会）", auth=OFFICER, body=VoidIn, response=OfficerVoucherOut,
          tags=("officer",))
def void(voucher_id: int, body: VoidIn):
    return voucher_out(vouchers.void(g.staff, voucher_id, body.reason), OfficerVoucherOut)


@bp.get("/officer/vouchers/summary")
@endpoint("年度统计：发放、使用、过期、作废张数，面值与费用", auth=OFFICER, query=SummaryQuery, response=SummaryOut,
          tags=("officer",))
def summary(query: SummaryQuery):
    return SummaryOut(**vouchers.yearly_summary(g.staff, query.year))


@bp.get("/officer/voucher-policy")
@endpoint("当前的生日蛋糕券政策", auth=OFFICER, response=PolicyOut, tags=("officer",))
def current_policy():
    return PolicyOut.model_validate(vouchers.current_policy())


@bp.put("/officer/voucher-policy")
@endpoint("修改生日蛋糕券政策（校工会；生成新版本，已发放的券不变）", auth=OFFICER, body=PolicyPatch,
          response=PolicyOut, tags=("officer",))
def change_policy(body: PolicyPatch):
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return PolicyOut.model_validate(vouchers.change_policy(g.staff, changes))


class ReissueIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra={"examples": [{"reason": "会员遗失，核实后补发"}]})
    reason: str = Field(min_length=1, max_length=200, description="补发原因")


class PrintedOut(BaseModel):
    printed_code: str = Field(description="纸质券的一次性券码，只显示这一次；打印后小程序不再出示该券")


class MoveIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"year": 2026}]})
    year: whole(ge=2000, le=2099) = Field(description="年度")


class MovedOut(BaseModel):
    moved: int


@bp.post("/officer/vouchers/<int:voucher_id>/reissue")
@endpoint("补发：已作废或已过期的券换新券号重新生效（校工会；已使用的券不能补发）", auth=OFFICER, body=ReissueIn,
          response=OfficerVoucherOut, tags=("officer",))
def reissue(voucher_id: int, body: ReissueIn):
    return voucher_out(vouchers.reissue(g.staff, voucher_id, body.reason), OfficerVoucherOut)


@bp.post("/officer/vouchers/<int:voucher_id>/print")
@endpoint("打印纸质券（给不用微信的会员）：返回一次性券码", auth=OFFICER, response=PrintedOut, status=201,
          tags=("officer",))
def print_voucher(voucher_id: int):
    return PrintedOut(printed_code=vouchers.print_voucher(g.staff, voucher_id))


@bp.post("/officer/vouchers/move-to-current-merchant")
@endpoint("指定蛋糕店变更后：把该年度未使用的券全部改发到现行政策的蛋糕店（校工会）", auth=OFFICER, body=MoveIn,
          response=MovedOut, tags=("officer",))
def move_to_current_merchant(body: MoveIn):
    return MovedOut(moved=vouchers.move_to_current_merchant(g.staff, body.year))
