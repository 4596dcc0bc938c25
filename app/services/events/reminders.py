"""What the scheduler does for events: remind the confirmed the day before, and mark past events finished."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from sqlalchemy import select, update

from app import clock
from app.extensions import db
from app.services import notifications
from app.services.events.records import PUBLISHED, event_page
from models import Event, EventStatus, Notice, Notification, Signup, SignupStatus


REMINDER_TIME = time(9, 0)        # the reminder goes out the day before the event from 09:00 (local time)


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
