"""Who may see and do what (app.services.policy), tried from outside over real HTTP: the holes the policy module
closed, officers' ranks, and that no view, WeChat handler or job decides on its own."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
import time_machine

from models import Gender
from tests.events_support import event_body, sub_union_id
from tests.helpers import bearer

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def people(make_staff, grant, token_for):
    """A union officer; the chair of 甲 (a sub-union officer); a man and a woman of 甲; a member of 乙."""
    ids = {
        "union": make_staff("U1", name="校工会干事", sub_union="丙分工会"),
        "chair": make_staff("C1", name="甲主席", sub_union="甲分工会"),
        "chair2": make_staff("C2", name="甲副主席", sub_union="甲分工会"),
        "man": make_staff("M1", name="男会员", sub_union="甲分工会", gender=Gender.MALE),
        "woman": make_staff("W1", name="女会员", sub_union="甲分工会", gender=Gender.FEMALE),
        "other": make_staff("B1", name="乙会员", sub_union="乙分工会", gender=Gender.FEMALE),
    }
    grant(ids["union"], "union_officer")
    grant(ids["chair"], "sub_union_officer", "甲分工会")
    grant(ids["chair2"], "sub_union_officer", "甲分工会")
    return {name: token_for(staff_id) for name, staff_id in ids.items()}


def call(server, method: str, path: str, token: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{server.url}/api/v1{path}", headers=bearer(token), timeout=10, **kwargs)


def new_event(server, token: str, publish: bool = True, **overrides) -> int:
    response = call(server, "POST", "/officer/events", token, json=event_body(**overrides))
    assert response.status_code == 201, response.text
    event_id = response.json()["id"]
    if publish:
        assert call(server, "POST", f"/officer/events/{event_id}/publish", token,
                    json={"notify": False}).status_code == 200
    return event_id


def test_staff_outside_an_events_audience_cannot_read_or_use_it_by_id(app, live_server, people):
    women_only = new_event(live_server, people["union"], audience={"genders": ["female"]})
    for_yi = new_event(live_server, people["union"], audience={"sub_union_ids": [sub_union_id(app, "乙分工会")]})
    assert call(live_server, "GET", f"/events/{women_only}", people["woman"]).status_code == 200
    for token, event_id in ((people["man"], women_only), (people["woman"], for_yi)):
        detail = call(live_server, "GET", f"/events/{event_id}", token)
        assert (detail.status_code, detail.json()["error"]["code"]) == (404, "event_not_found")
        assert "description" not in detail.text and "欢迎报名" not in detail.text
        assert call(live_server, "POST", f"/events/{event_id}/signup", token, json={}).status_code == 404
        assert call(live_server, "POST", f"/events/{event_id}/cancel", token).status_code == 404


def test_a_signup_keeps_the_event_visible_after_the_audience_moves_on(app, live_server, people):
    event_id = new_event(live_server, people["union"], audience={"genders": ["female"]})
    assert call(live_server, "POST", f"/events/{event_id}/signup", people["woman"], json={}).status_code == 200
    response = call(live_server, "PATCH", f"/officer/events/{event_id}", people["union"],
                    json={"audience": {"sub_union_ids": [sub_union_id(app, "乙分工会")]}})
    assert response.status_code == 200
    assert call(live_server, "GET", f"/events/{event_id}", people["woman"]).status_code == 200
    assert call(live_server, "POST", f"/events/{event_id}/cancel", people["woman"]).status_code == 200


def test_sub_union_officer_previews_only_their_own_sub_union(app, live_server, people):
    own = call(live_server, "POST", "/officer/audiences/preview", people["chair"], json={"audience": {}})
    assert own.status_code == 200 and own.json()["count"] == 4            # 甲: two chairs, a man, a woman
    union_wide = call(live_server, "POST", "/officer/audiences/preview", people["union"], json={"audience": {}})
    assert union_wide.json()["count"] == 6
    other = call(live_server, "POST", "/officer/audiences/preview", people["chair"],
                 json={"audience": {"sub_union_ids": [sub_union_id(app, "乙分工会")]}})
    assert (other.status_code, other.json()["error"]["code"]) == (403, "out_of_scope")


def test_only_officers_who_manage_an_event_cancel_signups_past_its_deadline(app, live_server, people):
    now = datetime.now(timezone.utc)
    event_id = new_event(live_server, people["union"], cancel_deadline=(now + timedelta(hours=1)).isoformat())
    for employee_no in ("M1", "W1"):
        response = call(live_server, "POST", f"/officer/events/{event_id}/signups", people["chair"],
                        json={"employee_no": employee_no})
        assert response.status_code == 200, response.text       # a chair fills places in a union-wide event
    before = call(live_server, "POST", f"/officer/events/{event_id}/signups/M1/cancel", people["chair"])
    assert before.json()["signup"]["status"] == "cancelled"      # before the deadline, as the member could
    with time_machine.travel(now + timedelta(hours=2)):
        late = call(live_server, "POST", f"/officer/events/{event_id}/signups/W1/cancel", people["chair"])
        assert (late.status_code, late.json()["error"]["code"]) == (409, "cancel_deadline_passed")
        managed = call(live_server, "POST", f"/officer/events/{event_id}/signups/W1/cancel", people["union"])
        assert managed.json()["signup"]["status"] == "cancelled"


def test_a_chair_manages_their_own_events_past_the_deadline(app, live_server, people):
    now = datetime.now(timezone.utc)
    event_id = new_event(live_server, people["chair"], cancel_deadline=(now + timedelta(hours=1)).isoformat())
    assert call(live_server, "POST", f"/officer/events/{event_id}/signups", people["chair"],
                json={"employee_no": "W1"}).status_code == 200
    with time_machine.travel(now + timedelta(hours=2)):
        late = call(live_server, "POST", f"/officer/events/{event_id}/signups/W1/cancel", people["chair"])
        assert late.json()["signup"]["status"] == "cancelled"


def test_a_sub_union_officer_never_manages_a_higher_ranks_records_addressed_to_them(app, live_server, people):
    jia = [sub_union_id(app, "甲分工会")]
    announcement = call(live_server, "POST", "/officer/announcements", people["union"],
                        json={"title": "校工会通知", "body": "正文", "audience": {"sub_union_ids": jia}}).json()["id"]
    event_id = new_event(live_server, people["union"], audience={"sub_union_ids": jia})
    for method, path, body in (("GET", f"/officer/announcements/{announcement}", None),
                               ("PATCH", f"/officer/announcements/{announcement}", {"title": "改"}),
                               ("POST", f"/officer/announcements/{announcement}/publish", None),
                               ("GET", f"/officer/events/{event_id}", None),
                               ("POST", f"/officer/events/{event_id}/cancel", {})):
        response = call(live_server, method, path, people["chair"], json=body)
        assert response.status_code == 404, (path, response.text)
    listed = call(live_server, "GET", "/officer/announcements", people["chair"]).json()["items"]
    assert listed == []
    assert call(live_server, "GET", "/officer/events", people["chair"]).json()["items"] == []


def test_officers_of_one_sub_union_share_its_records(app, live_server, people):
    drafted = call(live_server, "POST", "/officer/announcements", people["chair"],
                   json={"title": "甲分工会通知", "body": "正文"}).json()
    assert drafted["audience"]["sub_union_ids"] == [sub_union_id(app, "甲分工会")]
    listed = call(live_server, "GET", "/officer/announcements", people["chair2"]).json()["items"]
    assert [a["id"] for a in listed] == [drafted["id"]]
    edited = call(live_server, "PATCH", f"/officer/announcements/{drafted['id']}", people["chair2"],
                  json={"pinned": True})
    assert edited.status_code == 200 and edited.json()["pinned"] is True


def test_no_view_handler_or_job_decides_who_may_do_what():
    """Views, WeChat handlers and jobs call services, which ask the policy module: none of them checks an
    action or applies a scope itself. Only the endpoint decorator's coarse gate by kind of caller (app/api/endpoint.py)
    refuses on its own; asking the module a question (is this caller an officer?) is fine anywhere."""
    rule = re.compile(r"\bensure_\w+\(|officer_sub_unions|restrict_audience|_condition\(|\bscope\b|\.roles\b.*\bin\b")
    allowed = {ROOT / "app" / "api" / "endpoint.py"}
    offenders = []
    for folder in ("app/api", "wechat_handlers", "jobs"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path in allowed:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if rule.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
