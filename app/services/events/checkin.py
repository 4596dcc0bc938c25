"""Check-in (签到): each confirmed signup carries a code signed with the app secret (shown as a QR code in the
mini-program); an officer's scan marks the person attended. Scanning twice is harmless; a waitlisted or cancelled
signup, or a code from before a cancellation, is refused."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import select, update

from app import clock
from app.errors import Conflict, Refusal
from app.extensions import db
from app.services import audit
from app.services.events.lifecycle import get_for_officer
from models import EventStatus, Signup, SignupStatus, Staff


SALT = "smart-union.event-checkin"


def _serializer() -> URLSafeSerializer:
    return _serializer_of(current_app.config["SU"].app.secret_key)


@functools.lru_cache(maxsize=8)
def _serializer_of(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def checkin_code(signup: Signup) -> str | None:
    """The code of a confirmed signup. It names the signup and its queue number, so a code issued before a
    cancellation stops working once the person signs up again."""
    if signup.status is not SignupStatus.CONFIRMED:
        return None
    return _serializer().dumps([signup.event_id, signup.id, signup.sequence])


def _check_window(event) -> None:
    settings = current_app.config["SU"].events
    opens = event.starts_at - timedelta(minutes=settings.checkin_opens_minutes_before_start)
    closes = event.ends_at + timedelta(minutes=settings.checkin_closes_minutes_after_end)
    if not opens <= clock.now() <= closes:
        raise Conflict("checkin_not_open", f"签到时间为 {clock.local_text(opens)} 至 {clock.local_text(closes)}")


@dataclass
class CheckIn:
    signup: Signup
    first_time: bool


def check_in(officer: Staff, event_id: int, code: str) -> CheckIn:
    """Marks the signup behind `code` attended at this event. The conditional UPDATE makes two scans at once
    count once."""
    event = get_for_officer(officer, event_id)
    try:
        code_event, signup_id, sequence = _serializer().loads(code.strip())
    except (BadSignature, ValueError, TypeError):
        raise Refusal("invalid_checkin_code", "签到码无效，请让报名人刷新后重新出示") from None
    if code_event != event.id:
        raise Conflict("checkin_wrong_event", "该签到码不属于本活动")
    if event.status in (EventStatus.DRAFT, EventStatus.CANCELLED):
        raise Conflict("event_not_checkable", "活动未发布或已取消，不能签到")
    _check_window(event)
    marked = db.session.execute(
        update(Signup).where(Signup.id == signup_id, Signup.event_id == event.id, Signup.sequence == sequence,
                             Signup.status == SignupStatus.CONFIRMED, Signup.checked_in_at.is_(None))
        .values(checked_in_at=clock.now(), checked_in_by_id=officer.id)
        .execution_options(synchronize_session=False)).rowcount
    signup = db.session.scalar(select(Signup).where(Signup.id == signup_id).with_for_update()
                               .execution_options(populate_existing=True))
    if signup is None or signup.sequence != sequence or signup.status is not SignupStatus.CONFIRMED:
        raise Conflict("checkin_not_confirmed", "该报名未确认（候补中或已取消），不能签到")
    if marked:
        audit.record(officer, "event.check_in", "event_signup", signup.id, event_id=event.id)
    return CheckIn(signup, first_time=bool(marked))
