"""The events' scheduled jobs: the reminder the day before (exactly once per person, catching up after downtime)
and marking past events finished. Time comes from the jobs' `now` (the scheduler's clock) and time-machine."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from app.extensions import db
from app.unit_of_work import unit_of_work
from app.services.events import reminders
from jobs.scheduler import JobRunner
from jobs.schedule import schedule
from models import DeliveryStatus, EventStatus, Notice, Notification
from tests.events_support import create_event, event_row
from tests.helpers import bearer, set_clock_file

SHANGHAI = ZoneInfo("Asia/Shanghai")
DAY_BEFORE, EVENT_DAY = (2030, 6, 9), (2030, 6, 10)


def at(day: tuple[int, int, int], hour: int, minute: int = 0) -> datetime:
    return datetime(*day, hour, minute, tzinfo=SHANGHAI)


@pytest.fixture
def officer(make_staff, grant):
    staff_id = make_staff(employee_no="OFF01", name="工会干事")
    grant(staff_id, "union_officer")
    return staff_id


@pytest.fixture
def june_event(app, client, officer, make_staff, token_for):
    """An event on 10 June 2030 at 10:00 with 2 seats; on 1 June three people sign up (two confirmed, one
    waiting). Returns (event id, [staff ids in signup order], {staff id: token})."""
    with time_machine.travel(at((2030, 6, 1), 9)):
        officer_token = token_for(officer)
        event_id = create_event(client, officer_token, capacity=2, starts_at=at(EVENT_DAY, 10).isoformat(),
                                ends_at=at(EVENT_DAY, 12).isoformat(),
                                signup_opens_at=at((2030, 6, 1), 8).isoformat(),
                                signup_closes_at=at((2030, 6, 8), 18).isoformat())
        people = [make_staff() for _ in range(3)]
        tokens = {p: token_for(p) for p in people}
        for person in people:
            client.post(f"/api/v1/events/{event_id}/signup", json={}, headers=bearer(tokens[person]))
    return event_id, people, tokens


def remind(app, now: datetime) -> int:
    with app.app_context(), unit_of_work():
        return reminders.send_event_reminders(now)


def reminded(app, event_id: int) -> list[int]:
    with app.app_context():
        return sorted(db.session.scalars(select(Notification.staff_id).join(Notification.notice).where(
            Notice.occasion == f"event-reminder:{event_id}")))


def test_reminder_goes_to_the_confirmed_at_nine_the_day_before_and_only_once(app, june_event):
    event_id, (first, second, waiting), _ = june_event
    assert remind(app, at(DAY_BEFORE, 8, 59)) == 0
    assert remind(app, at(DAY_BEFORE, 9, 0)) == 2
    assert remind(app, at(DAY_BEFORE, 9, 1)) == 0
    assert remind(app, at(DAY_BEFORE, 20, 0)) == 0
    assert reminded(app, event_id) == sorted([first, second])         # not the one still waiting
    with app.app_context():
        notice = db.session.scalar(select(Notice).where(Notice.occasion == f"event-reminder:{event_id}"))
    assert notice.title == "活动提醒：教职工气排球赛" and "06月10日 10:00" in notice.body


def test_someone_promoted_after_the_reminder_is_reminded_once_too(app, client, token_for, june_event):
    event_id, (first, second, waiting), _ = june_event
    remind(app, at(DAY_BEFORE, 9))
    with time_machine.travel(at(DAY_BEFORE, 11)):
        resp = client.post(f"/api/v1/events/{event_id}/cancel", headers=bearer(token_for(first)))
        assert resp.json["status"] == "cancelled"
    assert remind(app, at(DAY_BEFORE, 11, 1)) == 1
    assert remind(app, at(DAY_BEFORE, 11, 2)) == 0
    assert reminded(app, event_id) == sorted([first, second, waiting])   # first was reminded before cancelling


def test_scheduler_down_all_morning_still_reminds_in_the_afternoon(app, june_event):
    event_id, (first, second, _), _ = june_event
    assert remind(app, at(DAY_BEFORE, 7)) == 0
    assert remind(app, at(DAY_BEFORE, 15)) == 2        # down from 07:00 to 15:00
    assert reminded(app, event_id) == sorted([first, second])


def test_scheduler_back_only_after_the_start_sends_no_reminder(app, june_event):
    event_id, _, _ = june_event
    assert remind(app, at(EVENT_DAY, 10, 1)) == 0
    assert reminded(app, event_id) == []


def test_cancelled_event_is_not_reminded_and_unsent_reminders_are_withdrawn(app, client, officer, token_for,
                                                                            june_event):
    event_id, _, _ = june_event
    remind(app, at(DAY_BEFORE, 9))
    with time_machine.travel(at(DAY_BEFORE, 10)):
        resp = client.post(f"/api/v1/officer/events/{event_id}/cancel", json={"reason": "暴雨"},
                           headers=bearer(token_for(officer)))
        assert resp.json["status"] == "cancelled"
    with app.app_context():
        statuses = set(db.session.scalars(select(Notification.status).join(Notification.notice).where(
            Notice.occasion == f"event-reminder:{event_id}")))
    assert statuses == {DeliveryStatus.CANCELLED}
    assert remind(app, at(DAY_BEFORE, 11)) == 0


def test_reminder_job_runs_from_the_schedule_with_the_schedulers_clock(make_app, june_event, tmp_path):
    event_id, (first, second, _), _ = june_event
    clock = tmp_path / "now.txt"
    app = make_app(**{"app.clock_file": str(clock)})
    runner = JobRunner(app)
    runner.heartbeat()                                  # takes the leader lock
    [spec] = [s for s in schedule() if s.id == "events.reminders"]
    set_clock_file(clock, at(DAY_BEFORE, 8))
    assert runner.run_job(spec) == 0
    set_clock_file(clock, at(DAY_BEFORE, 9, 30))
    assert runner.run_job(spec) == 2
    assert runner.run_job(spec) == 0
    runner.leader.release()
    assert reminded(app, event_id) == sorted([first, second])


def test_past_events_are_marked_finished_once(app, june_event):
    event_id, _, _ = june_event
    with app.app_context(), unit_of_work():
        assert reminders.finish_past_events(at(EVENT_DAY, 11, 59)) == 0
    with app.app_context(), unit_of_work():
        assert reminders.finish_past_events(at(EVENT_DAY, 12, 0)) == 1
    with app.app_context(), unit_of_work():
        assert reminders.finish_past_events(at((2030, 6, 11), 0)) == 0
    assert event_row(app, event_id).status is EventStatus.FINISHED
