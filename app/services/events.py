"""Events (活动): officers create, edit, publish, close and cancel them; staff see the ones open to them; the
scheduler reminds the confirmed the day before and marks past events finished. Seats live in app.services.signups.

Who manages an event: union officers every event; a sub-union officer the events addressed only to their own
sub-unions, created by an officer of no higher rank (app.services.policy decides, for every area).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select, update
from sqlalchemy.orm import contains_eager, selectinload

from app import clock
from app.errors import Conflict, Invalid
from app.extensions import db
from app.services import audit, notifications, policy, signups
from app.services.audiences import Audience, address, check_sub_unions_exist, includes
from app.services.signups import Question
from models import Event, EventCategory, EventQuota, EventStatus, Notice, Notification, Signup, SignupStatus, Staff

CATEGORY_LABELS = {EventCategory.SPORTS: "体育", EventCategory.CULTURE: "文化", EventCategory.OUTDOOR: "户外",
                   EventCategory.OTHER: "其他"}
STATUS_LABELS = {EventStatus.DRAFT: "草稿", EventStatus.OPEN: "已发布", EventStatus.CLOSED: "已截止报名",
                 EventStatus.CANCELLED: "已取消", EventStatus.FINISHED: "已结束"}
PHASE_LABELS = {"draft": "草稿", "upcoming": "未开始报名", "open": "报名中", "closed": "报名已截止",
                "started": "进行中", "finished": "已结束", "cancelled": "已取消"}
SIGNUP_LABELS = {SignupStatus.CONFIRMED: "报名成功", SignupStatus.WAITLISTED: "候补",
                 SignupStatus.CANCELLED: "已取消"}
PUBLISHED = (EventStatus.OPEN, EventStatus.CLOSED)
REMINDER_TIME = time(9, 0)        # the reminder goes out the day before the event from 09:00 (local time)


def event_page(event_id: int) -> str:
    return f"pages/events/detail?id={event_id}"


class QuotaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sub_union_id: int
    places: int = Field(ge=1, le=10_000)


class EventFields(BaseModel):
    """What an officer fills in for an event."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    title: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=5000)
    category: EventCategory = Field(default=EventCategory.OTHER, description="sports 体育 / culture 文化 / "
                                                                             "outdoor 户外 / other 其他")
    place: str = Field(default="", max_length=200)
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    signup_opens_at: AwareDatetime
    signup_closes_at: AwareDatetime
    cancel_deadline: AwareDatetime | None = Field(default=None, description="取消报名截止时间（空：活动开始前均可取消）")
    capacity: int = Field(default=0, ge=0, le=100_000, description="名额；按分工会分配时为各分工会名额之和")
    quotas: list[QuotaIn] = Field(default_factory=list, max_length=200, description="名额分配（按分工会），可空")
    waitlist_enabled: bool = True
    audience: Audience = Field(default_factory=Audience)
    questions: list[Question] = Field(default_factory=list, max_length=20)

    @field_validator("questions")
    @classmethod
    def _unique_keys(cls, value: list[Question]) -> list[Question]:
        if len({q.key for q in value}) != len(value):
            raise ValueError("报名题目的标识不能重复")
        return value

    @field_validator("quotas")
    @classmethod
    def _one_quota_per_sub_union(cls, value: list[QuotaIn]) -> list[QuotaIn]:
        if len({q.sub_union_id for q in value}) != len(value):
            raise ValueError("同一分工会只能分配一次名额")
        return value


# --- officers ------------------------------------------------------------------------------------------------------

def ensure_manages(officer: Staff, event: Event) -> None:
    policy.ensure_manages(Event, officer, event.id)


def get_for_officer(officer: Staff, event_id: int) -> Event:
    event = signups.get_event(event_id)
    ensure_manages(officer, event)
    return event


def fields_of(event: Event) -> EventFields:
    return EventFields.model_construct(
        title=event.title, description=event.description, category=event.category, place=event.place,
        starts_at=event.starts_at, ends_at=event.ends_at, signup_opens_at=event.signup_opens_at,
        signup_closes_at=event.signup_closes_at, cancel_deadline=event.cancel_deadline, capacity=event.capacity,
        quotas=[QuotaIn(sub_union_id=q.sub_union_id, places=q.places) for q in event.quotas],
        waitlist_enabled=event.waitlist_enabled, audience=Audience.model_validate(event.audience),
        questions=[Question.model_validate(q) for q in event.questions])


def create_event(officer: Staff, fields: EventFields) -> Event:
    """A draft event; staff see it once it is published."""
    policy.ensure_officer(officer)
    event = Event(created_by_id=officer.id, status=EventStatus.DRAFT, capacity=0)
    db.session.add(event)
    _apply(officer, event, fields)
    signups.set_places(event, fields.capacity, {q.sub_union_id: q.places for q in fields.quotas})
    audit.record(officer, "event.create", "event", event.id, title=event.title)
    return event


def edit_event(officer: Staff, event_id: int, changes: dict) -> Event:
    """Changes some fields, holding the event's lock (places: see signups.set_places)."""
    event = signups.lock_event(event_id)
    ensure_manages(officer, event)
    if event.status in (EventStatus.CANCELLED, EventStatus.FINISHED):
        raise Conflict("event_not_editable", "活动已取消或已结束，不能再修改")
    fields = EventFields.model_construct(**{**dict(fields_of(event)), **changes})
    _apply(officer, event, fields)
    if {"capacity", "quotas"} & set(changes):
        signups.set_places(event, fields.capacity, {q.sub_union_id: q.places for q in fields.quotas})
    event.updated_at = clock.now()
    audit.record(officer, "event.edit", "event", event.id, fields=sorted(changes))
    return event


def _apply(officer: Staff, event: Event, fields: EventFields) -> None:
    _check_schedule(fields)
    audience = policy.restrict_audience(officer, fields.audience)
    for name in ("title", "description", "category", "place", "starts_at", "ends_at", "signup_opens_at",
                 "signup_closes_at", "cancel_deadline", "waitlist_enabled"):
        setattr(event, name, getattr(fields, name))
    event.questions = [q.model_dump() for q in fields.questions]
    _check_quota_sub_unions(officer, [q.sub_union_id for q in fields.quotas])   # its query flushes the above
    address(event, audience)


def _check_schedule(f: EventFields) -> None:
    if f.ends_at <= f.starts_at:
        raise Invalid("invalid_schedule", "活动结束时间必须晚于开始时间")
    if f.signup_closes_at <= f.signup_opens_at:
        raise Invalid("invalid_schedule", "报名截止时间必须晚于报名开始时间")
    if f.signup_closes_at > f.starts_at:
        raise Invalid("invalid_schedule", "报名截止时间不能晚于活动开始时间")
    if f.cancel_deadline is not None and f.cancel_deadline > f.starts_at:
        raise Invalid("invalid_schedule", "取消报名截止时间不能晚于活动开始时间")
    if not f.quotas and f.capacity < 1:
        raise Invalid("invalid_capacity", "请填写活动名额（至少 1 人），或按分工会分配名额")


def _check_quota_sub_unions(officer: Staff, ids: list[int]) -> None:
    for sub_union_id in ids:
        policy.ensure_covers_sub_union(officer, sub_union_id)
    check_sub_unions_exist(ids)


def publish_event(officer: Staff, event_id: int, notify: bool = True) -> Event:
    """Opens the event to its audience (a draft, or one whose signup was closed early). The first publication
    may notify the audience, when signups open."""
    event = signups.lock_event(event_id)
    ensure_manages(officer, event)
    if event.status not in (EventStatus.DRAFT, EventStatus.CLOSED):
        raise Conflict("event_not_publishable", f"活动{STATUS_LABELS[event.status]}，不能发布")
    if event.signup_closes_at <= clock.now():
        raise Conflict("signup_window_passed", "报名截止时间已过，请先修改报名时间")
    first = event.published_at is None
    event.status = EventStatus.OPEN
    event.published_at = event.published_at or clock.now()
    if first and notify:
        _announce(event)
    audit.record(officer, "event.publish", "event", event.id, notify=notify)
    return event


def _announce(event: Event) -> None:
    audience = Audience.model_validate(event.audience)
    if event.by_sub_union:
        with_places = {q.sub_union_id for q in event.quotas}
        chosen = with_places & set(audience.sub_union_ids) if audience.sub_union_ids else with_places
        if not chosen:
            return
        audience = audience.model_copy(update={"sub_union_ids": sorted(chosen)})
    notifications.notify_audience(
        "service", f"event-published:{event.id}", audience, f"活动报名：{event.title}",
        f"{CATEGORY_LABELS[event.category]}活动“{event.title}”开始报名，报名截止：{clock.local_text(event.signup_closes_at)}。"
        f"活动时间：{clock.local_text(event.starts_at)}，地点：{event.place or '见活动详情'}。",
        data={"summary": "活动开始报名", "event_id": event.id}, page=event_page(event.id),
        send_after=max(clock.now(), event.signup_opens_at))


def close_signup(officer: Staff, event_id: int) -> Event:
    """Stops new signups before the window ends; cancellations and the waiting list go on."""
    event = signups.lock_event(event_id)
    ensure_manages(officer, event)
    if event.status is not EventStatus.OPEN:
        raise Conflict("event_not_open", f"活动{STATUS_LABELS[event.status]}，无需截止报名")
    event.status = EventStatus.CLOSED
    audit.record(officer, "event.close", "event", event.id)
    return event


def cancel_event(officer: Staff, event_id: int, reason: str = "") -> Event:
    """Cancels the event: everyone signed up (confirmed or waiting) is told; unsent notices are withdrawn."""
    event = signups.lock_event(event_id)
    ensure_manages(officer, event)
    if event.status is EventStatus.CANCELLED:
        return event
    if event.status is EventStatus.FINISHED:
        raise Conflict("event_finished", "活动已结束，不能取消")
    event.status = EventStatus.CANCELLED
    event.cancelled_at = clock.now()
    event.cancel_reason = reason or None
    people = db.session.scalars(select(Signup.staff_id).where(          # a locking read: see signups' docstring
        Signup.event_id == event.id, Signup.status.in_(signups.ACTIVE)).with_for_update()).all()
    if people:
        notifications.notify_people(
            "service", f"event-cancelled:{event.id}", people, f"活动取消：{event.title}",
            f"很抱歉，您报名的活动“{event.title}”（{clock.local_text(event.starts_at)}）已取消。{reason}".strip(),
            data={"summary": "活动已取消", "event_id": event.id}, page=event_page(event.id))
    notifications.cancel_notice(f"event-published:{event.id}")
    notifications.cancel_notice(reminder_occasion(event.id))
    audit.record(officer, "event.cancel", "event", event.id, reason=reason, notified=len(people))
    return event


def officer_events(officer: Staff, status: EventStatus | None = None) -> list[Event]:
    """The events an officer manages, soonest first."""
    policy.ensure_officer(officer)
    stmt = (select(Event).where(policy.managed_condition(Event, officer)).options(selectinload(Event.quotas))
            .order_by(Event.starts_at.desc(), Event.id.desc()))
    if status is not None:
        stmt = stmt.where(Event.status == status)
    return list(db.session.scalars(stmt))


# --- staff ---------------------------------------------------------------------------------------------------------

@dataclass
class EventCard:
    """An event as one staff member sees it."""

    event: Event
    signup: Signup | None
    seats_left: int
    phase: str
    eligible: bool
    position: int | None = None       # place in the waiting list


def phase_of(event: Event, now: datetime) -> str:
    if event.status in (EventStatus.DRAFT, EventStatus.CANCELLED):
        return event.status.value
    if event.status is EventStatus.FINISHED or now >= event.ends_at:
        return "finished"
    if now >= event.starts_at:
        return "started"
    if event.status is EventStatus.CLOSED or now >= event.signup_closes_at:
        return "closed"
    return "upcoming" if now < event.signup_opens_at else "open"


def current_phase(event: Event) -> str:
    return phase_of(event, clock.now())


def _my_quota(event: Event, staff: Staff) -> EventQuota | None:
    return next((q for q in event.quotas if q.sub_union_id == staff.sub_union_id), None)


def _card(event: Event, staff: Staff, signup: Signup | None, now: datetime) -> EventCard:
    quota = _my_quota(event, staff)
    if event.by_sub_union:
        left = quota.places - quota.confirmed_count if quota else 0
    else:
        left = event.capacity - event.confirmed_count
    eligible = includes(Audience.model_validate(event.audience), staff) and \
        (quota is not None or not event.by_sub_union)
    return EventCard(event, signup, max(0, left), phase_of(event, now), eligible)


def events_for(staff: Staff) -> list[EventCard]:
    """Published events addressed to this person that have not ended, soonest first, with their signup (and
    place in the waiting list): at most four queries whatever the number of events."""
    now = clock.now()
    events = list(db.session.scalars(
        select(Event).where(Event.status.in_(PUBLISHED), Event.ends_at > now, policy.event_visible_condition(staff))
        .options(selectinload(Event.quotas)).order_by(Event.starts_at, Event.id)))
    mine = {s.event_id: s for s in db.session.scalars(select(Signup).where(
        Signup.staff_id == staff.id, Signup.event_id.in_([e.id for e in events])))} if events else {}
    positions = signups.waitlist_positions(list(mine.values()))
    cards = [_card(e, staff, mine.get(e.id), now) for e in events]
    for card in cards:
        card.position = positions.get(card.signup.id) if card.signup else None
    return [c for c in cards if c.eligible]


def open_events_for(staff: Staff) -> list[EventCard]:
    """The events this person can sign up for right now (the official account's 活动 keyword)."""
    return [card for card in events_for(staff) if card.phase == "open"]


def event_for(staff: Staff, event_id: int) -> EventCard:
    policy.ensure_sees_event(staff, event_id)
    event = signups.get_event(event_id)
    card = _card(event, staff, signups.find_signup(event.id, staff.id), clock.now())
    if card.signup is not None:
        card.position = signups.waitlist_positions([card.signup]).get(card.signup.id)
    return card


def my_signups(staff: Staff) -> list[EventCard]:
    """Every signup of mine (cancelled ones too), latest event first, in three queries."""
    rows = list(db.session.scalars(
        select(Signup).join(Signup.event).options(contains_eager(Signup.event).selectinload(Event.quotas))
        .where(Signup.staff_id == staff.id).order_by(Event.starts_at.desc(), Event.id.desc())))
    positions = signups.waitlist_positions(rows)
    now = clock.now()
    cards = [_card(s.event, staff, s, now) for s in rows]
    for card in cards:
        card.position = positions.get(card.signup.id)
    return cards


# --- the scheduler -------------------------------------------------------------------------------------------------

def reminder_occasion(event_id: int) -> str:
    return f"event-reminder:{event_id}"


def reminder_due_at(event: Event) -> datetime:
    local = clock.local(event.starts_at)
    return datetime.combine(local.date() - timedelta(days=1), REMINDER_TIME, local.tzinfo)


def send_event_reminders(now: datetime) -> int:
    """From 09:00 the day before an event until it starts, reminds each confirmed person once (one notice per
    event; someone confirmed later — promoted from the waiting list — is reminded on the next run). A scheduler
    that was down catches up on its next run, as long as the event has not started."""
    events = db.session.scalars(select(Event).where(
        Event.status.in_(PUBLISHED), Event.starts_at > now, Event.starts_at <= now + timedelta(days=2)))
    return sum(_remind(event) for event in events if reminder_due_at(event) <= now)


def _remind(event: Event) -> int:
    occasion = reminder_occasion(event.id)
    confirmed = set(db.session.scalars(select(Signup.staff_id).where(
        Signup.event_id == event.id, Signup.status == SignupStatus.CONFIRMED)))
    reminded = set(db.session.scalars(select(Notification.staff_id).join(Notification.notice).where(
        Notice.occasion == occasion)))
    todo = confirmed - reminded
    if todo:
        notifications.notify_people(
            "service", occasion, todo, f"活动提醒：{event.title}",
            f"您报名的活动“{event.title}”将于{clock.local_text(event.starts_at)}开始，地点：{event.place or '见活动详情'}。"
            "请准时参加，签到时出示报名二维码。", data={"summary": "活动明天开始，请准时参加", "event_id": event.id},
            page=event_page(event.id))
    return len(todo)


def finish_past_events(now: datetime) -> int:
    """Marks published events whose end has passed as finished; returns how many."""
    result = db.session.execute(update(Event).where(Event.status.in_(PUBLISHED), Event.ends_at <= now)
                                .values(status=EventStatus.FINISHED).execution_options(synchronize_session=False))
    return result.rowcount
