"""Mini-program login, binding and the caller's own profile (/me)."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, g, request
from pydantic import AliasPath, BaseModel, ConfigDict, Field, model_validator

from app.api.endpoint import READS_RECORDS, AuthLevel, Merged, endpoint
from app.services import auth, policy, roster
from app.services.principals import StaffCard
from models import BirthdayCalendar, Staff

bp = Blueprint("auth", __name__)


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "code:o-example"}]})
    code: str = Field(min_length=1, max_length=128, description="wx.login() 返回的 code")


class BindIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    employee_no: str = Field(min_length=1, max_length=32, description="工号")
    name: str = Field(min_length=1, max_length=64, description="姓名")
    phone_code: str | None = Field(default=None, max_length=256, description="getPhoneNumber 按钮返回的 code")
    bind_code: str | None = Field(default=None, max_length=16, description="工会发放的一次性绑定码")

    @model_validator(mode="after")
    def _one_proof(self):
        if not (self.phone_code or self.bind_code):
            raise ValueError("phone_code 或 bind_code 必须提供一个")
        return self


class MeOut(BaseModel):
    model_config = READS_RECORDS
    employee_no: str
    name: str
    gender: str | None
    department: str
    sub_union: str | None = Field(default=None, validation_alias=AliasPath("sub_union", "name"))
    status: str
    birthday: date | None
    birthday_calendar: BirthdayCalendar
    phone: str | None = Field(description="脱敏手机号")
    roles: list[str]
    is_officer: bool


class LoginOut(BaseModel):
    token: str
    bound: bool
    me: MeOut | None = None


class MePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    birthday_calendar: BirthdayCalendar = Field(description="生日按公历 solar 或农历 lunar 过")


def mask_phone(phone: str | None) -> str | None:
    return f"{phone[:3]}****{phone[-4:]}" if phone and len(phone) >= 7 else phone


def me_out(staff: Staff | StaffCard) -> MeOut:
    return MeOut.model_validate(Merged(
        staff, gender=roster.GENDER_LABELS.get(staff.gender), status=roster.STATUS_LABELS[staff.status],
        phone=mask_phone(staff.phone), roles=sorted({r.role.value for r in staff.roles}),
        is_officer=policy.is_officer(staff)))


@bp.post("/auth/login")
@endpoint("小程序登录：用 wx.login 的 code 换取令牌", auth=AuthLevel.NONE, body=LoginIn, response=LoginOut, limited=True,
          tags=("auth",))
def login(body: LoginIn):
    token, _identity, staff = auth.login(body.code, request.remote_addr or "")
    return LoginOut(token=token, bound=staff is not None, me=me_out(staff) if staff else None)


@bp.post("/auth/bind")
@endpoint("绑定教职工身份（工号、姓名与手机号或绑定码须一致）", auth=AuthLevel.WECHAT, body=BindIn, limited=True,
          response=LoginOut, tags=("auth",))
def bind(body: BindIn):
    token, staff = auth.bind(g.principal, body.employee_no, body.name, body.phone_code, body.bind_code,
                             request.remote_addr or "")
    return LoginOut(token=token, bound=True, me=me_out(staff))


@bp.get("/me")
@endpoint("我的资料", response=MeOut, tags=("me",))
def get_me():
    return me_out(g.member)


@bp.patch("/me")
@endpoint("修改我的设置（生日按公历或农历）", body=MePatch, response=MeOut, tags=("me",))
def patch_me(body: MePatch):
    roster.set_birthday_calendar(g.staff, body.birthday_calendar)
    return me_out(g.staff)
