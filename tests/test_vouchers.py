"""Birthday cake vouchers, part 1: issued once per member per year (whoever runs the job, however late), for the
right birthday, to the right people; codes that expire and a check character that catches typos; the holder alone
sees a voucher; one issuance notice, one reminder, none for a void voucher."""

from __future__ import annotations

import threading
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from lunar_python import Lunar
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from app.services import voucher_codes, vouchers
from app.unit_of_work import unit_of_work
from models import BirthdayCalendar, Notice, Notification, Staff, StaffStatus, Voucher, VoucherStatus
from tests.helpers import bearer, error_code, set_clock_file

def beijing(day: date, hour: int = 10) -> datetime:
    return datetime.combine(day, time(hour), ZoneInfo("Asia/Shanghai"))


def issue(app, day: date) -> int:
    with time_machine.travel(beijing(day)), app.app_context(), unit_of_work():
        return vouchers.issue_due_vouchers(clock.now())


def vouchers_of(app, staff_id: int) -> list[Voucher]:
    with app.app_context():
        return list(db.session.scalars(select(Voucher).where(Voucher.staff_id == staff_id)
                                       .order_by(Voucher.year)).unique())


def notices_of(app, prefix: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(Notice.occasion).where(Notice.occasion.like(f"{prefix}%"))))


# --- exactly once ----------------------------------------------------------------------------------------------

def test_issued_once_however_often_the_job_runs(app, make_staff):
    staff_id = make_staff(birthday=date(1980, 6, 15))
    assert issue(app, date(2027, 6, 7)) == 0                 # policy: 7 days before the birthday
    assert issue(app, date(2027, 6, 8)) == 1
    assert issue(app, date(2027, 6, 8)) == 0
    assert issue(app, date(2027, 6, 20)) == 0
    [voucher] = vouchers_of(app, staff_id)
    assert (voucher.year, voucher.birthday, voucher.face_value_fen, voucher.merchant) == \
        (2027, date(2027, 6, 15), 20000, "指定蛋糕店")
    assert notices_of(app, "voucher-issued:") == [f"voucher-issued:{voucher.id}"]


@pytest.mark.row_locks
def test_two_runs_at_once_without_the_leader_lock_issue_one_voucher_each(app, make_staff):
    people = [make_staff(birthday=date(1980 + n, 6, 15)) for n in range(20)]
    results, errors = [], []

    def run(now: datetime):
        try:
            with app.app_context(), unit_of_work():
                results.append(vouchers.issue_due_vouchers(now))
        except Exception as exc:          # noqa: BLE001  (reported below)
            errors.append(exc)
    with time_machine.travel(beijing(date(2027, 6, 10))):     # one clock for both (time-machine is process-wide)
        threads = [threading.Thread(target=run, args=(clock.now(),)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == [] and sum(results) == len(people)
    with app.app_context():
        per_person = db.session.execute(select(Voucher.staff_id, func.count()).group_by(Voucher.staff_id)).all()
    assert sorted(n for _, n in per_person) == [1] * len(people)


def test_after_a_week_of_downtime_a_late_voucher_gets_its_full_validity(app, make_staff):
    staff_id = make_staff(birthday=date(1980, 6, 15))
    assert issue(app, date(2027, 6, 22)) == 1                 # due on 6-08, the scheduler was down until 6-22
    [voucher] = vouchers_of(app, staff_id)
    assert clock.local(voucher.valid_until).date() == date(2027, 6, 22) + timedelta(days=60)


# --- who gets one, for which birthday ---------------------------------------------------------------------------

def test_joiners_leavers_the_deceased_and_retirees(app, make_staff, make_app):
    joined_before = make_staff(birthday=date(1980, 6, 15), member_since=date(2027, 3, 1))
    joined_after = make_staff(birthday=date(1980, 6, 15), member_since=date(2027, 6, 20))
    left = make_staff(birthday=date(1980, 6, 15), status=StaffStatus.LEFT)
    retiree = make_staff(birthday=date(1950, 6, 15), status=StaffStatus.RETIRED)
    assert issue(app, date(2027, 6, 10)) == 2
    assert [len(vouchers_of(app, s)) for s in (joined_before, joined_after, left, retiree)] == [1, 0, 0, 1]
    no_retirees = make_app()
    with no_retirees.app_context(), unit_of_work():
        vouchers.change_policy(_union_officer(), {"retirees_eligible": False})
    other_retiree = make_staff(birthday=date(1950, 6, 16), status=StaffStatus.RETIRED)
    assert issue(app, date(2027, 6, 10)) == 0 and vouchers_of(app, other_retiree) == []


def test_leaving_or_dying_voids_the_unused_voucher_and_ends_everything(app, client, make_staff, grant, token_for):
    officer = make_staff("U1", name="工会干事")
    grant(officer, "union_officer")
    member = make_staff("M1", name="张老师", birthday=date(1980, 6, 15))
    token = token_for(member)
    issue(app, date(2027, 6, 10))
    with time_machine.travel(beijing(date(2027, 6, 11))):
        response = client.patch("/api/v1/officer/staff/M1", json={"died_on": "2027-06-11"},
                                headers=bearer(token_for(officer)))
        assert response.status_code == 200 and response.json["died_on"] == "2027-06-11"
        assert client.get("/api/v1/vouchers", headers=bearer(token)).status_code == 401     # sessions ended
    [voucher] = vouchers_of(app, member)
    assert (voucher.status, voucher.void_reason) == (VoucherStatus.VOID, "去世")
    assert issue(app, date(2028, 6, 10)) == 0                 # none the next year
    with app.app_context():
        statuses = set(db.session.scalars(select(Notification.status).join(Notification.notice).where(
            Notice.occasion == f"voucher-issued:{voucher.id}")))
    assert {s.value for s in statuses} <= {"cancelled"}           # the issuance notice, if unsent, is withdrawn


def test_29_february_births_get_theirs_on_28_february_in_common_years(app, make_staff):
    staff_id = make_staff(birthday=date(1988, 2, 29))
    issue(app, date(2027, 2, 21))
    issue(app, date(2028, 2, 22))
    assert [v.birthday for v in vouchers_of(app, staff_id)] == [date(2027, 2, 28), date(2028, 2, 29)]


def test_lunar_birthdays_that_fall_twice_or_never_in_a_solar_year(app, make_staff):
    born = Lunar.fromYmd(1979, 12, 1).getSolar()               # lunar 12-01 of 1979: early 1980
    birthday = date(born.getYear(), born.getMonth(), born.getDay())
    staff_id = make_staff(birthday=birthday, birthday_calendar=BirthdayCalendar.LUNAR)
    issue(app, date(2027, 12, 31))                            # 2027: lunar 12-01 falls on 01-08 and 12-28
    issue(app, date(2028, 12, 31))                            # 2028: it falls on no day of the year
    assert [(v.year, v.birthday) for v in vouchers_of(app, staff_id)] == \
        [(2027, date(2027, 1, 8)), (2028, birthday.replace(year=2028))]


# --- what the holder shows --------------------------------------------------------------------------------------

def test_every_single_character_typo_is_refused_before_any_lookup():
    """No app context here: a lookup would fail; the check character refuses the typo alone."""
    code = voucher_codes.short_code(12345, "secret", window=1000)
    assert len(code) == 10 and voucher_codes.parse_short_code(code.lower()).voucher_id == 12345
    for position in range(len(code)):
        for replacement in voucher_codes.ALPHABET:
            if replacement != code[position]:
                typo = code[:position] + replacement + code[position + 1:]
                assert voucher_codes.parse_short_code(typo) is None, typo
    for bad in ("0" + code[1:], code[:-1], code + "2", "IIIIIIIIII"):
        assert voucher_codes.parse_short_code(bad) is None


def test_shown_codes_stop_working_after_their_window():
    secret, serial = "s3cret", "ABCDEF0123456789"
    code = voucher_codes.short_code(7, secret, 500)
    token = voucher_codes.qr_token(serial, 7, secret, 500)
    assert voucher_codes.matches(code, 7, serial, secret, 500)
    assert voucher_codes.matches(token, 7, serial, secret, 501)         # the next window too
    assert not voucher_codes.matches(code, 7, serial, secret, 502)      # then no more
    assert not voucher_codes.matches(token, 7, serial, secret, 502)


def test_the_holder_shows_a_qr_and_a_code_and_nobody_else_sees_the_voucher(app, client, make_staff, token_for):
    holder, other = make_staff("H1", birthday=date(1980, 6, 15)), make_staff("H2", birthday=date(1981, 6, 15))
    issue(app, date(2027, 6, 10))
    [mine], [theirs] = vouchers_of(app, holder), vouchers_of(app, other)
    with time_machine.travel(beijing(date(2027, 6, 12))):
        shown = client.post(f"/api/v1/vouchers/{mine.id}/show", headers=bearer(token_for(holder)))
        assert shown.status_code == 200
        assert voucher_codes.parse_short_code(shown.json["short_code"]).voucher_id == mine.id
        qr = client.get(shown.json["qr_url"], headers=bearer(token_for(holder)))
        assert qr.status_code == 200 and qr.mimetype == "image/svg+xml" and b"<svg" in qr.data
        for path in (f"/api/v1/vouchers/{theirs.id}", f"/api/v1/vouchers/{theirs.id}/show"):
            method = client.post if path.endswith("show") else client.get
            assert error_code(method(path, headers=bearer(token_for(holder)))) == "voucher_not_found"
        detail = client.get(f"/api/v1/vouchers/{mine.id}", headers=bearer(token_for(holder))).json
        assert [e["action"] for e in detail["history"]] == ["issued", "shown"]
        assert (detail["status_label"], detail["face_value"]) == ("有效", "200 元")


# --- notices, expiry, voiding -----------------------------------------------------------------------------------

def test_one_issuance_notice_one_reminder_and_none_for_a_void_voucher(app, client, make_staff, grant, token_for):
    officer = make_staff("U1", name="工会干事")
    grant(officer, "union_officer")
    kept, voided = make_staff(birthday=date(1980, 6, 15)), make_staff(birthday=date(1981, 6, 15))
    issue(app, date(2027, 6, 10))
    [void_me] = vouchers_of(app, voided)
    response = client.post(f"/api/v1/officer/vouchers/{void_me.id}/void", json={"reason": "重复发放"},
                           headers=bearer(token_for(officer)))
    assert response.status_code == 200 and response.json["status"] == "void"
    for day in (date(2027, 8, 1), date(2027, 8, 2), date(2027, 8, 5)):       # inside the 7 days before expiry
        with time_machine.travel(beijing(day)), app.app_context(), unit_of_work():
            vouchers.remind_expiring(clock.now())
    assert len(notices_of(app, "voucher-expiring:")) == 1
    with time_machine.travel(beijing(date(2027, 8, 11))), app.app_context(), unit_of_work():
        assert vouchers.expire_vouchers(clock.now()) == 1
    assert vouchers_of(app, kept)[0].status is VoucherStatus.EXPIRED
    with app.app_context():
        void_notice_states = set(db.session.scalars(select(Notification.status).join(Notification.notice).where(
            Notice.occasion == f"voucher-issued:{void_me.id}")))
    assert {s.value for s in void_notice_states} <= {"cancelled"}


def test_policy_changes_are_versions_and_issued_vouchers_keep_theirs(app, client, make_staff, grant, token_for):
    officer = make_staff("U1", name="工会干事")
    grant(officer, "union_officer")
    member = make_staff(birthday=date(1980, 6, 15))
    issue(app, date(2027, 6, 10))
    changed = client.put("/api/v1/officer/voucher-policy", json={"face_value_fen": 25000, "merchant": "新蛋糕店"},
                         headers=bearer(token_for(officer)))
    assert (changed.status_code, changed.json["version"], changed.json["cost_fen"]) == (200, 2, 18000)
    over = client.put("/api/v1/officer/voucher-policy", json={"face_value_fen": 40000},
                      headers=bearer(token_for(officer)))
    assert over.status_code == 422                            # never above the yearly cap
    assert vouchers_of(app, member)[0].face_value_fen == 20000


def _union_officer() -> Staff:
    from app.services import roster
    from models import Role

    staff, _ = roster.upsert_staff("POLICY1", roster.StaffFields(name="政策管理"), actor_label="test")
    roster.grant_role(staff, Role.UNION_OFFICER, actor_label="test")
    db.session.flush()
    return staff


# --- reissue, a new bakery, printed vouchers, the official account, the HR import --------------------------------

@pytest.fixture
def officer_token(make_staff, grant, token_for):
    officer = make_staff("U1", name="工会干事")
    grant(officer, "union_officer")
    return token_for(officer)


def test_reissue_gives_a_new_serial_on_the_same_row_and_never_for_a_redeemed_voucher(app, client, make_staff,
                                                                                     officer_token):
    member = make_staff(birthday=date(1980, 6, 15))
    issue(app, date(2027, 6, 10))
    [voucher] = vouchers_of(app, member)
    url = f"/api/v1/officer/vouchers/{voucher.id}"
    assert error_code(client.post(f"{url}/reissue", json={"reason": "x"}, headers=bearer(officer_token))) == \
        "voucher_not_reissuable"                                           # still valid
    client.post(f"{url}/void", json={"reason": "遗失"}, headers=bearer(officer_token))
    again = client.post(f"{url}/reissue", json={"reason": "核实后补发"}, headers=bearer(officer_token))
    assert (again.status_code, again.json["id"], again.json["status"]) == (200, voucher.id, "valid")
    assert again.json["serial"] != voucher.serial
    [reissued] = vouchers_of(app, member)                                 # still one voucher for the year
    with app.app_context():
        history = [(e.action, e.detail.get("old_serial")) for e in db.session.get(Voucher, reissued.id).history]
    assert history[-2:] == [("voided", None), ("reissued", voucher.serial)]
    with app.app_context(), unit_of_work():
        db.session.get(Voucher, voucher.id).status = VoucherStatus.REDEEMED
    assert error_code(client.post(f"{url}/reissue", json={"reason": "x"}, headers=bearer(officer_token))) == \
        "voucher_not_reissuable"


def test_a_new_bakery_moves_every_unused_voucher_of_the_year(app, client, make_staff, officer_token):
    unused, used = make_staff(birthday=date(1980, 6, 15)), make_staff(birthday=date(1981, 6, 15))
    issue(app, date(2027, 6, 10))
    with app.app_context(), unit_of_work():
        vouchers_of_used = db.session.scalar(select(Voucher).where(Voucher.staff_id == used))
        vouchers_of_used.status = VoucherStatus.REDEEMED
    client.put("/api/v1/officer/voucher-policy", json={"merchant": "新蛋糕店", "face_value_fen": 22000},
               headers=bearer(officer_token))
    moved = client.post("/api/v1/officer/vouchers/move-to-current-merchant", json={"year": 2027},
                        headers=bearer(officer_token))
    assert moved.json == {"moved": 1}
    [voucher] = vouchers_of(app, unused)
    assert (voucher.merchant, voucher.face_value_fen, voucher.policy_version) == ("新蛋糕店", 22000, 2)
    assert vouchers_of(app, used)[0].merchant == "指定蛋糕店"               # a redeemed voucher stays as it was


def test_a_printed_voucher_has_its_own_code_and_leaves_the_mini_program(app, client, make_staff, officer_token,
                                                                         token_for):
    member = make_staff("R1", name="退休老师", birthday=date(1950, 6, 15), status=StaffStatus.RETIRED)
    issue(app, date(2027, 6, 10))
    [voucher] = vouchers_of(app, member)
    printed = client.post(f"/api/v1/officer/vouchers/{voucher.id}/print", headers=bearer(officer_token))
    code = printed.json["printed_code"]
    assert printed.status_code == 201 and len(code) == 16
    assert voucher_codes.check_character(code[:-1]) == code[-1]
    shown = client.post(f"/api/v1/vouchers/{voucher.id}/show", headers=bearer(token_for(member)))
    assert error_code(shown) == "voucher_printed"
    with app.app_context():
        assert db.session.get(Voucher, voucher.id).printed_code_hash == vouchers.printed_code_hash(code)


def test_the_official_account_tells_a_voucher_status_never_a_code(app, client, make_staff):
    from tests.wechat_client import WeChatPusher

    member = make_staff("M1", name="张老师", birthday=date(1980, 6, 15))
    with app.app_context(), unit_of_work():
        from models import WeChatApp, WeChatIdentity

        db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid="o-member01", staff_id=member,
                                      following=True))
    issue(app, date(2027, 6, 10))
    [voucher] = vouchers_of(app, member)
    wechat = WeChatPusher(client)
    with time_machine.travel(beijing(date(2027, 6, 12))):
        reply = wechat.push(wechat.text("o-member01", "生日券")).content
    assert "2027 年：有效" in reply and "200 元" in reply
    assert voucher.serial not in reply and voucher.secret not in reply


def test_the_hr_import_records_a_death_and_voids_the_voucher(app, make_staff, tmp_path):
    from tests.test_staff_import import HEADER, run_import, write_csv

    make_staff("00001", name="张三", birthday=date(1980, 6, 15))
    issue(app, date(2027, 6, 10))
    with time_machine.travel(beijing(date(2027, 6, 20))), app.app_context():
        row = ["00001", "张三", "男", "1980-06-15", "计算机学院", "信息分工会", "13800138000", "在职", "2027-06-18"]
        report = run_import(write_csv(tmp_path / "roster.csv", [row], header=[*HEADER, "去世日期"]))
        assert report.updated == ["00001"]
    with app.app_context():
        staff = db.session.scalar(select(Staff).where(Staff.employee_no == "00001"))
        assert staff.died_on == date(2027, 6, 18)
        assert db.session.scalar(select(Voucher.status).where(Voucher.staff_id == staff.id)) is VoucherStatus.VOID


def test_two_scheduler_processes_issue_each_voucher_once(app, make_staff, subprocess_env, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.test_scheduler import _wait_for

    people = [make_staff(birthday=date(1970 + n, 4, 5 + n % 3)) for n in range(8)]
    now_file = tmp_path / "now.txt"
    set_clock_file(now_file, beijing(date(2027, 4, 1), 9))
    env = {**subprocess_env, "SMART_UNION__SCHEDULER__TICK_SECONDS": "0.2",
           "SMART_UNION__SCHEDULER__LEADER_LOCK_SECONDS": "2", "SMART_UNION__APP__CLOCK_FILE": str(now_file)}
    command = [str(Path(sys.executable).parent / "smart-union"), "scheduler"]
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(2)]

    def issued() -> int:
        with app.app_context():
            return db.session.scalar(select(func.count()).select_from(Voucher))
    try:
        _wait_for(lambda: issued() == len(people), attempts=600)
        for _ in range(10):                       # a few more ticks of both processes: nothing more
            set_clock_file(now_file, beijing(date(2027, 4, 2), 9))
            threading.Event().wait(0.1)
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=120)     # a job in progress ends first (a lock wait may take a while under load)
    assert issued() == len(people)
    assert len(notices_of(app, "voucher-issued:")) == len(people)
