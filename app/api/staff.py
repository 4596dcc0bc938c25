"""Officer endpoints for the roster: list, add, edit, roles, unbinding, bind codes, audience previews."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, current_app, g
from pydantic import AliasPath, BaseModel, ConfigDict, Field

from app.api.auth import mask_phone
from app.validation import Id
from app.api.endpoint import READS_RECORDS, AuthLevel, Merged, endpoint
from app.services import audiences, notifications, roster
from models import Staff

bp = Blueprint("staff", __name__)
OFFICER = AuthLevel.OFFICER


class StaffOut(BaseModel):
    model_config = READS_RECORDS
    employee_no: str
    name: str
    gender: str | None = Field(description="男 / 女")
    department: str
    sub_union_id: int | None
    sub_union: str | None = Field(default=None, validation_alias=AliasPath("sub_union", "name"))
    status: str = Field(description="在职 / 退休 / 离职")
    phone: str | None = Field(description="脱敏手机号")
    birthday: date | None
    died_on: date | None = None


class StaffPage(BaseModel):
    items: list[StaffOut]
    total: int
    page: int
    page_size: int


class StaffQuery(BaseModel):
    q: str = Field(default="", max_length=64, description="工号或姓名")
    sub_union_id: int | None = None
    status: roster.StatusChoice | None = None
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=20, ge=1, le=100)


class StaffCreate(roster.StaffFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{"employee_no": "000123", "name": "王老师",
                                                               "sub_union": "机关分工会", "phone": "13900000000"}]})
    employee_no: str = Field(pattern=roster.EMPLOYEE_NO_PATTERN, description="工号（保留前导零）")


class StaffPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra={"examples": [{"department": "外国语学院"}]})
    # Fields left out stay as they are; an explicit null is refused (422), except to clear phone or birthday.
    name: str = Field(default=None, min_length=1, max_length=64)
    department: str = Field(default=None, max_length=128)
    sub_union: str = Field(default=None, max_length=64)
    phone: roster.Phone = None
    status: roster.StatusChoice = None
    birthday: date | None = None
    died_on: date | None = Field(default=None, description="去世日期：此后不再发送任何通知、不发生日券，微信解绑")


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"role": "sub_union_officer", "sub_union_id": 1}]})
    role: roster.RoleChoice
    sub_union_id: Id | None = None


class Done(BaseModel):
    changed: bool


class BindCodeOut(BaseModel):
    code: str = Field(description="一次性绑定码，仅显示这一次")
    valid_days: int


class SubUnionOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    name: str
    kind: str


class AudienceIn(BaseModel):
    audience: audiences.Audience


class AudiencePreview(BaseModel):
    count: int
    description: str


def staff_out(staff: Staff) -> StaffOut:
    return StaffOut.model_validate(Merged(staff, gender=roster.GENDER_LABELS.get(staff.gender),
                                          status=roster.STATUS_LABELS[staff.status], phone=mask_phone(staff.phone)))


@bp.get("/officer/staff")
@endpoint("教职工名册（按管理范围）", auth=OFFICER, query=StaffQuery, response=StaffPage, tags=("officer",))
def list_staff(query: StaffQuery):
    rows, total = roster.list_staff(g.staff, query.q, query.sub_union_id, query.status, query.page,
                                    query.page_size)
    return StaffPage(items=[staff_out(s) for s in rows], total=total, page=query.page, page_size=query.page_size)


@bp.post("/officer/staff")
@endpoint("新增教职工", auth=OFFICER, body=StaffCreate, response=StaffOut, status=201, tags=("officer",))
def create_staff(body: StaffCreate):
    fields = roster.StaffFields(**body.model_dump(exclude={"employee_no"}))
    return staff_out(roster.create_staff(g.staff, body.employee_no, fields))


@bp.patch("/officer/staff/<employee_no>")
@endpoint("修改教职工信息", auth=OFFICER, body=StaffPatch, response=StaffOut, tags=("officer",))
def edit_staff(employee_no: str, body: StaffPatch):
    return staff_out(roster.edit_staff(g.staff, employee_no, body.model_dump(exclude_unset=True)))


@bp.post("/officer/staff/<employee_no>/roles/grant")
@endpoint("授予分工会干部角色", auth=OFFICER, body=RoleChange, response=Done, tags=("officer",))
def grant_role(employee_no: str, body: RoleChange):
    return Done(changed=roster.change_role(g.staff, employee_no, body.role, body.sub_union_id, grant=True))


@bp.post("/officer/staff/<employee_no>/roles/revoke")
@endpoint("撤销分工会干部角色", auth=OFFICER, body=RoleChange, response=Done, tags=("officer",))
def revoke_role(employee_no: str, body: RoleChange):
    return Done(changed=roster.change_role(g.staff, employee_no, body.role, body.sub_union_id, grant=False))


@bp.post("/officer/staff/<employee_no>/unbind")
@endpoint("解除教职工的微信绑定", auth=OFFICER, response=Done, tags=("officer",))
def unbind(employee_no: str):
    return Done(changed=roster.unbind(roster.get_staff(employee_no), actor=g.staff))


@bp.post("/officer/staff/<employee_no>/bind-code")
@endpoint("为无手机号的教职工生成一次性绑定码", auth=OFFICER, response=BindCodeOut, status=201, tags=("officer",),
          limited=True)
def issue_bind_code(employee_no: str):
    code = roster.issue_bind_code(roster.get_staff(employee_no), actor=g.staff)
    return BindCodeOut(code=code, valid_days=current_app.config["SU"].auth.bind_code_ttl_seconds // 86400)


@bp.get("/officer/sub-unions")
@endpoint("分工会列表", auth=OFFICER, tags=("officer",))
def list_sub_unions():
    items = [SubUnionOut.model_validate(s).model_dump(mode="json") for s in roster.list_sub_unions()]
    return {"items": items}


@bp.post("/officer/audiences/preview")
@endpoint("预览受众人数", auth=OFFICER, body=AudienceIn, response=AudiencePreview, tags=("officer",))
def preview_audience(body: AudienceIn):
    count, description = notifications.preview_audience(g.staff, body.audience)
    return AudiencePreview(count=count, description=description)
