"""An event's life as officers lead it: create (a draft), edit, publish, close signup early, cancel; and the list
of the events an officer manages. Who manages an event: app.services.policy.
"""

from __future__ import annotations


from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app import clock
from app.errors import Conflict, Invalid
from app.extensions import db
from app.services import audit, notifications, policy
from app.services.audiences import Audience, address, check_sub_unions_exist
from app.services.events import records, seats
from app.services.events.records import CATEGORY_LABELS, EventFields, Question, QuotaIn, STATUS_LABELS, event_page
from app.services.events.reminders import reminder_occasion
from models import Event, EventCategory, EventStatus, Signup, Staff


def ensure_manages(officer: Staff, event: Event) -> None:
    policy.ensure_manages(Event, officer, event.id)


def get_for_officer(officer: Staff, event_id: int) -> Event:
    event = records.get_event(event_id)
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
    seats.set_places(event, fields.capacity or 0, {q.sub_union_id: q.places for q in fields.quotas})
    audit.record(officer, "event.create", "event", event.id, title=event.title)
    return event


def edit_event(officer: Staff, event_id: int, changes: dict) -> Event:
    """Changes some fields, holding the event's lock (places: see seats.set_places)."""
    event = records.lock_event(event_id)
    ensure_manages(officer, event)
    if event.status in (EventStatus.CANCELLED, EventStatus.FINISHED):
        raise Conflict("event_not_editable", "活动已取消或已结束，不能再修改")
    fields = EventFields.model_construct(**{**dict(fields_of(event)), **changes})
    _apply(officer, event, fields)
    if {"capacity", "quotas"} & set(changes):
        seats.set_places(event, fields.capacity or 0, {q.sub_union_id: q.places for q in fields.quotas})
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
    if not f.quotas and not f.capacity:
        raise Invalid("invalid_capacity", "请填写活动名额（至少 1 人），或按分工会分配名额")


def _check_quota_sub_unions(officer: Staff, ids: list[int]) -> None:
    for sub_union_id in ids:
        policy.ensure_covers_sub_union(officer, sub_union_id)
    check_sub_unions_exist(ids)


def publish_event(officer: Staff, event_id: int, notify: bool = True) -> Event:
    """Opens the event to its audience (a draft, or one whose signup was closed early). The first publication
    may notify the audience, when signups open."""
    event = records.lock_event(event_id)
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
        "service", published_occasion(event), audience, f"活动报名：{event.title}",
        f"{_kind_of_event(event)}“{event.title}”开始报名，报名截止：{clock.local_text(event.signup_closes_at)}。"
        f"活动时间：{clock.local_text(event.starts_at)}，地点：{event.place or '见活动详情'}。",
        data={"summary": "活动开始报名", "event_id": event.id}, page=event_page(event.id),
        send_after=max(clock.now(), event.signup_opens_at))


def published_occasion(event: Event) -> str:
    return f"event-published:{event.id}"


def publication_notice_id(event: Event) -> int | None:
    return notifications.notice_id_of(published_occasion(event))


def _kind_of_event(event: Event) -> str:
    """体育活动, 文化活动, ...; an event of no particular kind is just 活动 (not 其他活动)."""
    return "活动" if event.category is EventCategory.OTHER else f"{CATEGORY_LABELS[event.category]}活动"


def close_signup(officer: Staff, event_id: int) -> Event:
    """Stops new signups before the window ends; cancellations and the waiting list go on."""
    event = records.lock_event(event_id)
    ensure_manages(officer, event)
    if event.status is not EventStatus.OPEN:
        raise Conflict("event_not_open", f"活动{STATUS_LABELS[event.status]}，无需截止报名")
    event.status = EventStatus.CLOSED
    audit.record(officer, "event.close", "event", event.id)
    return event


def cancel_event(officer: Staff, event_id: int, reason: str = "") -> Event:
    """Cancels the event: everyone signed up (confirmed or waiting) is told; unsent notices are withdrawn."""
    event = records.lock_event(event_id)
    ensure_manages(officer, event)
    if event.status is EventStatus.CANCELLED:
        return event
    if event.status is EventStatus.FINISHED:
        raise Conflict("event_finished", "活动已结束，不能取消")
    event.status = EventStatus.CANCELLED
    event.cancelled_at = clock.now()
    event.cancel_reason = reason or None
    people = db.session.scalars(select(Signup.staff_id).where(          # a locking read: see signups' docstring
        Signup.event_id == event.id, Signup.status.in_(records.ACTIVE)).with_for_update()).all()
    if people:
        notifications.notify_people(
            "service", f"event-cancelled:{event.id}", people, f"活动取消：{event.title}",
            f"很抱歉，您报名的活动“{event.title}”（{clock.local_text(event.starts_at)}）已取消。{reason}".strip(),
            data={"summary": "活动已取消", "event_id": event.id}, page=event_page(event.id))
    notifications.cancel_notice(published_occasion(event))
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
