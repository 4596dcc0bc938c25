"""Officer endpoints of the roster: roles, scopes, unbinding, bind codes."""

from __future__ import annotations

import pytest

from tests.helpers import bearer


@pytest.fixture
def people(make_staff, grant, token_for):
    """A union officer, a sub-union officer of 机关分工会, and two staff in different sub-unions."""
    ids = {
        "officer": make_staff("100001", name="校工会", sub_union="机关分工会"),
        "sub_officer": make_staff("100002", name="机关干部", sub_union="机关分工会"),
        "jiguan": make_staff("100003", name="机关员工", sub_union="机关分工会", phone="13900000003"),
        "houqin": make_staff("100004", name="后勤员工", sub_union="后勤分工会", phone="13900000004"),
    }
    grant(ids["officer"], "union_officer")
    grant(ids["sub_officer"], "sub_union_officer", sub_union="机关分工会")
    return {name: token_for(staff_id) for name, staff_id in ids.items()}


def test_staff_token_gets_403_on_officer_endpoint(client, people):
    response = client.get("/api/v1/officer/staff", headers=bearer(people["jiguan"]))
    assert response.status_code == 403
    assert response.json["error"]["code"] == "officer_only"


def test_sub_union_officer_sees_only_their_sub_union(client, people):
    response = client.get("/api/v1/officer/staff", headers=bearer(people["sub_officer"]))
    assert response.status_code == 200
    assert {s["employee_no"] for s in response.json["items"]} == {"100001", "100002", "100003"}


def test_sub_union_officer_gets_404_outside_scope(client, people):
    response = client.post("/api/v1/officer/staff/100004/unbind", headers=bearer(people["sub_officer"]))
    assert response.status_code == 404
    assert response.json["error"]["code"] == "staff_not_found"
    edit = client.patch("/api/v1/officer/staff/100004", json={"department": "x"},
                        headers=bearer(people["sub_officer"]))
    assert edit.status_code == 404


def test_sub_union_officer_unbinds_own_staff_and_their_token_dies(client, people):
    response = client.post("/api/v1/officer/staff/100003/unbind", headers=bearer(people["sub_officer"]))
    assert response.status_code == 200
    assert response.json == {"changed": True}
    assert client.get("/api/v1/me", headers=bearer(people["jiguan"])).status_code == 401


def test_union_officer_grants_and_revokes_sub_union_officer(client, people, app):
    from sqlalchemy import select

    from app.extensions import db
    from app.services import roster
    from models import AuditLog

    with app.app_context():
        houqin_id = roster.ensure_sub_union("后勤分工会")[0].id
    body = {"role": "sub_union_officer", "sub_union_id": houqin_id}
    granted = client.post("/api/v1/officer/staff/100004/roles/grant", json=body, headers=bearer(people["officer"]))
    assert granted.json == {"changed": True}
    again = client.post("/api/v1/officer/staff/100004/roles/grant", json=body, headers=bearer(people["officer"]))
    assert again.json == {"changed": False}
    revoked = client.post("/api/v1/officer/staff/100004/roles/revoke", json=body, headers=bearer(people["officer"]))
    assert revoked.json == {"changed": True}
    with app.app_context():
        actions = db.session.scalars(select(AuditLog.action).where(AuditLog.target_id == "100004",
                                                             AuditLog.action.like("role.%"))).all()
    assert sorted(actions) == ["role.grant", "role.revoke"]


def test_only_the_cli_grants_union_officer_and_admin(client, people):
    for role in ("union_officer", "admin"):
        response = client.post("/api/v1/officer/staff/100004/roles/grant", json={"role": role},
                               headers=bearer(people["officer"]))
        assert response.status_code == 403
        assert response.json["error"]["code"] == "cli_only_role"


def test_sub_union_officer_cannot_grant_roles(client, people):
    response = client.post("/api/v1/officer/staff/100003/roles/grant",
                           json={"role": "sub_union_officer", "sub_union_id": 1}, headers=bearer(people["sub_officer"]))
    assert response.status_code == 403


def test_officer_adds_and_edits_staff_and_audit_log_records_it(client, people, app):
    from sqlalchemy import select

    from app.extensions import db
    from models import AuditLog

    created = client.post("/api/v1/officer/staff", headers=bearer(people["officer"]), json={
        "employee_no": "000042", "name": "新老师", "gender": "female", "sub_union": "新成立分工会",
        "phone": "+86 139-0000-0042", "birthday": "1990-02-28"})
    assert created.status_code == 201, created.json
    assert created.json["employee_no"] == "000042"
    assert created.json["phone"] == "139****0042"
    edited = client.patch("/api/v1/officer/staff/000042", json={"status": "retired"}, headers=bearer(people["officer"]))
    assert edited.json["status"] == "退休"
    duplicate = client.post("/api/v1/officer/staff", headers=bearer(people["officer"]),
                            json={"employee_no": "000042", "name": "重复"})
    assert duplicate.status_code == 409
    with app.app_context():
        actions = db.session.scalars(select(AuditLog.action).where(AuditLog.target_id == "000042")).all()
    assert sorted(actions) == ["staff.create", "staff.update"]


def test_bad_staff_fields_get_a_chinese_error(client, people):
    response = client.post("/api/v1/officer/staff", headers=bearer(people["officer"]),
                           json={"employee_no": "000043", "name": "x", "phone": "12345"})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "invalid_request"
    assert "phone" in response.json["error"]["message"]



def test_a_choice_is_accepted_as_its_code_or_as_the_chinese_label_responses_show(client, people):
    officer = bearer(people["officer"])
    created = client.post("/api/v1/officer/staff", headers=officer,
                          json={"employee_no": "000044", "name": "钱老师", "gender": "女", "status": "退休"})
    assert created.status_code == 201, created.json
    assert (created.json["gender"], created.json["status"]) == ("女", "退休")
    assert client.patch("/api/v1/officer/staff/000044", json={"status": "active"}, headers=officer).json["status"] == "在职"
    listed = client.get("/api/v1/officer/staff?status=在职&q=000044", headers=officer).json
    assert [s["employee_no"] for s in listed["items"]] == ["000044"]
    wrong = client.patch("/api/v1/officer/staff/000044", json={"status": "在岗"}, headers=officer)
    assert wrong.status_code == 422
    assert wrong.json["error"]["message"] == "参数 status 不是可选的值，可选：active（在职）、retired（退休）、left（离职）"

def test_officer_issues_bind_code_within_scope(client, people):
    ok = client.post("/api/v1/officer/staff/100003/bind-code", headers=bearer(people["sub_officer"]))
    assert ok.status_code == 201
    assert len(ok.json["code"]) == 8
    refused = client.post("/api/v1/officer/staff/100004/bind-code", headers=bearer(people["sub_officer"]))
    assert refused.status_code == 404           # outside their scope: as if the record did not exist


def test_audience_preview_counts(client, people):
    response = client.post("/api/v1/officer/audiences/preview", headers=bearer(people["officer"]),
                           json={"audience": {"genders": ["female"]}})
    assert response.status_code == 200
    assert response.json == {"count": 4, "description": "女职工"}


def test_sub_union_officer_cannot_touch_a_higher_officer_of_their_sub_union(client, people):
    # 100001 is a union officer who belongs to 机关分工会, inside the sub-union officer's scope
    for path in ("/api/v1/officer/staff/100001/unbind", "/api/v1/officer/staff/100001/bind-code"):
        response = client.post(path, headers=bearer(people["sub_officer"]))
        assert response.status_code == 403
        assert response.json["error"]["code"] == "higher_role"
    edit = client.patch("/api/v1/officer/staff/100001", json={"status": "left"},
                        headers=bearer(people["sub_officer"]))
    assert edit.status_code == 403
    assert client.get("/api/v1/me", headers=bearer(people["officer"])).status_code == 200


def test_null_in_a_patch_is_a_clear_422(client, people):
    response = client.patch("/api/v1/officer/staff/100003", json={"name": None}, headers=bearer(people["officer"]))
    assert response.status_code == 422


def test_implausible_birthday_is_refused(client, people):
    response = client.patch("/api/v1/officer/staff/100003", json={"birthday": "0001-01-01"},
                            headers=bearer(people["officer"]))
    assert response.status_code == 422
    assert "出生日期" in response.json["error"]["message"]
