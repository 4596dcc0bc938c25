"""Events: officers create and publish them; staff sign up, wait, cancel and sign up again; seats, places per
sub-union, questions, windows and deadlines, scopes, and what people are told. (Concurrency: test_events_load.py;
check-in and export: test_events_checkin.py; reminders: test_events_jobs.py.)"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select

from app.extensions import db
from app.services.events import cards as event_cards
from models import AuditLog, Notice, Notification, SignupStatus, Staff
from tests.events_support import (
    by_status, create_event, event_body, event_row, iso, signups_of, sub_union_id,
)
from tests.helpers import bearer, error_code

CONFIRMED, WAITLISTED, CANCELLED = SignupStatus.CONFIRMED, SignupStatus.WAITLISTED, SignupStatus.CANCELLED


@pytest.fixture
def officer(make_staff, grant, token_for):
    staff_id = make_staff(employee_no="OFF01", name="工会干事")
    grant(staff_id, "union_officer")
    return token_for(staff_id)


@pytest.fixture
def member(make_staff, token_for):
    """Makes a staff member and returns (staff id, token)."""
    def _make(sub_union: str = "机关分工会", **extra) -> tuple[int, str]:
        staff_id = make_staff(sub_union=sub_union, **extra)
        return staff_id, token_for(staff_id)
    return _make


def sign_up(client, event_id: int, token: str, answers: dict | None = None):
    return client.post(f"/api/v1/events/{event_id}/signup", json={"answers": answers or {}}, headers=bearer(token))


def cancel(client, event_id: int, token: str):
    return client.post(f"/api/v1/events/{event_id}/cancel", headers=bearer(token))


def notified(app, occasion_prefix: str) -> list[tuple[str, int]]:
    with app.app_context():
        return sorted(db.session.execute(select(Notice.occasion, Notification.staff_id).join(Notification.notice)
                                         .where(Notice.occasion.like(f"{occasion_prefix}%"))).all())


# --- publishing and listing ---------------------------------------------------------------------------------------

def test_draft_is_invisible_to_staff_until_published(client, officer, member):
    _, token = member()
    event_id = create_event(client, officer, publish=False)
    assert client.get("/api/v1/events", headers=bearer(token)).json["items"] == []
    assert error_code(client.get(f"/api/v1/events/{event_id}", headers=bearer(token))) == "event_not_found"
    assert error_code(sign_up(client, event_id, token)) == "event_not_found"
    client.post(f"/api/v1/officer/events/{event_id}/publish", json={}, headers=bearer(officer))
    [item] = client.get("/api/v1/events", headers=bearer(token)).json["items"]
    assert (item["id"], item["phase"], item["phase_label"], item["seats_left"]) == (event_id, "open", "报名中", 10)
    assert item["category_label"] == "体育" and item["my_signup"] is None


def test_publishing_notifies_the_audience_once(app, client, officer, member):
    member()
    event_id = create_event(client, officer, notify=True)
    with app.app_context():
        notice = db.session.scalar(select(Notice).where(Notice.occasion == f"event-published:{event_id}"))
    assert notice.title == "活动报名：教职工气排球赛" and notice.page == f"pages/events/detail?id={event_id}"
    client.post(f"/api/v1/officer/events/{event_id}/close", headers=bearer(officer))
    client.post(f"/api/v1/officer/events/{event_id}/publish", json={"notify": True}, headers=bearer(officer))
    with app.app_context():
        assert db.session.scalar(select(Notice.id).where(Notice.occasion.like("event-published:%"))) == notice.id



@pytest.mark.parametrize(("category", "opening"), [("sports", "体育活动“读书分享会”开始报名"),
                                                   ("other", "活动“读书分享会”开始报名")])
def test_the_notice_names_the_kind_of_event_in_plain_chinese(app, client, officer, member, category, opening):
    member()
    event_id = create_event(client, officer, notify=True, title="读书分享会", category=category)
    with app.app_context():
        notice = db.session.scalar(select(Notice).where(Notice.occasion == f"event-published:{event_id}"))
    assert notice.body.startswith(opening)


def test_a_post_with_no_body_means_the_defaults_where_nothing_is_required(client, officer, member):
    """`curl -X POST …/publish` and `…/signup` work like cancel and close do; login still says what it needs."""
    _, token = member()
    event_id = create_event(client, officer, publish=False)
    published = client.post(f"/api/v1/officer/events/{event_id}/publish", headers=bearer(officer))
    assert published.status_code == 200, published.json
    signed = client.post(f"/api/v1/events/{event_id}/signup", headers=bearer(token))
    assert signed.status_code == 200 and signed.json["status"] == "confirmed"
    assert client.post("/api/v1/auth/login").status_code == 415
    empty_json = client.post("/api/v1/auth/login", data="", content_type="application/json")
    assert empty_json.status_code == 400


def test_times_are_typed_and_answered_in_beijing_time(client, officer):
    beijing = ZoneInfo("Asia/Shanghai")
    starts = (datetime.now(beijing) + timedelta(days=3)).replace(hour=14, minute=0, second=0, microsecond=0)
    typed = starts.replace(tzinfo=None).isoformat()          # 2026-12-03T14:00:00, as an officer types it
    created = client.post("/api/v1/officer/events", headers=bearer(officer),
                          json=event_body(starts_at=typed, ends_at=iso(starts + timedelta(hours=2))))
    assert created.status_code == 201, created.json
    assert created.json["starts_at"] == typed + "+08:00"                    # and it is answered in Beijing time


def test_the_publish_answer_names_the_notice_whose_delivery_the_officer_follows(client, officer, member):
    member()
    quiet = create_event(client, officer, publish=False)
    assert client.post(f"/api/v1/officer/events/{quiet}/publish", json={"notify": False},
                       headers=bearer(officer)).json["notice_id"] is None
    loud = create_event(client, officer, publish=False)
    notice_id = client.post(f"/api/v1/officer/events/{loud}/publish", json={"notify": True},
                            headers=bearer(officer)).json["notice_id"]
    report = client.get(f"/api/v1/officer/notices/{notice_id}/report", headers=bearer(officer))
    assert report.status_code == 200 and report.json["occasion"] == f"event-published:{loud}"

def test_listing_shows_my_status_and_seats_left_in_a_constant_number_of_queries(client, officer, member,
                                                                                   count_queries, app):
    me, token = member()
    others = [member()[1] for _ in range(2)]
    first = create_event(client, officer, capacity=2)
    create_event(client, officer, title="读书节", category="culture")
    sign_up(client, first, token)
    with count_queries() as one:
        client.get("/api/v1/events", headers=bearer(token))
    for i in range(3):
        create_event(client, officer, title=f"活动{i}")
    for other in others:
        sign_up(client, first, other)
    with count_queries() as many:
        items = client.get("/api/v1/events", headers=bearer(token)).json["items"]
    assert many.count == one.count
    assert len(items) == 5
    volleyball = next(i for i in items if i["id"] == first)
    assert volleyball["seats_left"] == 0 and volleyball["my_signup"]["status"] == "confirmed"
    assert all(i["my_signup"] is None for i in items if i["id"] != first)


def test_open_events_for_lists_only_what_i_can_sign_up_for_now(app, client, officer, member):
    me, token = member(sub_union="外语分工会")
    open_id = create_event(client, officer)
    create_event(client, officer, title="还没开始报名", signup_opens_at=iso(datetime.now(timezone.utc) + timedelta(hours=3)))
    other = sub_union_id(app, "数学分工会")
    create_event(client, officer, title="别的分工会", audience={"sub_union_ids": [other]})
    with app.app_context():
        cards = event_cards.open_events_for(db.session.get(Staff, me))
    assert [c.event.id for c in cards] == [open_id]


# --- seats, the waiting list, cancelling ----------------------------------------------------------------------------

def test_signup_waitlisted_when_event_full(client, officer, member):
    event_id = create_event(client, officer, capacity=2)
    replies = [sign_up(client, event_id, member()[1]).json for _ in range(4)]
    assert [r["status"] for r in replies] == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    assert [r["position"] for r in replies] == [None, None, 1, 2]
    assert replies[2]["status_label"] == "候补" and replies[2]["checkin_code"] is None
    assert replies[0]["checkin_code"]


def test_signing_up_twice_is_one_signup(app, client, officer, member):
    event_id = create_event(client, officer)
    _, token = member()
    first, second = sign_up(client, event_id, token), sign_up(client, event_id, token)
    assert first.status_code == second.status_code == 200
    assert first.json == second.json
    assert len(signups_of(app, event_id)) == 1
    assert event_row(app, event_id).confirmed_count == 1


def test_full_event_without_waiting_list_refuses(client, officer, member):
    event_id = create_event(client, officer, capacity=1, waitlist_enabled=False)
    assert sign_up(client, event_id, member()[1]).status_code == 200
    resp = sign_up(client, event_id, member()[1])
    assert (resp.status_code, resp.json["error"]) == (409, {"code": "event_full", "message": "活动名额已满"})


def test_cancelling_promotes_the_first_waitlisted_and_tells_them(app, client, officer, member):
    event_id = create_event(client, officer, capacity=1)
    (a, ta), (b, tb), (c, tc) = member(), member(), member()
    for token in (ta, tb, tc):
        sign_up(client, event_id, token)
    resp = cancel(client, event_id, ta)
    assert (resp.status_code, resp.json["status"]) == (200, "cancelled")
    assert [s.staff_id for s in by_status(app, event_id, CONFIRMED)] == [b]
    assert [s.staff_id for s in by_status(app, event_id, WAITLISTED)] == [c]
    assert sign_up(client, event_id, tc).json["position"] == 1
    [(occasion, who)] = notified(app, "event-promoted:")
    assert who == b
    inbox = client.get("/api/v1/inbox", headers=bearer(tb)).json["items"]
    assert inbox[0]["title"] == "候补成功：教职工气排球赛"
    assert cancel(client, event_id, ta).json["status"] == "cancelled"          # twice is harmless
    assert len(notified(app, "event-promoted:")) == 1


def test_cancelled_person_signs_up_again_at_the_end_of_the_queue(app, client, officer, member):
    event_id = create_event(client, officer, capacity=1)
    (a, ta), (b, tb) = member(), member()
    sign_up(client, event_id, ta)
    sign_up(client, event_id, tb)
    row_before = signups_of(app, event_id)[0]
    cancel(client, event_id, ta)                      # b is promoted
    again = sign_up(client, event_id, ta).json
    assert (again["status"], again["position"]) == ("waitlisted", 1)
    rows = {s.staff_id: s for s in signups_of(app, event_id)}
    assert rows[a].id == row_before.id                 # the same row, re-activated
    assert rows[a].sequence > rows[b].sequence
    assert len(rows) == 2
    assert (event_row(app, event_id).confirmed_count, event_row(app, event_id).waitlisted_count) == (1, 1)


def test_waitlisted_person_cancelling_frees_no_seat(app, client, officer, member):
    event_id = create_event(client, officer, capacity=1)
    tokens = [member()[1] for _ in range(3)]
    for token in tokens:
        sign_up(client, event_id, token)
    cancel(client, event_id, tokens[1])
    assert len(by_status(app, event_id, CONFIRMED)) == 1
    assert sign_up(client, event_id, tokens[2]).json["position"] == 1
    assert notified(app, "event-promoted:") == []
    assert (event_row(app, event_id).confirmed_count, event_row(app, event_id).waitlisted_count) == (1, 1)


def test_lowering_capacity_below_confirmed_is_refused_and_raising_it_promotes(app, client, officer, member):
    event_id = create_event(client, officer, capacity=3)
    people = [member() for _ in range(5)]
    for _, token in people:
        sign_up(client, event_id, token)
    url = f"/api/v1/officer/events/{event_id}"
    resp = client.patch(url, json={"capacity": 2}, headers=bearer(officer))
    assert (resp.status_code, error_code(resp)) == (409, "capacity_below_confirmed")
    assert "已有 3 人报名成功" in resp.json["error"]["message"]
    resp = client.patch(url, json={"capacity": 4}, headers=bearer(officer))
    assert resp.json["counts"] == {"confirmed": 4, "waitlisted": 1, "cancelled": 0, "attended": 0}
    assert [who for _, who in notified(app, "event-promoted:")] == [people[3][0]]


def test_cancelling_the_event_tells_everyone_signed_up(app, client, officer, member):
    event_id = create_event(client, officer, capacity=1, notify=True)
    people = [member() for _ in range(3)]
    for _, token in people:
        sign_up(client, event_id, token)
    cancel(client, event_id, people[2][1])
    resp = client.post(f"/api/v1/officer/events/{event_id}/cancel", json={"reason": "场馆检修"},
                       headers=bearer(officer))
    assert (resp.status_code, resp.json["status"]) == (200, "cancelled")
    assert notified(app, "event-cancelled:") == sorted((f"event-cancelled:{event_id}", p[0]) for p in people[:2])
    with app.app_context():
        body = db.session.scalar(select(Notice.body).where(Notice.occasion == f"event-cancelled:{event_id}"))
        published = db.session.scalar(select(Notice.status).where(Notice.occasion == f"event-published:{event_id}"))
    assert "场馆检修" in body and published.value == "cancelled"
    assert error_code(sign_up(client, event_id, member()[1])) == "event_cancelled"


# --- windows, deadlines, audience, answers ----------------------------------------------------------------------------

def test_signup_window_and_cancellation_deadline(app, client, officer, member):
    now = datetime.now(timezone.utc)
    event_id = create_event(client, officer, signup_opens_at=iso(now + timedelta(hours=1)),
                            signup_closes_at=iso(now + timedelta(hours=5)),
                            cancel_deadline=iso(now + timedelta(hours=6)))
    (me, token), (other, other_token), (third, third_token) = member(), member(), member()
    resp = sign_up(client, event_id, token)
    assert (resp.status_code, error_code(resp)) == (409, "signup_not_started")
    assert "报名尚未开始" in resp.json["error"]["message"]
    with time_machine.travel(now + timedelta(hours=2)):
        for t in (token, other_token, third_token):
            assert sign_up(client, event_id, t).json["status"] == "confirmed"
    with time_machine.travel(now + timedelta(hours=5, minutes=1)):
        assert error_code(sign_up(client, event_id, member()[1])) == "signup_closed"
        assert cancel(client, event_id, other_token).json["status"] == "cancelled"   # before the deadline
    with time_machine.travel(now + timedelta(hours=6, minutes=1)):
        resp = cancel(client, event_id, token)
        assert (resp.status_code, error_code(resp)) == (409, "cancel_deadline_passed")
        employee_no = client.get("/api/v1/me", headers=bearer(token)).json["employee_no"]
        resp = client.post(f"/api/v1/officer/events/{event_id}/signups/{employee_no}/cancel", headers=bearer(officer))
        assert resp.json["signup"]["status"] == "cancelled"          # an officer may, until the event starts
    with time_machine.travel(now + timedelta(days=2, minutes=1)):
        assert error_code(cancel(client, event_id, third_token)) == "event_started"
        resp = client.post(f"/api/v1/officer/events/{event_id}/signups/{employee_no}/cancel", headers=bearer(officer))
        assert resp.status_code == 200                 # already cancelled: harmless


def test_outside_the_audience_is_refused(app, client, officer, member):
    retired_only = create_event(client, officer, audience={"statuses": ["retired"]})
    _, token = member()
    resp = sign_up(client, retired_only, token)
    assert (resp.status_code, error_code(resp)) == (404, "event_not_found")
    assert client.get("/api/v1/events", headers=bearer(token)).json["items"] == []


def test_questions_required_and_single_choice(app, client, officer, member):
    questions = [{"key": "size", "label": "T恤尺码", "kind": "choice", "required": True, "options": ["S", "M", "L"]},
                 {"key": "team", "label": "参赛队伍", "kind": "text"}]
    event_id = create_event(client, officer, questions=questions)
    _, token = member()
    resp = sign_up(client, event_id, token, {"team": "一队"})
    assert (resp.status_code, resp.json["error"]["code"], resp.json["error"]["message"]) == \
        (422, "answer_required", "请填写“T恤尺码”")
    assert error_code(sign_up(client, event_id, token, {"size": "XXL"})) == "invalid_answer"
    assert error_code(sign_up(client, event_id, token, {"size": "M", "age": "40"})) == "unknown_question"
    assert signups_of(app, event_id) == []
    ok = sign_up(client, event_id, token, {"size": " M ", "team": "一队"}).json
    assert ok["answers"] == {"size": "M", "team": "一队"}
    assert [s.answers for s in signups_of(app, event_id)] == [{"size": "M", "team": "一队"}]    # kept as shown
    detail = client.get(f"/api/v1/events/{event_id}", headers=bearer(token)).json
    assert [q["key"] for q in detail["questions"]] == ["size", "team"] and detail["eligible"] is True


def test_invalid_schedules_are_refused_in_chinese(client, officer):
    now = datetime.now(timezone.utc)
    resp = client.post("/api/v1/officer/events", json=event_body(ends_at=iso(now)), headers=bearer(officer))
    assert (resp.status_code, resp.json["error"]["message"]) == (422, "活动结束时间必须晚于开始时间")
    body = event_body(signup_closes_at=iso(now + timedelta(days=3)))
    assert client.post("/api/v1/officer/events", json=body, headers=bearer(officer)).json["error"]["message"] == \
        "报名截止时间不能晚于活动开始时间"
    body = event_body(questions=[{"key": "size", "label": "尺码", "kind": "choice", "options": ["S"]}])
    assert "单选题至少需要两个不同的选项" in client.post("/api/v1/officer/events", json=body,
                                                       headers=bearer(officer)).json["error"]["message"]


def test_places_are_required_and_the_422_says_which_field(client, officer):
    body = event_body()
    del body["capacity"]
    resp = client.post("/api/v1/officer/events", json=body, headers=bearer(officer))
    assert resp.status_code == 422 and "capacity" in resp.json["error"]["message"]
    resp = client.post("/api/v1/officer/events", json=event_body(capacity=0), headers=bearer(officer))
    assert resp.status_code == 422 and "capacity" in resp.json["error"]["message"]
    assert client.patch(f"/api/v1/officer/events/{create_event(client, officer)}", json={"place": "礼堂"},
                        headers=bearer(officer)).status_code == 200     # a PATCH leaves places alone


# --- places per sub-union (名额分配) --------------------------------------------------------------------------------

def test_places_per_sub_union_are_separate_pools(app, client, officer, member):
    team_a, team_b = sub_union_id(app, "一队分工会"), sub_union_id(app, "二队分工会")
    event_id = create_event(client, officer, quotas=[{"sub_union_id": team_a, "places": 1},
                                                     {"sub_union_id": team_b, "places": 1}])
    (a1, ta1), (a2, ta2) = member("一队分工会"), member("一队分工会")
    (b1, tb1), (b2, tb2) = member("二队分工会"), member("二队分工会")
    assert [sign_up(client, event_id, t).json["status"] for t in (ta1, ta2, tb1, tb2)] == \
        ["confirmed", "waitlisted", "confirmed", "waitlisted"]
    assert sign_up(client, event_id, tb2).json["position"] == 1          # first in its own pool's queue
    resp = sign_up(client, event_id, member("三队分工会")[1])
    assert (resp.status_code, error_code(resp)) == (403, "no_places_for_sub_union")
    cancel(client, event_id, ta1)
    assert sorted(s.staff_id for s in by_status(app, event_id, CONFIRMED)) == sorted([a2, b1])
    detail = client.get(f"/api/v1/officer/events/{event_id}", headers=bearer(officer)).json
    assert detail["capacity"] == 2
    assert [(q["sub_union"], q["places"], q["confirmed"]) for q in detail["quotas"]] == \
        [("一队分工会", 1, 1), ("二队分工会", 1, 1)]
    resp = client.patch(f"/api/v1/officer/events/{event_id}", headers=bearer(officer),
                        json={"quotas": [{"sub_union_id": team_a, "places": 1}, {"sub_union_id": team_b, "places": 2}]})
    assert resp.json["counts"]["confirmed"] == 3 and resp.json["capacity"] == 3
    assert sorted(s.staff_id for s in by_status(app, event_id, CONFIRMED)) == sorted([a2, b1, b2])
    assert [(q["confirmed"], q["waitlisted"]) for q in resp.json["quotas"]] == [(1, 0), (2, 0)]


# --- officers: scope, proxies, audit ---------------------------------------------------------------------------------

def test_sub_union_officer_manages_only_their_own_sub_unions_events(app, client, officer, make_staff, grant,
                                                                    token_for):
    chair = make_staff(employee_no="SUB01", sub_union="外语分工会")
    grant(chair, "sub_union_officer", "外语分工会")
    own, other = sub_union_id(app, "外语分工会"), sub_union_id(app, "数学分工会")
    token = token_for(chair)
    resp = client.post("/api/v1/officer/events", json=event_body(), headers=bearer(token))
    assert resp.status_code == 201 and resp.json["audience"]["sub_union_ids"] == [own]
    body = event_body(audience={"sub_union_ids": [other]})
    assert error_code(client.post("/api/v1/officer/events", json=body, headers=bearer(token))) == "out_of_scope"
    body = event_body(quotas=[{"sub_union_id": other, "places": 4}])
    assert error_code(client.post("/api/v1/officer/events", json=body, headers=bearer(token))) == "out_of_scope"
    union_wide = create_event(client, officer)
    assert [e["id"] for e in client.get("/api/v1/officer/events", headers=bearer(token)).json["items"]] == \
        [resp.json["id"]]
    resp = client.post(f"/api/v1/officer/events/{union_wide}/cancel", json={}, headers=bearer(token))
    assert resp.status_code == 404


def test_officer_signs_up_and_cancels_for_a_retiree_and_it_is_audited(app, client, officer, make_staff, grant,
                                                                     token_for):
    from models import StaffStatus

    make_staff(employee_no="R0001", name="退休老师", status=StaffStatus.RETIRED, sub_union="离退休分工会")
    make_staff(employee_no="M0001", sub_union="数学分工会")
    chair = make_staff(employee_no="SUB02", sub_union="离退休分工会")
    grant(chair, "sub_union_officer", "离退休分工会")
    event_id = create_event(client, officer, capacity=5,
                            questions=[{"key": "size", "label": "尺码", "kind": "choice", "required": True,
                                        "options": ["M", "L"]}])
    url = f"/api/v1/officer/events/{event_id}/signups"
    resp = client.post(url, json={"employee_no": "R0001", "answers": {"size": "L"}}, headers=bearer(token_for(chair)))
    assert (resp.status_code, resp.json["name"], resp.json["signup"]["status"]) == (200, "退休老师", "confirmed")
    resp = client.post(url, json={"employee_no": "M0001", "answers": {"size": "L"}}, headers=bearer(token_for(chair)))
    assert (resp.status_code, error_code(resp)) == (404, "staff_not_found")
    listing = client.get(url, headers=bearer(officer)).json
    assert [(i["name"], i["signed_up_by"], i["answers"]) for i in listing["items"]] == [("退休老师", "测试员工", {"size": "L"})]
    resp = client.post(f"{url}/R0001/cancel", headers=bearer(token_for(chair)))
    assert resp.json["signup"]["status"] == "cancelled"
    with app.app_context():
        actions = db.session.scalars(select(AuditLog.action).where(AuditLog.action.like("event.%"))
                                     .order_by(AuditLog.id)).all()
    assert actions == ["event.create", "event.publish", "event.signup_for", "event.cancel_for"]


def test_staff_may_not_use_officer_routes(client, officer, member):
    event_id = create_event(client, officer)
    _, token = member()
    assert error_code(client.get("/api/v1/officer/events", headers=bearer(token))) == "officer_only"
    assert error_code(client.get(f"/api/v1/officer/events/{event_id}/signups.xlsx", headers=bearer(token))) == \
        "officer_only"


def test_my_signups_include_cancelled_ones(client, officer, member):
    first, second = create_event(client, officer), create_event(client, officer, title="乒乓球赛")
    _, token = member()
    sign_up(client, first, token)
    sign_up(client, second, token)
    cancel(client, second, token)
    items = client.get("/api/v1/events/mine", headers=bearer(token)).json["items"]
    assert sorted((i["id"], i["my_signup"]["status"]) for i in items) == \
        sorted([(first, "confirmed"), (second, "cancelled")])


def test_the_one_statement_place_is_taken_only_while_signup_is_open_and_the_audience_includes_me(
        app, client, officer, member):
    """The busy minute's signup takes its seat, or its place on the waiting list, with one conditional UPDATE;
    everything the locked way checks is in its WHERE, so whenever one of them no longer holds it changes nothing
    and the locked way answers."""
    from app.services import principals
    from app.services.events import records
    from app.unit_of_work import unit_of_work

    woman, _ = member()
    one_seat = create_event(client, officer, capacity=1)
    no_waiting_list = create_event(client, officer, capacity=1, waitlist_enabled=False)
    men_only = create_event(client, officer, audience={"genders": ["male"]})
    per_sub_union = create_event(client, officer, quotas=[{"sub_union_id": sub_union_id(app, "机关分工会"), "places": 5}])

    def take(event_id: int) -> records.Place | None:
        with app.app_context(), unit_of_work():
            return records.take_place(records.get_event(event_id), principals.staff_card(woman))

    assert take(men_only) is None and take(per_sub_union) is None
    assert take(one_seat) == records.Place(1, None)
    assert take(one_seat) == records.Place(2, 1) and take(one_seat) == records.Place(3, 2)     # then waiting
    row = event_row(app, one_seat)
    assert (row.confirmed_count, row.waitlisted_count, row.last_sequence) == (1, 2, 3)
    assert take(no_waiting_list) == records.Place(1, None) and take(no_waiting_list) is None
    later = create_event(client, officer)
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(days=1, minutes=1)):     # past the close
        assert take(later) is None
    assert event_row(app, later).last_sequence == 0 == event_row(app, men_only).last_sequence
