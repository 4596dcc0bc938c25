"""Birthday greetings: on each member's birthday (solar, or lunar for those who chose it), once, at the
configured time. A scheduler that was down sends today's greetings when it comes back; never yesterday's."""

from __future__ import annotations

from datetime import date, datetime

from flask import current_app
from sqlalchemy import and_, or_, select, tuple_

from app import clock
from app.extensions import db
from app.services import notifications
from app.services.calendar import lunar_birthdays_on, solar_birthdays_on
from models import BirthdayCalendar, Notice, Staff, StaffStatus


def birthday_occasion(day: date) -> str:
    return f"birthday:{day.isoformat()}"


def send_birthday_greetings(now: datetime) -> int:
    """Writes today's birthday greetings if it is time and they were not written yet; returns how many people."""
    settings = current_app.config["SU"].birthdays
    local = clock.local(now)
    if not settings.enabled or local.time() < settings.send_time:
        return 0
    occasion = birthday_occasion(local.date())
    if db.session.scalar(select(Notice.id).where(Notice.occasion == occasion)):
        return 0
    staff_ids = birthday_staff_ids(local.date())
    notifications.notify_people("greeting", occasion, staff_ids, settings.title, settings.body)
    return len(staff_ids)


def birthday_staff_ids(day: date) -> list[int]:
    """Members whose birthday is `day`, by the calendar each one chose, in one indexed query."""
    solar = and_(Staff.birthday_calendar == BirthdayCalendar.SOLAR,
                 tuple_(Staff.birth_month, Staff.birth_day).in_(solar_birthdays_on(day)))
    lunar_days = lunar_birthdays_on(day)
    conditions = [solar]
    if lunar_days:
        conditions.append(and_(Staff.birthday_calendar == BirthdayCalendar.LUNAR,
                               tuple_(Staff.lunar_birth_month, Staff.lunar_birth_day).in_(lunar_days)))
    stmt = select(Staff.id).where(or_(*conditions), Staff.status != StaffStatus.LEFT, Staff.died_on.is_(None)) \
        .order_by(Staff.id)
    return list(db.session.scalars(stmt))

