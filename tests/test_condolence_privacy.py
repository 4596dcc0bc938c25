"""Condolence requests are sensitive personal information (PIPL): visible to the applicant, the member they concern,
the officers of the member's sub-union and union officers, and to nobody else (404); every opening of a detail or a
file is audited; the relative's name, the place, the description and every file are sealed at rest, each bound to
its row and field, and a key rotation re-seals everything under the new key."""

from __future__ import annotations

import base64
import io
import logging
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from sqlalchemy import select, update

from app.extensions import db
from app.services import attachments
from app.unit_of_work import unit_of_work
from models import AuditLog, CondolenceAttachment, CondolenceRequest, Staff
from tests.test_authorization_matrix import bound_cashier
from tests.helpers import bearer, error_code

BEIJING = ZoneInfo("Asia/Shanghai")
PDF = b"%PDF-1.4\n" + "出院记录：急性阑尾炎".encode() + b"\n%%EOF"
PLAIN = {"relative_name": "张建国", "place": "市第一人民医院", "description": "父亲急性阑尾炎住院一周"}
SMART_UNION = str(Path(sys.executable).parent / "smart-union")


@pytest.fixture(autouse=True)
def on_a_quiet_day():
    with time_machine.travel(datetime(2027, 3, 10, 10, 0, tzinfo=BEIJING), tick=False):
        yield


@pytest.fixture
def callers(app, make_staff, grant, token_for) -> dict[str, dict[str, str]]:
    """The eight kinds of caller the issue names, around one request filed by a 甲 officer for member M0001."""
    ids = {
        "applicant": make_staff("J0002", "甲干事", sub_union="甲分工会"),
        "subject": make_staff("M0001", "王会员", sub_union="甲分工会"),
        "own_officer": make_staff("J0001", "甲主席", sub_union="甲分工会"),
        "other_officer": make_staff("Y0001", "乙主席", sub_union="乙分工会"),
        "union_officer": make_staff("U0001", "校工会", sub_union="丙分工会"),
        "admin": make_staff("D0001", "管理员", sub_union="丙分工会"),
        "unrelated": make_staff("M0002", "李同事", sub_union="甲分工会"),
    }
    grant(ids["applicant"], "sub_union_officer", "甲分工会")
    grant(ids["own_officer"], "sub_union_officer", "甲分工会")
    grant(ids["other_officer"], "sub_union_officer", "乙分工会")
    grant(ids["union_officer"], "union_officer")
    grant(ids["admin"], "admin")
    tokens = {who: bearer(token_for(staff_id)) for who, staff_id in ids.items()}
    with app.app_context(), unit_of_work():
        tokens["cashier"] = bearer(bound_cashier(db.session.get(Staff, ids["union_officer"]))[2])
    return tokens


def filed(client, callers, **changes) -> tuple[int, int]:
    """A relative's hospital stay filed by the applicant for the subject, with one file: (request id, file id)."""
    kinds = client.get("/api/v1/condolences/types", headers=callers["subject"]).json["items"]
    body = {"employee_no": "M0001", "consent_by": "本人", "consent_at": "2027-03-09T18:00:00+08:00",
            "type_id": next(k["id"] for k in kinds if k["name"] == "直系亲属住院"), "relation": "父母",
            "event_date": "2027-03-01", **PLAIN, **changes}
    response = client.post("/api/v1/officer/condolences", json=body, headers=callers["applicant"])
    assert response.status_code == 201, response.json
    request_id = response.json["id"]
    upload = client.post(f"/api/v1/condolences/{request_id}/attachments", headers=callers["applicant"],
                         data={"file": (io.BytesIO(PDF), "父亲出院记录.pdf")}, content_type="multipart/form-data")
    assert upload.status_code == 201, upload.json
    return request_id, upload.json["id"]


# --- who sees a request -------------------------------------------------------------------------------------------

SEES = {"applicant": True, "subject": True, "own_officer": True, "union_officer": True,
        "other_officer": False, "admin": False, "unrelated": False}


@pytest.mark.parametrize("who", list(SEES) + ["cashier"])
def test_detail_and_files_are_seen_only_by_whom_they_concern(client, callers, who):
    request_id, file_id = filed(client, callers)
    detail = client.get(f"/api/v1/condolences/{request_id}", headers=callers[who])
    download = client.get(f"/api/v1/condolences/{request_id}/attachments/{file_id}", headers=callers[who])
    if who == "cashier":        # a cashier's token opens no member route at all, whatever the id
        assert (detail.status_code, error_code(detail)) == (403, "not_for_cashiers")
        assert download.status_code == 403
    elif SEES[who]:
        assert detail.status_code == 200 and detail.json["description"] == PLAIN["description"]
        assert download.status_code == 200 and download.data == PDF
        assert download.headers["Cache-Control"] == "no-store, private"
    else:
        assert (detail.status_code, error_code(detail)) == (404, "condolence_not_found")
        assert (download.status_code, error_code(download)) == (404, "condolence_not_found")


@pytest.mark.parametrize("who", list(SEES) + ["cashier"])
def test_lists_show_each_reader_only_what_they_may_see_and_no_sealed_field(client, callers, who):
    request_id, _ = filed(client, callers)
    own = client.get("/api/v1/condolences", headers=callers[who])
    reviewing = client.get("/api/v1/officer/condolences", headers=callers[who])
    if who == "cashier":
        assert own.status_code == reviewing.status_code == 403
        return
    assert [r["id"] for r in own.json["items"]] == ([request_id] if who in ("applicant", "subject") else [])
    expected_review = {"applicant": 200, "own_officer": 200, "union_officer": 200, "other_officer": 200,
                       "subject": 403, "unrelated": 403, "admin": 403}[who]
    assert reviewing.status_code == expected_review, reviewing.json
    if expected_review == 200:
        listed = [r["id"] for r in reviewing.json["items"]]
        assert listed == ([] if who == "other_officer" else [request_id])
    for text in (own.get_data(as_text=True), reviewing.get_data(as_text=True)):
        assert not any(value in text for value in PLAIN.values())


# every route on one request × the eight callers: (state the request is put in, method, path, body, expected statuses
# in the order of CALLERS8). Staff on reviewer routes meet the officer gate (403), everyone but the applicant the
# applicant's own steps (403 once they see it), and those who may not see it 404.
CALLERS8 = ("applicant", "subject", "own_officer", "other_officer", "union_officer", "admin", "unrelated", "cashier")
ROUTE_CELLS = [
    ("submitted", "GET", "/condolences/{id}", None, (200, 200, 200, 404, 200, 404, 404, 403)),
    ("submitted", "GET", "/condolences/{id}/attachments/{file}", None, (200, 200, 200, 404, 200, 404, 404, 403)),
    ("submitted", "POST", "/condolences/{id}/attachments", "file", (201, 403, 403, 404, 403, 404, 404, 403)),
    ("returned", "POST", "/condolences/{id}/resubmit", {}, (200, 403, 403, 404, 403, 404, 404, 403)),
    ("submitted", "POST", "/condolences/{id}/withdraw", None, (200, 403, 403, 404, 403, 404, 404, 403)),
    ("submitted", "POST", "/officer/condolences/{id}/verify", None, (403, 403, 200, 404, 403, 404, 403, 403)),
    ("submitted", "POST", "/officer/condolences/{id}/return", {"missing": "发票"},
     (403, 403, 200, 404, 403, 404, 403, 403)),
    ("submitted", "POST", "/officer/condolences/{id}/reject", {"reason": "不符合"},
     (403, 403, 200, 404, 403, 404, 403, 403)),
    ("verified", "POST", "/officer/condolences/{id}/approve", {"payment": "money"},
     (403, 403, 403, 404, 200, 404, 403, 403)),
]
CELLS = [(route, who, expected) for route in ROUTE_CELLS for who, expected in zip(CALLERS8, route[4])]


@pytest.mark.parametrize(("route", "who", "expected"), CELLS,
                         ids=[f"{r[1]} {r[2]} as {w}" for r, w, _ in CELLS])
def test_every_route_on_a_request_answers_each_caller_as_the_rules_say(client, callers, route, who, expected):
    state, method, path, body, _ = route
    request_id, file_id = filed(client, callers)
    if state in ("returned", "verified"):
        step = "return" if state == "returned" else "verify"
        done = client.post(f"/api/v1/officer/condolences/{request_id}/{step}", headers=callers["own_officer"],
                           json={"missing": "发票"} if step == "return" else None)
        assert done.status_code == 200, done.json
    url = "/api/v1" + path.format(id=request_id, file=file_id)
    if body == "file":
        response = client.post(url, headers=callers[who], content_type="multipart/form-data",
                               data={"file": (io.BytesIO(PDF), "发票.pdf")})
    else:
        response = client.open(url, method=method, headers=callers[who], json=body)
    assert response.status_code == expected, response.get_data(as_text=True)
    if expected == 404:
        assert error_code(response) == "condolence_not_found"


def test_opening_a_detail_or_a_file_is_audited(app, client, callers):
    request_id, file_id = filed(client, callers)
    client.get(f"/api/v1/condolences/{request_id}", headers=callers["union_officer"])
    client.get(f"/api/v1/condolences/{request_id}/attachments/{file_id}", headers=callers["own_officer"])
    client.get(f"/api/v1/condolences/{request_id}", headers=callers["unrelated"])          # refused: nothing read
    with app.app_context():
        reads = db.session.execute(select(AuditLog.actor_label, AuditLog.action, AuditLog.target_id).where(
            AuditLog.action.in_(["condolence.read", "condolence.file"])).order_by(AuditLog.id)).all()
        details = [str(d) for d in db.session.scalars(select(AuditLog.detail))]
    assert [tuple(r) for r in reads] == [("U0001", "condolence.read", str(request_id)),
                                         ("J0001", "condolence.file", str(request_id))]
    assert not any(value in d for d in details for value in PLAIN.values())


def test_an_attachment_that_is_not_an_image_or_a_pdf_is_refused_whatever_its_name(client, callers):
    request_id, _ = filed(client, callers)
    for content, name in ((b"MZ\x90\x00 this is a program", "出院记录.pdf"), (b"<html>", "发票.jpg"),
                          (b"PK\x03\x04 zip", "病历.png")):
        response = client.post(f"/api/v1/condolences/{request_id}/attachments", headers=callers["applicant"],
                               data={"file": (io.BytesIO(content), name)}, content_type="multipart/form-data")
        assert (response.status_code, error_code(response)) == (400, "unsupported_file"), name


def test_the_officer_list_runs_the_same_queries_over_more_data(client, callers, count_queries, make_staff,
                                                              token_for):
    """Many members, several sub-unions, several applicants and types: no query per row."""
    kinds = [k["id"] for k in client.get("/api/v1/condolences/types", headers=callers["subject"]).json["items"]
             if k["subject"] == "self"]

    def file_for(n: int) -> None:
        member = make_staff(f"X{n:04d}", f"会员{n}", sub_union=("甲分工会", "乙分工会", "丁分工会")[n % 3])
        response = client.post("/api/v1/condolences", headers=bearer(token_for(member)), json={
            "type_id": kinds[n % len(kinds)], "event_date": "2027-03-01", "description": "住院"})
        assert response.status_code == 201, response.json

    def listing() -> int:
        client.get("/api/v1/me", headers=callers["union_officer"])     # the caller's card cached, as after any request
        with count_queries() as counter:
            response = client.get("/api/v1/officer/condolences", headers=callers["union_officer"])
        assert response.status_code == 200
        return counter.count, len(response.json["items"])
    filed(client, callers)
    file_for(0)
    few, listed = listing()
    for n in range(1, 10):
        file_for(n)
    assert listing() == (few, listed + 9)


def test_logs_never_carry_the_sealed_fields(client, callers, caplog):
    with caplog.at_level(logging.DEBUG):
        request_id, file_id = filed(client, callers)
        client.get(f"/api/v1/condolences/{request_id}", headers=callers["subject"])
        client.get(f"/api/v1/condolences/{request_id}/attachments/{file_id}", headers=callers["subject"])
    assert caplog.records and not any(value in caplog.text for value in PLAIN.values())


# --- sealed at rest -------------------------------------------------------------------------------------------------

def raw_row(app, request_id: int) -> dict[str, bytes]:
    with app.app_context():
        row = db.session.execute(select(CondolenceRequest.relative_name_sealed, CondolenceRequest.place_sealed,
                                        CondolenceRequest.description_sealed)
                                 .where(CondolenceRequest.id == request_id)).one()
        return {"relative_name": bytes(row[0]), "place": bytes(row[1]), "description": bytes(row[2])}


def stored_file(app, file_id: int) -> bytes:
    with app.app_context():
        return attachments.path_of(db.session.get(CondolenceAttachment, file_id)).read_bytes()


def test_the_raw_columns_and_file_bytes_hold_neither_the_text_nor_its_base64(app, client, callers):
    request_id, file_id = filed(client, callers)
    raw = b"".join(raw_row(app, request_id).values()) + stored_file(app, file_id)
    with app.app_context():
        raw += bytes(db.session.scalar(select(CondolenceAttachment.filename_sealed)))
    for text in (*PLAIN.values(), "父亲出院记录", "急性阑尾炎"):
        plain = text.encode()
        assert plain not in raw and base64.b64encode(plain) not in raw and base64.b64encode(plain)[:-2] not in raw
    assert PDF not in raw and b"%PDF" not in raw


def set_column(app, request_id: int, value: bytes) -> None:
    with app.app_context(), unit_of_work():
        db.session.execute(update(CondolenceRequest).where(CondolenceRequest.id == request_id)
                           .values(description_sealed=value))


def test_flipping_one_stored_byte_makes_the_record_unreadable(app, client, callers):
    request_id, _ = filed(client, callers)
    sealed = bytearray(raw_row(app, request_id)["description"])
    sealed[-5] ^= 0x01
    set_column(app, request_id, bytes(sealed))
    response = client.get(f"/api/v1/condolences/{request_id}", headers=callers["subject"])
    assert (response.status_code, error_code(response)) == (500, "record_unreadable")
    assert "张建国" not in response.get_data(as_text=True)


def test_a_ciphertext_moved_to_another_row_or_field_does_not_open(app, client, callers):
    first, _ = filed(client, callers)
    second, _ = filed(client, callers, event_date="2027-02-01")
    set_column(app, second, raw_row(app, first)["description"])
    response = client.get(f"/api/v1/condolences/{second}", headers=callers["subject"])
    assert (response.status_code, error_code(response)) == (500, "record_unreadable")
    set_column(app, first, raw_row(app, first)["place"])                   # another field of the same row
    response = client.get(f"/api/v1/condolences/{first}", headers=callers["subject"])
    assert (response.status_code, error_code(response)) == (500, "record_unreadable")


def test_a_file_moved_to_another_request_does_not_open(app, client, callers):
    first, file_id = filed(client, callers)
    second, _ = filed(client, callers, event_date="2027-02-01")
    with app.app_context(), unit_of_work():
        db.session.execute(update(CondolenceAttachment).where(CondolenceAttachment.id == file_id)
                           .values(request_id=second))
    response = client.get(f"/api/v1/condolences/{second}/attachments/{file_id}", headers=callers["subject"])
    assert (response.status_code, error_code(response)) == (500, "record_unreadable")


def test_rekey_leaves_what_it_cannot_open_and_says_so(app, client, callers, subprocess_env):
    request_id, _ = filed(client, callers)
    sealed = bytearray(raw_row(app, request_id)["description"])
    sealed[-1] ^= 0x01
    set_column(app, request_id, bytes(sealed))
    env = {**subprocess_env, "SMART_UNION__PRIVACY__KEYS__T2": OTHER_KEY, "SMART_UNION__PRIVACY__CURRENT_KEY": "t2"}
    done = subprocess.run([SMART_UNION, "privacy", "rekey"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "有 1 项" in done.stderr and "不要删除旧密钥" in done.stderr
    assert raw_row(app, request_id)["description"] == bytes(sealed)
    with app.app_context():
        report = db.session.scalar(select(AuditLog.detail).where(AuditLog.action == "privacy.rekey"))
    assert report == {"fields": 3, "files": 1, "unreadable": 1}


OTHER_KEY = base64.b64encode(b"another-key-of-exactly-32-bytes!").decode()


def test_the_wrong_key_does_not_open_a_record(make_app, client, callers):
    request_id, file_id = filed(client, callers)
    wrong = make_app(**{"privacy.keys": {"t1": OTHER_KEY}}).test_client()
    response = wrong.get(f"/api/v1/condolences/{request_id}", headers=callers["subject"])
    assert (response.status_code, error_code(response)) == (500, "record_unreadable")
    response = wrong.get(f"/api/v1/condolences/{request_id}/attachments/{file_id}", headers=callers["subject"])
    assert response.status_code == 500


def test_after_rotation_and_rekey_everything_reads_without_the_old_key(app, make_app, client, callers,
                                                                        subprocess_env, settings):
    request_id, file_id = filed(client, callers)
    old_file = stored_file(app, file_id)
    env = {**subprocess_env, "SMART_UNION__PRIVACY__KEYS__T2": OTHER_KEY, "SMART_UNION__PRIVACY__CURRENT_KEY": "t2"}
    done = subprocess.run([SMART_UNION, "privacy", "rekey"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "字段 4 个，附件 1 个" in done.stdout            # three fields, the file's name, the file
    again = subprocess.run([SMART_UNION, "privacy", "rekey"], env=env, capture_output=True, text=True, timeout=60)
    assert "字段 0 个，附件 0 个" in again.stdout
    assert stored_file(app, file_id) != old_file

    only_new = make_app(**{"privacy.keys": {"t2": OTHER_KEY}, "privacy.current_key": "t2"}).test_client()
    detail = only_new.get(f"/api/v1/condolences/{request_id}", headers=callers["subject"])
    assert detail.status_code == 200, detail.json
    assert {k: detail.json[k] for k in PLAIN} == PLAIN
    assert detail.json["attachments"][0]["filename"] == "父亲出院记录.pdf"
    download = only_new.get(f"/api/v1/condolences/{request_id}/attachments/{file_id}", headers=callers["subject"])
    assert download.data == PDF
    old_only = client.get(f"/api/v1/condolences/{request_id}", headers=callers["subject"])
    assert error_code(old_only) == "record_unreadable"                      # t1 alone no longer opens it


def test_the_public_demo_key_is_refused_with_a_database_server():
    from app.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"privacy\.keys"):
        load_config(environ={}, overrides={"database.url": "postgresql+psycopg://u@db/su", "app.secret_key": "s" * 40})
