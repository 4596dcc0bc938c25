"""The scheduler: birthday greetings and holiday notices exactly on time and exactly once, one leader at a time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import requests
import time_machine
from sqlalchemy import select

from app.extensions import db
from app.unit_of_work import unit_of_work
from app.services import greetings, holidays
from app.services.calendar import lunar_birthday_in_year
from jobs.sender import Sender
from models import BirthdayCalendar, Gender, Notice, Notification, StaffStatus, SubscriptionConsent, WeChatApp
from models import WeChatIdentity
from tests.conftest import REDIS_PREFIX
from tests.helpers import set_clock_file

SHANGHAI = ZoneInfo("Asia/Shanghai")
SMART_UNION = str(Path(sys.executable).parent / "smart-union")


def at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def run_birthdays(app, now: datetime) -> int:
    with app.app_context(), unit_of_work():
        return greetings.send_birthday_greetings(now)


def greeted(app) -> dict[str, list[int]]:
    with app.app_context():
        rows = db.session.execute(select(Notice.occasion, Notification.staff_id).join(Notification.notice)
                                  .where(Notice.occasion.like("birthday:%"))).all()
    result: dict[str, list[int]] = {}
    for occasion, staff_id in rows:
        result.setdefault(occasion.removeprefix("birthday:"), []).append(staff_id)
    return {k: sorted(v) for k, v in result.items()}


# --- birthdays -------------------------------------------------------------------------------------------------

def test_birthday_greeting_waits_for_the_send_time_then_goes_once(app, make_staff):
    staff = make_staff(birthday=date(1980, 11, 26))
    make_staff(birthday=date(1980, 11, 27))
    day = date(2026, 11, 26)
    assert run_birthdays(app, at(day, 7, 0)) == 0           # before 08:00
    assert run_birthdays(app, at(day, 8, 0)) == 1
    assert run_birthdays(app, at(day, 8, 1)) == 0           # already done
    assert greeted(app) == {"2026-11-26": [staff]}


def test_scheduler_down_all_morning_still_greets_at_eleven(app, make_staff):
    staff = make_staff(birthday=date(1975, 6, 1))
    day = date(2027, 6, 1)
    assert run_birthdays(app, at(day, 7, 0)) == 0
    # down from 07:00 to 11:00: the next tick is at 11:00
    assert run_birthdays(app, at(day, 11, 0)) == 1
    assert greeted(app) == {"2027-06-01": [staff]}


def test_scheduler_started_the_next_day_sends_none_for_yesterday(app, make_staff):
    make_staff(birthday=date(1975, 6, 1))
    assert run_birthdays(app, at(date(2027, 6, 2), 9, 0)) == 0
    assert greeted(app) == {}


def test_staff_who_left_get_no_birthday_greeting(app, make_staff):
    make_staff(birthday=date(1975, 6, 1), status=StaffStatus.LEFT)
    retired = make_staff(birthday=date(1955, 6, 1), status=StaffStatus.RETIRED)
    run_birthdays(app, at(date(2027, 6, 1), 9))
    assert greeted(app) == {"2027-06-01": [retired]}


def test_29_february_is_celebrated_on_28_february_in_other_years(app, make_staff):
    leapling = make_staff(birthday=date(1988, 2, 29))
    run_birthdays(app, at(date(2027, 2, 28), 9))
    run_birthdays(app, at(date(2028, 2, 28), 9))
    run_birthdays(app, at(date(2028, 2, 29), 9))
    assert greeted(app) == {"2027-02-28": [leapling], "2028-02-29": [leapling]}


def test_lunar_birthday_follows_the_lunar_calendar(app, make_staff):
    lunar = make_staff(birthday=date(1980, 9, 23), birthday_calendar=BirthdayCalendar.LUNAR)
    make_staff(birthday=date(1980, 9, 23))                       # same date, solar: not today
    with app.app_context():
        lunar_year = 2026
        day = lunar_birthday_in_year(date(1980, 9, 23), lunar_year)
    assert day != date(2026, 9, 23)
    run_birthdays(app, at(day, 9))
    assert greeted(app)[day.isoformat()] == [lunar]


def test_born_in_a_leap_month_celebrates_in_the_ordinary_month(app, make_staff):
    # 2020-05-23 is the 1st day of the leap 4th lunar month of 2020
    born = date(2020, 5, 23)
    person = make_staff(birthday=born, birthday_calendar=BirthdayCalendar.LUNAR)
    day = lunar_birthday_in_year(born, 2027)
    from app.services.calendar import lunar_date_of

    assert lunar_date_of(day)[1:] == (4, 1, False)     # the ordinary 4th month, 1st day
    run_birthdays(app, at(day, 9))
    assert greeted(app)[day.isoformat()] == [person]


def test_lunar_30th_in_a_short_month_is_celebrated_on_the_29th(app, make_staff):
    from lunar_python import LunarYear

    from app.services.calendar import lunar_date_of

    born = next(date(1990, 1, 1) + timedelta(days=n) for n in range(400)
                if lunar_date_of(date(1990, 1, 1) + timedelta(days=n))[2] == 30
                and not lunar_date_of(date(1990, 1, 1) + timedelta(days=n))[3])
    month = lunar_date_of(born)[1]
    year = next(y for y in range(2026, 2040) if LunarYear.fromYear(y).getMonth(month).getDayCount() == 29)
    person = make_staff(birthday=born, birthday_calendar=BirthdayCalendar.LUNAR)
    day = lunar_birthday_in_year(born, year)
    assert lunar_date_of(day)[1:3] == (month, 29)
    run_birthdays(app, at(day, 9))
    assert greeted(app)[day.isoformat()] == [person]


# --- holidays ------------------------------------------------------------------------------------------------

def run_holidays(app, now: datetime) -> int:
    with app.app_context(), unit_of_work():
        return holidays.send_due_holiday_notices(now)


def holiday_notices(app) -> dict[str, Notice]:
    with app.app_context():
        return {n.occasion: n for n in db.session.scalars(select(Notice).where(Notice.occasion.like("holiday:%")))}


def plan_for(app, year: int, key: str):
    with app.app_context():
        return next(p for p in holidays.planned_notices(year) if key in p.keys)


def test_womens_day_reaches_only_women_staff(app, make_staff):
    woman = make_staff(gender=Gender.FEMALE)
    make_staff(gender=Gender.MALE)
    make_staff(gender=Gender.FEMALE, status=StaffStatus.RETIRED)
    plan = plan_for(app, 2027, "womens_day")
    assert run_holidays(app, at(plan.send_date, 10)) >= 1
    Sender(app).drain()
    with app.app_context():
        notice = db.session.scalar(select(Notice).where(Notice.occasion == "holiday:2027:womens_day"))
        assert notice.title == "三八妇女节快乐"
        assert db.session.scalars(select(Notification.staff_id).where(
            Notification.notice_id == notice.id)).all() == [woman]


def test_double_ninth_reaches_retirees(app, make_staff):
    make_staff(status=StaffStatus.ACTIVE)
    retiree = make_staff(status=StaffStatus.RETIRED)
    plan = plan_for(app, 2027, "double_ninth")
    run_holidays(app, at(plan.send_date, 10))
    Sender(app).drain()
    with app.app_context():
        notice = db.session.scalar(select(Notice).where(Notice.occasion == "holiday:2027:double_ninth"))
        assert db.session.scalars(select(Notification.staff_id).where(
            Notification.notice_id == notice.id)).all() == [retiree]


def test_mid_autumn_and_national_day_2028_share_one_notice(app, make_staff):
    make_staff()
    plan = plan_for(app, 2028, "mid_autumn")
    assert plan.keys == ("mid_autumn", "national_day")
    run_holidays(app, at(plan.send_date, 10))
    run_holidays(app, at(plan.send_date + timedelta(days=1), 10))
    notices = holiday_notices(app)
    assert list(notices) == ["holiday:2028:mid_autumn+national_day"]
    assert notices["holiday:2028:mid_autumn+national_day"].title == "中秋节、国庆节问候"


def test_holiday_notice_waits_for_its_day_and_time(app, make_staff):
    make_staff()
    plan = plan_for(app, 2027, "dragon_boat")
    assert run_holidays(app, at(plan.send_date - timedelta(days=1), 10)) == 0
    assert run_holidays(app, at(plan.send_date, 8, 59)) == 0
    assert run_holidays(app, at(plan.send_date, 9, 0)) == 1
    assert run_holidays(app, at(plan.send_date, 9, 5)) == 0


def test_switched_off_occasion_sends_nothing(make_app, make_staff):
    app = make_app(**{"holidays.occasions.dragon_boat.enabled": False})
    make_staff()
    plan = next(p for p in holidays_plans(app, 2027) if "labour_day" in p.keys)
    with app.app_context():
        assert all("dragon_boat" not in p.keys for p in holidays.planned_notices(2027))
    run_holidays(app, at(plan.send_date, 10))
    assert "holiday:2027:dragon_boat" not in holiday_notices(app)


def holidays_plans(app, year):
    with app.app_context():
        return holidays.planned_notices(year)


def test_campaign_existing_by_send_time_rides_on_the_holiday_notice(app, client, make_staff, grant, token_for):
    from tests.helpers import bearer

    officer = make_staff()
    grant(officer, "union_officer")
    plan = plan_for(app, 2027, "dragon_boat")
    window = {"pickup_start": at(plan.send_date, 9).isoformat(), "pickup_end": at(plan.send_date, 17).isoformat()}
    created = client.post("/api/v1/officer/campaigns", headers=bearer(token_for(officer)), json={
        "occasion": "dragon_boat", "year": 2027, "gift": "粽子礼盒", "pickup_place": "工会活动中心", **window})
    assert created.status_code == 201, created.json
    run_holidays(app, at(plan.send_date, 10))
    notice = holiday_notices(app)["holiday:2027:dragon_boat"]
    assert notice.kind == "service"
    assert "粽子礼盒" in notice.body and "工会活动中心" in notice.body


def test_campaign_created_after_the_notice_sends_its_own(app, client, make_staff, grant, token_for):
    from tests.helpers import bearer

    officer = make_staff()
    grant(officer, "union_officer")
    plan = plan_for(app, 2027, "mid_autumn")
    run_holidays(app, at(plan.send_date, 10))
    response = client.post("/api/v1/officer/campaigns", headers=bearer(token_for(officer)), json={
        "occasion": "mid_autumn", "year": 2027, "gift": "月饼", "pickup_place": "北门收发室",
        "pickup_start": at(plan.send_date, 9).isoformat(), "pickup_end": at(plan.send_date, 18).isoformat()})
    assert response.status_code == 201
    with app.app_context():
        notice = db.session.scalar(select(Notice).where(Notice.occasion == f"campaign:{response.json['id']}"))
    assert notice.title.endswith("慰问品领取通知") and "北门收发室" in notice.body


def test_bad_campaign_is_refused_clearly(client, make_staff, grant, token_for):
    from tests.helpers import bearer

    officer = make_staff()
    grant(officer, "union_officer")
    response = client.post("/api/v1/officer/campaigns", headers=bearer(token_for(officer)), json={
        "occasion": "christmas", "year": 2027, "gift": "x", "pickup_place": "y",
        "pickup_start": "2027-01-01T09:00:00+08:00", "pickup_end": "2027-01-01T10:00:00+08:00"})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "unknown_occasion"


# --- two scheduler processes ----------------------------------------------------------------------------------

def _with_greeting_channel(app, staff_ids: list[int]) -> None:
    """Mini-program users with one greeting consent each: their greetings reach the fake WeChat server."""
    with app.app_context(), unit_of_work():
        for sid in staff_ids:
            db.session.add(WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"mini-{sid}", staff_id=sid))
            db.session.add(SubscriptionConsent(staff_id=sid, template_id="TPL-MINI-GREETING", remaining=5))


def _wait_for(predicate, attempts: int = 400, interval: float = 0.05) -> None:
    for _ in range(attempts):
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError("condition not reached")


def _leader_pid(redis_client) -> int | None:
    value = redis_client.get(f"{REDIS_PREFIX}scheduler:leader")
    return int(value.decode().split(":")[1]) if value else None


def test_two_schedulers_greet_once_and_a_killed_leader_is_replaced(app, make_staff, subprocess_env, tmp_path,
                                                                    redis_client, fake_wechat):
    day_one, day_two = date(2027, 4, 1), date(2027, 4, 2)
    first = [make_staff(birthday=date(1970 + n, 4, 1)) for n in range(4)]
    second = [make_staff(birthday=date(1970 + n, 4, 2)) for n in range(3)]
    _with_greeting_channel(app, first + second)
    clock = tmp_path / "now.txt"
    set_clock_file(clock, at(day_one, 9))
    env = {**subprocess_env, "SMART_UNION__SCHEDULER__TICK_SECONDS": "0.2",
           "SMART_UNION__SCHEDULER__LEADER_LOCK_SECONDS": "2", "SMART_UNION__APP__CLOCK_FILE": str(clock)}
    procs = [subprocess.Popen([SMART_UNION, "scheduler"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        _wait_for(lambda: "2027-04-01" in greeted(app), attempts=600)
        leader = _leader_pid(redis_client)
        assert leader in {p.pid for p in procs}
        os.kill(leader, signal.SIGKILL)
        set_clock_file(clock, at(day_two, 9))
        _wait_for(lambda: "2027-04-02" in greeted(app), attempts=600)
        assert _leader_pid(redis_client) in {p.pid for p in procs} - {leader}
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=120)     # a job in progress ends first (a lock wait may take a while under load)
    assert greeted(app) == {"2027-04-01": sorted(first), "2027-04-02": sorted(second)}
    with time_machine.travel(at(day_two, 9, 1)):     # the schedulers lived on the clock file's day; so does the sender
        Sender(app).drain()
    delivered = [m["touser"] for m in requests.get(f"{fake_wechat.url}_fake/sent", timeout=10).json()]
    assert sorted(delivered) == sorted(f"mini-{sid}" for sid in first + second)    # each exactly once
