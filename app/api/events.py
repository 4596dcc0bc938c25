"""Events (活动报名): staff routes under /events, officer routes under /officer/events.

Responses read the records themselves (`from_attributes`); what is computed beside a record (seats left, a place
in the waiting list, counts) comes in through `Merged`.
"""

from __future__ import annotations

import functools
import io

from flask import Blueprint, g
from pydantic import AliasPath, BaseModel, ConfigDict, Field, computed_field

from app.validation import BeijingTime
from app.api.endpoint import (
    READS_RECORDS, AfterCommit, AuthLevel, Merged, XLSX, endpoint, file_download, partial_of,
)
from app.services.audiences import Audience
from app.services.events import cards, checkin, lifecycle, seats, signup_lists
from app.services.events.records import (
    CATEGORY_LABELS, PHASE_LABELS, SIGNUP_LABELS, STATUS_LABELS, EventFields, Question, current_phase,
)
from models import Event, EventCategory, EventStatus, Signup, SignupStatus

bp = Blueprint("events", __name__)
OFFICER = AuthLevel.OFFICER


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: dict[str, str] = Field(default_factory=dict, max_length=20, description="报名题目标识 → 回答")


class MySignupOut(BaseModel):
    model_config = READS_RECORDS
    status: SignupStatus
    position: int | None = Field(description="候补顺位（1 表示下一个递补）")
    answers: dict[str, str]
    signed_up_at: BeijingTime
    cancelled_at: BeijingTime | None
    checked_in_at: BeijingTime | None
    checkin_code: str | None = Field(description="签到码（报名成功时提供，小程序显示为二维码）")

    @computed_field
    @property
    def status_label(self) -> str:
        return SIGNUP_LABELS[self.status]


class EventBasics(BaseModel):
    """What staff and officers both see of an event."""

    model_config = READS_RECORDS
    id: int
    title: str
    category: EventCategory
    place: str
    starts_at: BeijingTime
    ends_at: BeijingTime
    signup_opens_at: BeijingTime
    signup_closes_at: BeijingTime
    cancel_deadline: BeijingTime | None
    capacity: int
    waitlist_enabled: bool

    @computed_field
    @property
    def category_label(self) -> str:
        return CATEGORY_LABELS[self.category]


class EventCardOut(EventBasics):
    seats_left: int = Field(description="剩余名额（按分工会分配时为本分工会剩余名额）")
    phase: str = Field(description="upcoming / open / closed / started / finished / cancelled")
    my_signup: MySignupOut | None

    @computed_field
    @property
    def phase_label(self) -> str:
        return PHASE_LABELS[self.phase]


class EventDetailOut(EventCardOut):
    description: str
    questions: list[Question]
    eligible: bool = Field(description="我是否在报名范围内")


class EventCardList(BaseModel):
    items: list[EventCardOut]


def my_signup_out(signup: Signup | None, position: int | None) -> MySignupOut | None:
    if signup is None:
        return None
    return MySignupOut.model_validate(Merged(signup, position=position, answers=signup.answers or {},
                                             checkin_code=checkin.checkin_code(signup)))


def card_out(card: cards.EventCard, model: type[EventCardOut] = EventCardOut) -> EventCardOut:
    return model.model_validate(Merged(card.event, seats_left=card.seats_left, phase=card.phase,
                                       eligible=card.eligible, my_signup=my_signup_out(card.signup, card.position)))


# --- staff -------------------------------------------------------------------------------------------------------

@bp.get("/events")
@endpoint("可报名的活动（面向我的、尚未结束的活动，含我的报名状态与剩余名额）", response=EventCardList,
          tags=("events",))
def list_events():
    return EventCardList(items=[card_out(c) for c in cards.events_for(g.member)])


@bp.get("/events/mine")
@endpoint("我的报名（含已取消的）", response=EventCardList, tags=("events",))
def my_events():
    return EventCardList(items=[card_out(c) for c in cards.my_signups(g.member)])


@bp.get("/events/<int:event_id>")
@endpoint("活动详情", response=EventDetailOut, tags=("events",))
def event_detail(event_id: int):
    return card_out(cards.event_for(g.member, event_id), EventDetailOut)


@bp.post("/events/<int:event_id>/signup")
@endpoint("报名（重复提交仍是同一个报名；名额满时进入候补）", body=SignupIn, response=MySignupOut,
          tags=("events",))
def sign_up(event_id: int, body: SignupIn):
    placed = seats.sign_up(event_id, g.member, body.answers)
    shape = functools.partial(my_signup_out, placed.signup, placed.position)
    return AfterCommit(shape) if placed.plain else shape()


@bp.post("/events/<int:event_id>/cancel")
@endpoint("取消报名（取消截止时间前）；空出的名额立即由第一位候补递补", response=MySignupOut, tags=("events",))
def cancel(event_id: int):
    return my_signup_out(seats.cancel_signup(event_id, g.member), None)


# --- officers ----------------------------------------------------------------------------------------------------

EventPatch = partial_of(EventFields, "EventPatch", "Only the fields given change (null only for cancel_deadline).")


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notify: bool = Field(default=True, description="首次发布时通知受众（报名开始时送达）")


class CancelEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field(default="", max_length=200, description="取消原因，会告知已报名的人")


class CountsOut(BaseModel):
    model_config = READS_RECORDS
    confirmed: int
    waitlisted: int
    cancelled: int
    attended: int


class QuotaOut(BaseModel):
    model_config = READS_RECORDS
    sub_union_id: int
    sub_union: str = Field(validation_alias=AliasPath("sub_union", "name"))
    places: int
    confirmed: int = Field(validation_alias="confirmed_count")
    waitlisted: int = Field(validation_alias="waitlisted_count")


class OfficerEventOut(EventBasics):
    description: str
    quotas: list[QuotaOut]
    audience: Audience
    questions: list[Question]
    status: EventStatus
    phase: str
    published_at: BeijingTime | None
    cancel_reason: str | None
    counts: CountsOut

    @computed_field
    @property
    def audience_description(self) -> str:
        return self.audience.describe()

    @computed_field
    @property
    def phase_label(self) -> str:
        return PHASE_LABELS[self.phase]

    @computed_field
    @property
    def status_label(self) -> str:
        return STATUS_LABELS[self.status]


class PublishedEventOut(OfficerEventOut):
    notice_id: int | None = Field(description="开始报名通知的编号，用于 /officer/notices/{notice_id}/report 查看送达；"
                                              "未通知受众时为空")


class OfficerEventList(BaseModel):
    items: list[OfficerEventOut]


class EventsQuery(BaseModel):
    status: EventStatus | None = None


class SignupRowOut(BaseModel):
    model_config = READS_RECORDS
    employee_no: str = Field(validation_alias=AliasPath("staff", "employee_no"))
    name: str = Field(validation_alias=AliasPath("staff", "name"))
    sub_union: str | None = Field(default=None, validation_alias=AliasPath("staff", "sub_union", "name"))
    department: str = Field(validation_alias=AliasPath("staff", "department"))
    status: SignupStatus
    position: int | None
    answers: dict[str, str]
    signed_up_at: BeijingTime
    checked_in_at: BeijingTime | None
    signed_up_by: str | None = Field(description="代报名的工作人员")

    @computed_field
    @property
    def status_label(self) -> str:
        return SIGNUP_LABELS[self.status]


class SignupListOut(BaseModel):
    counts: CountsOut
    items: list[SignupRowOut]


class SignupsQuery(BaseModel):
    status: SignupStatus | None = None


class ProxySignupIn(SignupIn):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"employee_no": "000123", "answers": {}}]})
    employee_no: str = Field(min_length=1, max_length=32)


class ProxySignupOut(BaseModel):
    employee_no: str
    name: str
    signup: MySignupOut


class CheckInIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"code": "扫描报名二维码得到的签到码"}]})
    code: str = Field(min_length=1, max_length=300, description="扫描报名二维码得到的签到码")


class CheckInOut(BaseModel):
    model_config = READS_RECORDS
    first_time: bool = Field(description="false 表示此前已签到（重复扫码无影响）")
    employee_no: str = Field(validation_alias=AliasPath("staff", "employee_no"))
    name: str = Field(validation_alias=AliasPath("staff", "name"))
    sub_union: str | None = Field(default=None, validation_alias=AliasPath("staff", "sub_union", "name"))
    checked_in_at: BeijingTime

    @computed_field
    @property
    def message(self) -> str:
        return f"{self.name} 签到成功" if self.first_time else f"{self.name} 已签到，无需重复扫码"


def officer_event_out(event: Event, counts: signup_lists.SignupCounts) -> OfficerEventOut:
    return OfficerEventOut.model_validate(Merged(event, phase=current_phase(event), counts=counts))


def _one(event: Event) -> OfficerEventOut:
    return officer_event_out(event, signup_lists.signup_counts([event.id])[event.id])


@bp.get("/officer/events")
@endpoint("活动列表（按管理范围），含报名人数", auth=OFFICER, query=EventsQuery, response=OfficerEventList,
          tags=("officer",))
def officer_list(query: EventsQuery):
    items = lifecycle.officer_events(g.staff, query.status)
    counts = signup_lists.signup_counts([e.id for e in items])
    return OfficerEventList(items=[officer_event_out(e, counts[e.id]) for e in items])


@bp.post("/officer/events")
@endpoint("创建活动（草稿）", auth=OFFICER, body=EventFields, response=OfficerEventOut, status=201,
          tags=("officer",))
def create(body: EventFields):
    return _one(lifecycle.create_event(g.staff, body))


@bp.get("/officer/events/<int:event_id>")
@endpoint("活动详情（工作人员）", auth=OFFICER, response=OfficerEventOut, tags=("officer",))
def officer_detail(event_id: int):
    return _one(lifecycle.get_for_officer(g.staff, event_id))


@bp.patch("/officer/events/<int:event_id>")
@endpoint("修改活动；减少名额不能少于已报名成功人数，增加名额立即递补候补", auth=OFFICER, body=EventPatch,
          response=OfficerEventOut, tags=("officer",))
def edit(event_id: int, body: EventPatch):
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return _one(lifecycle.edit_event(g.staff, event_id, changes))


@bp.post("/officer/events/<int:event_id>/publish")
@endpoint("发布活动（可通知受众）", auth=OFFICER, body=PublishIn, response=PublishedEventOut, tags=("officer",))
def publish(event_id: int, body: PublishIn):
    event = lifecycle.publish_event(g.staff, event_id, body.notify)
    counts = signup_lists.signup_counts([event.id])[event.id]
    return PublishedEventOut.model_validate(Merged(event, phase=current_phase(event), counts=counts,
                                                   notice_id=lifecycle.publication_notice_id(event)))


@bp.post("/officer/events/<int:event_id>/close")
@endpoint("提前截止报名", auth=OFFICER, response=OfficerEventOut, tags=("officer",))
def close(event_id: int):
    return _one(lifecycle.close_signup(g.staff, event_id))


@bp.post("/officer/events/<int:event_id>/cancel")
@endpoint("取消活动（通知所有已报名和候补的人）", auth=OFFICER, body=CancelEventIn, response=OfficerEventOut,
          tags=("officer",))
def cancel_event(event_id: int, body: CancelEventIn):
    return _one(lifecycle.cancel_event(g.staff, event_id, body.reason))


@bp.get("/officer/events/<int:event_id>/signups")
@endpoint("报名名单（含报名题目的回答）与人数统计", auth=OFFICER, query=SignupsQuery, response=SignupListOut,
          tags=("officer",))
def signup_list(event_id: int, query: SignupsQuery):
    event = lifecycle.get_for_officer(g.staff, event_id)
    rows = signup_lists.signup_rows(event, query.status)
    return SignupListOut(
        counts=CountsOut.model_validate(signup_lists.signup_counts([event.id])[event.id]),
        items=[SignupRowOut.model_validate(Merged(r.signup, position=r.position, answers=r.answers,
                                                  signed_up_by=r.proxy.name if r.proxy else None)) for r in rows])


@bp.get("/officer/events/<int:event_id>/signups.xlsx")
@endpoint("导出报名名单（Excel）", auth=OFFICER, tags=("officer",))
def export(event_id: int):
    event = lifecycle.get_for_officer(g.staff, event_id)
    data = signup_lists.export_xlsx(g.staff, event)
    return file_download(io.BytesIO(data), f"报名名单-{event.title}.xlsx",
                         XLSX,
                         ascii_name=f"signups-event-{event.id}.xlsx")


@bp.post("/officer/events/<int:event_id>/signups")
@endpoint("代报名（为不使用微信的会员报名）", auth=OFFICER, body=ProxySignupIn, response=ProxySignupOut,
          tags=("officer",))
def proxy_sign_up(event_id: int, body: ProxySignupIn):
    placed = signup_lists.sign_up_for(g.staff, event_id, body.employee_no, body.answers)
    return ProxySignupOut(employee_no=body.employee_no, name=placed.signup.staff.name,
                          signup=my_signup_out(placed.signup, placed.position))


@bp.post("/officer/events/<int:event_id>/signups/<employee_no>/cancel")
@endpoint("代取消报名（活动开始前）", auth=OFFICER, response=ProxySignupOut, tags=("officer",))
def proxy_cancel(event_id: int, employee_no: str):
    signup = signup_lists.cancel_for(g.staff, event_id, employee_no)
    return ProxySignupOut(employee_no=employee_no, name=signup.staff.name, signup=my_signup_out(signup, None))


@bp.post("/officer/events/<int:event_id>/checkin")
@endpoint("扫码签到（重复扫码无影响；候补或已取消的报名不能签到）", auth=OFFICER, body=CheckInIn,
          response=CheckInOut, tags=("officer",))
def check_in(event_id: int, body: CheckInIn):
    result = checkin.check_in(g.staff, event_id, body.code)
    return CheckInOut.model_validate(Merged(result.signup, first_time=result.first_time))
