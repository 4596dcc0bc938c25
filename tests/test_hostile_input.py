"""Hostile input gets a clear 4xx: one row per finding of the attack on the API (limits: test_rate_limits.py;
/wechat/mp: test_wechat_mp_forgery.py; formulas in exports and the check-in window: test_events_checkin.py)."""

from __future__ import annotations

import io
import subprocess
from urllib.parse import quote

import pytest
import requests

from app.extensions import db
from app.services import attachments
from app.unit_of_work import unit_of_work
from models import Announcement
from tests.events_support import event_body
from tests.helpers import bearer, error_code

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
BIG = 2**31


@pytest.fixture
def officer(make_staff, grant, token_for):
    staff_id = make_staff("U1", name="工会干事", phone="13900000001")
    grant(staff_id, "union_officer")
    return token_for(staff_id)


def refused(response, status: int = 422) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.json["error"]["message"]


def test_deeply_nested_json_is_a_422_even_without_a_token(client):
    for depth in (40, 100_000):
        body = "[" * depth + "]" * depth
        response = client.post("/api/v1/auth/login", data=body, content_type="application/json")
        assert (response.status_code, error_code(response)) == (422, "json_too_deep")


def test_nul_and_lone_surrogates_are_refused_and_never_echoed(client, officer):
    nul = client.post("/api/v1/officer/notices", json={"title": "体检\x00安排"}, headers=bearer(officer))
    assert "title" in refused(nul) and "\x00" not in nul.get_data(as_text=True)
    raw = b'{"title": "\\ud800\\u4f53\\u68c0"}'
    surrogate = client.post("/api/v1/officer/notices", data=raw, content_type="application/json",
                            headers=bearer(officer))
    assert "title" in refused(surrogate)
    key = client.post("/api/v1/officer/notices", data=b'{"\\udc00": 1}', content_type="application/json",
                      headers=bearer(officer))
    refused(key)
    query = client.get("/api/v1/officer/staff?q=%00", headers=bearer(officer))
    assert "q" in refused(query)
    path = client.patch("/api/v1/officer/staff/U1%00", json={"department": "x"}, headers=bearer(officer))
    assert path.status_code == 404


def test_integers_beyond_32_bits_are_a_422_naming_the_field(client, officer):
    body = event_body(quotas=[{"sub_union_id": BIG, "places": 1}])
    assert "quotas.0.sub_union_id" in refused(client.post("/api/v1/officer/events", json=body,
                                                          headers=bearer(officer)))
    audience = {"audience": {"sub_union_ids": [BIG]}}
    refused(client.post("/api/v1/officer/audiences/preview", json=audience, headers=bearer(officer)))
    assert "sub_union_id" in refused(client.get(f"/api/v1/officer/staff?sub_union_id={BIG}",
                                                headers=bearer(officer)))
    assert "before" in refused(client.get(f"/api/v1/inbox?before={BIG * 1000}", headers=bearer(officer)))
    assert client.get(f"/api/v1/officer/events/{BIG}", headers=bearer(officer)).status_code == 404


def test_times_outside_the_unions_years_are_refused(client, officer):
    far = event_body(starts_at="9999-12-31T20:00:00+00:00", ends_at="9999-12-31T22:00:00+00:00")
    assert "starts_at" in refused(client.post("/api/v1/officer/events", json=far, headers=bearer(officer)))
    old = event_body(signup_opens_at="1999-12-31T15:59:59+00:00")        # 23:59:59 Beijing time
    assert "signup_opens_at" in refused(client.post("/api/v1/officer/events", json=old, headers=bearer(officer)))
    edge = event_body(signup_opens_at="1999-12-31T16:00:00+00:00")       # 2000-01-01 00:00 Beijing time
    assert client.post("/api/v1/officer/events", json=edge, headers=bearer(officer)).status_code == 201


def test_json_types_are_strict_where_they_matter(client, officer):
    as_number = event_body(starts_at=1_900_000_000)
    assert "starts_at" in refused(client.post("/api/v1/officer/events", json=as_number, headers=bearer(officer)))
    false_id = {"audience": {"sub_union_ids": [False]}}
    refused(client.post("/api/v1/officer/audiences/preview", json=false_id, headers=bearer(officer)))
    as_text = event_body(capacity="10")
    assert "capacity" in refused(client.post("/api/v1/officer/events", json=as_text, headers=bearer(officer)))


def test_a_phone_is_cleared_only_by_null_or_empty(client, officer, make_staff):
    make_staff("T1", name="测试", phone="13900000002")
    for bad in ([], "abc", {"a": 1}, True):
        assert "phone" in refused(client.patch("/api/v1/officer/staff/T1", json={"phone": bad},
                                               headers=bearer(officer)))
    kept = client.get("/api/v1/officer/staff?q=T1", headers=bearer(officer)).json["items"][0]["phone"]
    assert kept == "139****0002"
    cleared = client.patch("/api/v1/officer/staff/T1", json={"phone": ""}, headers=bearer(officer))
    assert cleared.status_code == 200 and cleared.json["phone"] is None


def test_a_line_break_in_a_title_or_file_name_never_breaks_a_download(app, client, officer):
    event = client.post("/api/v1/officer/events", json=event_body(title="排球赛\r\nX-Evil: 1"),
                        headers=bearer(officer)).json
    export = client.get(f"/api/v1/officer/events/{event['id']}/signups.xlsx", headers=bearer(officer))
    assert export.status_code == 200 and "X-Evil" not in export.headers
    disposition = export.headers["Content-Disposition"]
    assert disposition.startswith("attachment;") and "filename*=UTF-8''" in disposition and "\n" not in disposition
    draft = client.post("/api/v1/officer/announcements", json={"title": "通知", "body": "正文"},
                        headers=bearer(officer)).json
    with app.app_context(), unit_of_work():       # a name as a client may send it, CR/LF included
        draft_row = db.session.get(Announcement, draft["id"])
        attachment_id = attachments.attach(draft_row, "照片\r\nContent-Type: text/html.png", PNG).id
    download = client.get(f"/api/v1/officer/announcements/{draft['id']}/attachments/{attachment_id}",
                          headers=bearer(officer))
    assert download.status_code == 200 and download.data == PNG
    assert download.headers["Content-Type"] == "image/png"
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Content-Disposition"].startswith("attachment;")



def test_curl_saves_a_download_under_a_meaningful_name(app, client, officer, live_server, tmp_path):
    """`curl -OJ` reads only the ASCII `filename`; browsers read the Chinese `filename*`."""
    event_id = client.post("/api/v1/officer/events", json=event_body(title="羽毛球赛"), headers=bearer(officer)).json["id"]
    draft = client.post("/api/v1/officer/announcements", json={"title": "通知", "body": "正文"},
                        headers=bearer(officer)).json
    with app.app_context(), unit_of_work():
        draft_row = db.session.get(Announcement, draft["id"])
        chinese = attachments.attach(draft_row, "活动照片.png", PNG).id
        ascii_named = attachments.attach(draft_row, "poster.png", PNG).id
    downloads = {f"/api/v1/officer/events/{event_id}/signups.xlsx": f"signups-event-{event_id}.xlsx",
                 f"/api/v1/officer/announcements/{draft['id']}/attachments/{chinese}": f"attachment-{chinese}.png",
                 f"/api/v1/officer/announcements/{draft['id']}/attachments/{ascii_named}": "poster.png"}
    for path, saved_as in downloads.items():
        ran = subprocess.run(["curl", "-sfOJ", "-H", f"Authorization: Bearer {officer}", live_server.url + path],
                             cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert ran.returncode == 0, ran.stderr
        assert (tmp_path / saved_as).exists(), sorted(p.name for p in tmp_path.iterdir())
    disposition = client.get(f"/api/v1/officer/events/{event_id}/signups.xlsx", headers=bearer(officer)).headers
    assert "filename*=UTF-8''" + quote("报名名单-羽毛球赛.xlsx") in disposition["Content-Disposition"]

def test_no_attachment_is_added_to_a_published_announcement(client, officer):
    draft = client.post("/api/v1/officer/announcements", json={"title": "通知", "body": "正文"},
                        headers=bearer(officer)).json
    assert client.post(f"/api/v1/officer/announcements/{draft['id']}/publish",
                       headers=bearer(officer)).status_code == 200
    late = client.post(f"/api/v1/officer/announcements/{draft['id']}/attachments", headers=bearer(officer),
                       data={"file": (io.BytesIO(PNG), "晚到的.png")}, content_type="multipart/form-data")
    assert (late.status_code, error_code(late)) == (409, "not_a_draft")


def test_a_patch_is_validated_like_a_create(client, officer):
    event = client.post("/api/v1/officer/events", json=event_body(), headers=bearer(officer)).json
    for change in ({"title": ""}, {"title": None}, {"capacity": -1}, {"starts_at": "9999-01-01T00:00:00Z"},
                   {"questions": [{"key": "a", "label": "x"}, {"key": "a", "label": "y"}]}, {"bogus": 1}):
        refused(client.patch(f"/api/v1/officer/events/{event['id']}", json=change, headers=bearer(officer)))


def test_oversized_bodies_get_413_and_a_closed_connection(live_server):
    response = requests.post(f"{live_server.url}/api/v1/auth/login", data=b"x" * 3_000_000,
                             headers={"Content-Type": "application/json"}, timeout=10)
    assert response.status_code == 413 and "close" in response.headers.get("Connection", "")

    def chunks():
        for _ in range(300):
            yield b" " * 10_000
    chunked = requests.post(f"{live_server.url}/api/v1/auth/login", data=chunks(),
                            headers={"Content-Type": "application/json"}, timeout=10)
    assert chunked.status_code == 413


def test_405_names_the_allowed_methods(client):
    response = client.delete("/api/v1/me")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "PATCH"}


@pytest.mark.backend_independent
def test_the_openapi_document_types_parameters_and_lists_each_operations_errors(client):
    doc = client.get("/api/v1/openapi.json").json
    detail = doc["paths"]["/api/v1/events/{event_id}"]["get"]
    assert detail["parameters"][0]["schema"] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    assert {"401", "404"} <= set(detail["responses"])
    staff = {p["name"]: p for p in doc["paths"]["/api/v1/officer/staff"]["get"]["parameters"]}
    assert staff["page"]["schema"]["type"] == "integer" and staff["page"]["schema"]["maximum"] == 100_000
    assert staff["sub_union_id"]["schema"]["type"] == "integer"
    login = doc["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert {"422", "429", "503"} <= set(login) and "401" not in login
    assert doc["paths"]["/api/v1/officer/staff/{employee_no}"]["patch"]["parameters"][0]["schema"]["type"] == "string"
