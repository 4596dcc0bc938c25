"""The bakery's counter: cashiers' routes under /cashier, officers' under /officer/merchants."""

from __future__ import annotations

import io

from flask import Blueprint, g, request
from pydantic import AliasPath, BaseModel, ConfigDict, Field, computed_field

from app.validation import BeijingTime
from app.api.endpoint import READS_RECORDS, AuthLevel, Merged, endpoint, file_download, XLSX
from app.services import merchants, redemptions, statements, vouchers
from app.services.merchants import MerchantIn

bp = Blueprint("merchants", __name__)
CASHIER, OFFICER = AuthLevel.CASHIER, AuthLevel.OFFICER


# --- cashiers ------------------------------------------------------------------------------------------------------

class CashierBindIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra={"examples": [{"code": "工会发放的收银员绑定码"}]})
    code: str = Field(min_length=1, max_length=64, description="工会发放的一次性收银员绑定码")


class CashierOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    name: str
    shop: str
    merchant: str = Field(validation_alias=AliasPath("merchant", "name"))
    revoked_at: BeijingTime | None = None


class CashierLoginOut(BaseModel):
    token: str
    cashier: CashierOut


class RedeemIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "23456789AB"}]})
    code: str = Field(min_length=1, max_length=200, description="扫码得到的二维码内容，或手工输入的短码 / 纸质券码")


class RedeemedOut(BaseModel):
    model_config = READS_RECORDS
    voucher_id: int = Field(validation_alias="id")
    holder: str = Field(description="持券人（脱敏）")
    face_value_fen: int
    merchant: str
    redeemed_shop: str
    redeemed_at: BeijingTime

    @computed_field
    @property
    def face_value(self) -> str:
        return f"{vouchers.yuan(self.face_value_fen)} 元"


class RedeemedList(BaseModel):
    items: list[RedeemedOut]


def redeemed_out(voucher) -> RedeemedOut:
    return RedeemedOut.model_validate(Merged(voucher, holder=redemptions.mask_name(voucher.staff.name)))


@bp.post("/cashier/bind")
@endpoint("收银员绑定：用工会发放的一次性绑定码把本人微信绑定为门店收银员", auth=AuthLevel.WECHAT,
          body=CashierBindIn, response=CashierLoginOut, limited=True, tags=("cashier",))
def bind(body: CashierBindIn):
    token, cashier = merchants.bind_cashier(g.principal, body.code, request.remote_addr or "")
    return CashierLoginOut(token=token, cashier=CashierOut.model_validate(cashier))


@bp.get("/cashier/me")
@endpoint("收银员本人：商户与门店", auth=CASHIER, response=CashierOut, tags=("cashier",))
def me():
    return CashierOut.model_validate(g.cashier)


@bp.post("/cashier/redeem")
@endpoint("核销生日蛋糕券（扫码或输入短码）：一张券只能核销一次", auth=CASHIER, body=RedeemIn,
          response=RedeemedOut, limited=True, tags=("cashier",))
def redeem(body: RedeemIn):
    result = redemptions.redeem(g.cashier, body.code)
    return redeemed_out(result.voucher)


@bp.get("/cashier/redemptions/today")
@endpoint("本门店今天的核销记录", auth=CASHIER, response=RedeemedList, tags=("cashier",))
def today():
    return RedeemedList(items=[redeemed_out(v) for v in redemptions.todays_redemptions(g.cashier)])


# --- officers ----------------------------------------------------------------------------------------------------

class MerchantOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    name: str
    shops: list[str]
    active: bool


class MerchantList(BaseModel):
    items: list[MerchantOut]


class CashierCodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra={"examples": [{"shop": "学院路店", "name": "收银员小王"}]})
    shop: str = Field(min_length=1, max_length=100)
    name: str = Field(min_length=1, max_length=64, description="收银员称呼")


class CashierCodeOut(BaseModel):
    code: str = Field(description="一次性绑定码（24 小时内有效），只显示这一次")


class CashierList(BaseModel):
    items: list[CashierOut]


@bp.get("/officer/merchants")
@endpoint("商户（蛋糕店）列表", auth=OFFICER, response=MerchantList, tags=("officer",))
def list_merchants():
    return MerchantList(items=[MerchantOut.model_validate(m) for m in merchants.list_merchants(g.staff)])


@bp.post("/officer/merchants")
@endpoint("新增商户（校工会）", auth=OFFICER, body=MerchantIn, response=MerchantOut, status=201, tags=("officer",))
def create_merchant(body: MerchantIn):
    return MerchantOut.model_validate(merchants.create_merchant(g.staff, body))


@bp.post("/officer/merchants/<int:merchant_id>/deactivate")
@endpoint("停用商户：其收银员立即无法使用（校工会）", auth=OFFICER, response=MerchantOut, tags=("officer",))
def deactivate(merchant_id: int):
    return MerchantOut.model_validate(merchants.deactivate(g.staff, merchant_id))


@bp.post("/officer/merchants/<int:merchant_id>/cashier-codes")
@endpoint("为门店收银员生成一次性绑定码（校工会）", auth=OFFICER, body=CashierCodeIn, response=CashierCodeOut,
          status=201, tags=("officer",))
def cashier_code(merchant_id: int, body: CashierCodeIn):
    return CashierCodeOut(code=merchants.issue_cashier_code(g.staff, merchant_id, body.shop, body.name))


@bp.get("/officer/merchants/<int:merchant_id>/cashiers")
@endpoint("商户的收银员", auth=OFFICER, response=CashierList, tags=("officer",))
def cashiers(merchant_id: int):
    return CashierList(items=[CashierOut.model_validate(c) for c in merchants.list_cashiers(g.staff, merchant_id)])


@bp.post("/officer/merchants/<int:merchant_id>/cashiers/<int:cashier_id>/revoke")
@endpoint("撤销收银员：其下一次请求即被拒绝（校工会）", auth=OFFICER, response=CashierOut, tags=("officer",))
def revoke(merchant_id: int, cashier_id: int):
    return CashierOut.model_validate(merchants.revoke_cashier(g.staff, merchant_id, cashier_id))


# --- undo and the monthly statement -------------------------------------------------------------------------------

class StatementItemOut(BaseModel):
    model_config = READS_RECORDS
    voucher_id: int = Field(validation_alias="id")
    serial: str
    holder: str
    redeemed_shop: str
    redeemed_at: BeijingTime
    face_value_fen: int


class OfficerStatementItemOut(StatementItemOut):
    employee_no: str = Field(validation_alias=AliasPath("staff", "employee_no"))
    cost_fen: int


class StatementOut(BaseModel):
    merchant: str
    month: str
    closed: bool
    count: int
    face_value_fen: int
    items: list[StatementItemOut]


class OfficerStatementOut(StatementOut):
    cost_fen: int
    items: list[OfficerStatementItemOut]


def statement_out(found, model: type[StatementOut], item: type[StatementItemOut]) -> StatementOut:
    return model(merchant=found.merchant.name, month=found.month, closed=found.closed, count=found.count,
                 face_value_fen=found.face_value_fen, cost_fen=found.cost_fen,
                 items=[item.model_validate(Merged(v, holder=redemptions.mask_name(v.staff.name)))
                        for v in found.items])


@bp.post("/cashier/redemptions/<int:voucher_id>/undo")
@endpoint("撤销本人刚才的核销（限时一次；该月结算后不能撤销）", auth=CASHIER, response=RedeemedList,
          tags=("cashier",))
def cashier_undo(voucher_id: int):
    redemptions.undo(g.cashier, None, voucher_id)
    return RedeemedList(items=[redeemed_out(v) for v in redemptions.todays_redemptions(g.cashier)])


@bp.get("/cashier/statements/<month>")
@endpoint("本商户某月的核销对账单（YYYY-MM；只有面值）", auth=CASHIER, response=StatementOut, tags=("cashier",))
def cashier_statement(month: str):
    return statement_out(statements.for_cashier(g.cashier, month), StatementOut, StatementItemOut)


class UndoneOut(BaseModel):
    voucher_id: int
    status: str = Field(description="撤销后券恢复为有效（valid）")


@bp.post("/officer/vouchers/<int:voucher_id>/undo-redemption")
@endpoint("撤销一次核销（校工会；限时一次；该月结算后不能撤销）", auth=OFFICER, response=UndoneOut, tags=("officer",))
def officer_undo(voucher_id: int):
    voucher = redemptions.undo(None, g.staff, voucher_id)
    return UndoneOut(voucher_id=voucher.id, status=voucher.status.value)


@bp.get("/officer/merchants/<int:merchant_id>/statements/<month>")
@endpoint("商户某月的核销对账单（YYYY-MM）：张数、面值、成本与明细", auth=OFFICER, response=OfficerStatementOut,
          tags=("officer",))
def officer_statement(merchant_id: int, month: str):
    found = statements.for_officer(g.staff, merchant_id, month)
    return statement_out(found, OfficerStatementOut, OfficerStatementItemOut)


@bp.get("/officer/merchants/<int:merchant_id>/statements/<month>.xlsx")
@endpoint("导出商户某月的核销对账单（Excel）", auth=OFFICER, tags=("officer",))
def officer_statement_xlsx(merchant_id: int, month: str):
    found, data = statements.xlsx(g.staff, merchant_id, month)
    return file_download(io.BytesIO(data), f"核销对账单-{found.merchant.name}-{month}.xlsx",
                         XLSX,
                         ascii_name=f"statement-merchant-{merchant_id}-{month}.xlsx")


@bp.post("/officer/merchants/<int:merchant_id>/statements/<month>/close")
@endpoint("结算某月（校工会）：此后该月的核销不能再更改", auth=OFFICER, response=OfficerStatementOut,
          tags=("officer",))
def close_month(merchant_id: int, month: str):
    found = statements.close_month(g.staff, merchant_id, month)
    return statement_out(found, OfficerStatementOut, OfficerStatementItemOut)
