"""Events (活动报名): staff routes under /events, officer routes under /officer/events."""

from __future__ import annotations

import io
from datetime import datetime

from flask import Blueprint, g, send_file
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from app.api.endpoint import AuthLevel, endpoint
from app.services import checkin, event_roster, events, signups
from app.services.audiences import Audience
from app.services.events import EventCard, EventFields, QuotaIn
from app.services.signups import Question
from models import Event, EventCategory, EventStatus, Signup, SignupStatus

bp = Blueprint("events", __name__)
OFFICER = AuthLevel.OFFICER


class SignupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    answers: dict[str, str] = Field(default_factory=dict, max_length=20, description="报名题目标识 → 回答")


class MySignupOut(BaseModel):
    status: SignupStatus
    status_label: str
    position: int | None = Field(description="候补顺位（1 表示下一个递补）")
    answers: dict[str, str]
    signed_up_at: datetime
    cancelled_at: datetime | None
    checked_in_at: datetime | None
    checkin_code: str | None = Field(description="签到码（报名成功时提供，小程序显示为二维码）")


class EventBasics(BaseModel):
    """What staff and officers both see of an event."""

    id: int
    title: str
    category: EventCategory
    place: str
    starts_at: datetime
    ends_at: datetime
    signup_opens_at: datetime
    signup_closes_at: datetime
    cancel_deadline: datetime | None
    capacity: int
    waitlist_enabled: bool


class EventCardOut(EventBasics):
    category_label: str
    seats_left: int = Field(description="剩余名额（按分工会分配时为本分工会剩余名额）")
    phase: str = Field(description="upcoming / open / closed / started / finished / cancelled")
    phase_label: str
    my_signup: MySignupOut | None


class EventDetailOut(EventCardOut):
    description: str
    questions: list[Question]
    eligible: bool = Field(description="我是否在报名范围内")


class EventCardList(BaseModel):
    items: list[EventCardOut]


def my_signup_out(signup: Signup | None, position: int | None) -> MySignupOut | None:
    if signup is None:
        return None
    return MySignupOut(status=signup.status, status_label=events.SIGNUP_LABELS[signup.status], position=position,
                       answers=signup.answers or {}, signed_up_at=signup.signed_up_at,
                       cancelled_at=signup.cancelled_at, checked_in_at=signup.checked_in_at,
                       checkin_code=checkin.checkin_code(signup))


def card_fields(card: EventCard) -> dict:
    e = card.event
    return dict(id=e.id, title=e.title, category=e.category, category_label=events.CATEGORY_LABELS[e.category],
                place=e.place, starts_at=e.starts_at, ends_at=e.ends_at, signup_opens_at=e.signup_opens_at,
                signup_closes_at=e.signup_closes_at, cancel_deadline=e.cancel_deadline, capacity=e.capacity,
                seats_left=card.seats_left, waitlist_enabled=e.waitlist_enabled, phase=card.phase,
                phase_label=events.PHASE_LABELS[card.phase], my_signup=my_signup_out(card.signup, card.position))


# --- staff -------------------------------------------------------------------------------------------------------

@bp.get("/events")
@endpoint("可报名的活动（面向我的、尚未结束的活动，含我的报名状态与剩余名额）", response=EventCardList,
          tags=("events",))
def list_events():
    return EventCardList(items=[EventCardOut(**card_fields(c)) for c in events.events_for(g.staff)])


@bp.get("/events/mine")
@endpoint("我的报名（含已取消的）", response=EventCardList, tags=("events",))
def my_events():
    return EventCardList(items=[EventCardOut(**card_fields(c)) for c in events.my_signups(g.staff)])


@bp.get("/events/<int:event_id>")
@endpoint("活动详情", response=EventDetailOut, tags=("events",))
def event_detail(event_id: int):
    card = events.event_for(g.staff, event_id)
    return EventDetailOut(**card_fields(card), description=card.event.description, eligible=card.eligible,
                          questions=[Question.model_validate(q) for q in card.event.questions])


@bp.post("/events/<int:event_id>/signup")
@endpoint("报名（重复提交仍是同一个报名；名额满时进入候补）", body=SignupIn, response=MySignupOut,
          tags=("events",))
def sign_up(event_id: int, body: SignupIn):
    placed = signups.sign_up(event_id, g.staff, body.answers)
    return my_signup_out(placed.signup, placed.position)


@bp.post("/events/<int:event_id>/cancel")
@endpoint("取消报名（取消截止时间前）；空出的名额立即由第一位候补递补", response=MySignupOut, tags=("events",))
def cancel(event_id: int):
    return my_signup_out(signups.cancel_signup(event_id, g.staff), None)


# --- officers ----------------------------------------------------------------------------------------------------

class EventPatch(BaseModel):
    """Only the fields given change (null only for cancel_deadline)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    title: str = Field(default=None, min_length=1, max_length=100)
    description: str = Field(default=None, max_length=5000)
    category: EventCategory = None
    place: str = Field(default=None, max_length=200)
    starts_at: AwareDatetime = None
    ends_at: AwareDatetime = None
    signup_opens_at: AwareDatetime = None
    signup_closes_at: AwareDatetime = None
    cancel_deadline: AwareDatetime | None = None
    capacity: int = Field(default=None, ge=0, le=100_000)
    quotas: list[QuotaIn] = Field(default=None, max_length=200)
    waitlist_enabled: bool = None
    audience: Audience = None
    questions: list[Question] = Field(default=None, max_length=20)


class PublishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    notify: bool = Field(default=True, description="首次发布时通知受众（报名开始时送达）")


class CancelEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    reason: str = Field(default="", max_length=200, description="取消原因，会告知已报名的人")


class CountsOut(BaseModel):
    confirmed: int
    waitlisted: int
    cancelled: int
    attended: int


class QuotaOut(BaseModel):
    sub_union_id: int
    sub_union: str
    places: int
    confirmed: int
    waitlisted: int


class OfficerEventOut(EventBasics):
    description: str
    quotas: list[QuotaOut]
    audience: Audience
    audience_description: str
    questions: list[Question]
    status: EventStatus
    status_label: str
    phase: str
    published_at: datetime | None
    cancel_reason: str | None
    counts: CountsOut


class OfficerEventList(BaseModel):
    items: list[OfficerEventOut]


class EventsQuery(BaseModel):
    status: EventStatus | None = None


class SignupRowOut(BaseModel):
    employee_no: str
    name: str
    sub_union: str | None
    department: str
    status: SignupStatus
    status_label: str
    position: int | None
    answers: dict[str, str]
    signed_up_at: datetime
    checked_in_at: datetime | None
    signed_up_by: str | None = Field(description="代报名的工作人员")


class SignupListOut(BaseModel):
    counts: CountsOut
    items: list[SignupRowOut]


class SignupsQuery(BaseModel):
    status: SignupStatus | None = None


class ProxySignupIn(SignupIn):
    employee_no: str = Field(min_length=1, max_length=32)


class ProxySignupOut(BaseModel):
    employee_no: str
    name: str
    signup: MySignupOut


class CheckInIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=300, description="扫描报名二维码得到的签到码")


class CheckInOut(BaseModel):
    first_time: bool = Field(description="false 表示此前已签到（重复扫码无影响）")
    employee_no: str
    name: str
    sub_union: str | None
    checked_in_at: datetime
    message: str


def officer_event_out(event: Event, counts: event_roster.SignupCounts) -> OfficerEventOut:
    audience = Audience.model_validate(event.audience)
    return OfficerEventOut(
        id=event.id, title=event.title, description=event.description, category=event.category, place=event.place,
        starts_at=event.starts_at, ends_at=event.ends_at, signup_opens_at=event.signup_opens_at,
        signup_closes_at=event.signup_closes_at, cancel_deadline=event.cancel_deadline, capacity=event.capacity,
        quotas=[QuotaOut(sub_union_id=q.sub_union_id, sub_union=q.sub_union.name, places=q.places,
                         confirmed=q.confirmed_count, waitlisted=q.waitlisted_count) for q in event.quotas],
        waitlist_enabled=event.waitlist_enabled, audience=audience, audience_description=audience.describe(),
        questions=[Question.model_validate(q) for q in event.questions], status=event.status,
        status_label=events.STATUS_LABELS[event.status], phase=events.current_phase(event),
        published_at=event.published_at, cancel_reason=event.cancel_reason, counts=CountsOut(**vars(counts)))


def _one(event: Event) -> OfficerEventOut:
    return officer_event_out(event, event_roster.signup_counts([event.id])[event.id])


@bp.get("/officer/events")
@endpoint("活动列表（按管理范围），含报名人数", auth=OFFICER, query=EventsQuery, response=OfficerEventList,
          tags=("officer",))
def officer_list(query: EventsQuery):
    items = events.officer_events(g.staff, query.status)
    counts = event_roster.signup_counts([e.id for e in items])
    return OfficerEventList(items=[officer_event_out(e, counts[e.id]) for e in items])


@bp.post("/officer/events")
@endpoint("创建活动（草稿）", auth=OFFICER, body=EventFields, response=OfficerEventOut, status=201,
          tags=("officer",))
def create(body: EventFields):
    return _one(events.create_event(g.staff, body))


@bp.get("/officer/events/<int:event_id>")
@endpoint("活动详情（工作人员）", auth=OFFICER, response=OfficerEventOut, tags=("officer",))
def officer_detail(event_id: int):
    return _one(events.get_for_officer(g.staff, event_id))


@bp.patch("/officer/events/<int:event_id>")
@endpoint("修改活动；减少名额不能少于已报名成功人数，增加名额立即递补候补", auth=OFFICER, body=EventPatch,
          response=OfficerEventOut, tags=("officer",))
def edit(event_id: int, body: EventPatch):
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return _one(events.edit_event(g.staff, event_id, changes))


@bp.post("/officer/events/<int:event_id>/publish")
@endpoint("发布活动（可通知受众）", auth=OFFICER, body=PublishIn, response=OfficerEventOut, tags=("officer",))
def publish(event_id: int, body: PublishIn):
    return _one(events.publish_event(g.staff, event_id, body.notify))


@bp.post("/officer/events/<int:event_id>/close")
@endpoint("提前截止报名", auth=OFFICER, response=OfficerEventOut, tags=("officer",))
def close(event_id: int):
    return _one(events.close_signup(g.staff, event_id))


@bp.post("/officer/events/<int:event_id>/cancel")
@endpoint("取消活动（通知所有已报名和候补的人）", auth=OFFICER, body=CancelEventIn, response=OfficerEventOut,
          tags=("officer",))
def cancel_event(event_id: int, body: CancelEventIn):
    return _one(events.cancel_event(g.staff, event_id, body.reason))


@bp.get("/officer/events/<int:event_id>/signups")
@endpoint("报名名单（含报名题目的回答）与人数统计", auth=OFFICER, query=SignupsQuery, response=SignupListOut,
          tags=("officer",))
def signup_list(event_id: int, query: SignupsQuery):
    event = events.get_for_officer(g.staff, event_id)
    rows = event_roster.signup_rows(event, query.status)
    counts = event_roster.signup_counts([event.id])[event.id]
    return SignupListOut(counts=CountsOut(**vars(counts)), items=[SignupRowOut(
        employee_no=r.signup.staff.employee_no, name=r.signup.staff.name,
        sub_union=r.signup.staff.sub_union.name if r.signup.staff.sub_union else None,
        department=r.signup.staff.department, status=r.signup.status,
        status_label=events.SIGNUP_LABELS[r.signup.status], position=r.position, answers=r.answers,
        signed_up_at=r.signup.signed_up_at, checked_in_at=r.signup.checked_in_at,
        signed_up_by=r.proxy.name if r.proxy else None) for r in rows])


@bp.get("/officer/events/<int:event_id>/signups.xlsx")
@endpoint("导出报名名单（Excel）", auth=OFFICER, tags=("officer",))
def export(event_id: int):
    event = events.get_for_officer(g.staff, event_id)
    data = event_roster.export_xlsx(g.staff, event)
    return send_file(io.BytesIO(data), as_attachment=True, download_name=f"报名名单-{event.title}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@bp.post("/officer/events/<int:event_id>/signups")
@endpoint("代报名（为不使用微信的会员报名）", auth=OFFICER, body=ProxySignupIn, response=ProxySignupOut,
          tags=("officer",))
def proxy_sign_up(event_id: int, body: ProxySignupIn):
    placed = event_roster.sign_up_for(g.staff, event_id, body.employee_no, body.answers)
    return ProxySignupOut(employee_no=body.employee_no, name=placed.signup.staff.name,
                          signup=my_signup_out(placed.signup, placed.position))


@bp.post("/officer/events/<int:event_id>/signups/<employee_no>/cancel")
@endpoint("代取消报名（活动开始前）", auth=OFFICER, response=ProxySignupOut, tags=("officer",))
def proxy_cancel(event_id: int, employee_no: str):
    signup = event_roster.cancel_for(g.staff, event_id, employee_no)
    return ProxySignupOut(employee_no=employee_no, name=signup.staff.name, signup=my_signup_out(signup, None))


@bp.post("/officer/events/<int:event_id>/checkin")
@endpoint("扫码签到（重复扫码无影响；候补或已取消的报名不能签到）", auth=OFFICER, body=CheckInIn,
          response=CheckInOut, tags=("officer",))
def check_in(event_id: int, body: CheckInIn):
    result = checkin.check_in(g.staff, event_id, body.code)
    staff = result.signup.staff
    return CheckInOut(first_time=result.first_time, employee_no=staff.employee_no, name=staff.name,
                      sub_union=staff.sub_union.name if staff.sub_union else None,
                      checked_in_at=result.signup.checked_in_at,
                      message=f"{staff.name} 签到成功" if result.first_time else f"{staff.name} 已签到，无需重复扫码")
