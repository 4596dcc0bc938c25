"""Mutual-aid claims: union officers file them for members on the city's plans and follow them to paid or refused,
with the member's documents; the same privacy as a condolence request — who sees a claim, sealed text and files,
audited reads, notices that say only that something changed — and the year's figures add up."""

from __future__ import annotations

import io
from datetime import date

import pytest
from sqlalchemy import select, update

from app.extensions import db
from app.services.condolences import claims
from app.unit_of_work import unit_of_work
from models import AuditLog, MutualAidClaim, Notice
from tests.helpers import error_code
from tests.test_condolence_privacy import PDF, callers  # noqa: F401  (callers: the eight kinds of caller)

DESCRIPTION = "确诊恶性肿瘤，住院化疗"


def file(client, callers, **changes) -> dict:  # noqa: F811
    body = {"employee_no": "M0001", "plan": "在职职工重大疾病互助保障", "filed_on": "2026-11-02",
            "description": DESCRIPTION, **changes}
    response = client.post("/api/v1/officer/mutual-aid-claims", json=body, headers=callers["union_officer"])
    assert response.status_code == 201, response.json
    return response.json


def post(client, callers, who, path, body=None, expect=200, **kwargs):  # noqa: F811
    response = client.post(f"/api/v1/officer/mutual-aid-claims/{path}", json=body, headers=callers[who], **kwargs)
    assert response.status_code == expect, response.json
    return response.json


def document(client, callers, claim_id, who="union_officer", expect=201):  # noqa: F811
    response = client.post(f"/api/v1/officer/mutual-aid-claims/{claim_id}/documents", headers=callers[who],
                           data={"file": (io.BytesIO(PDF), "诊断证明.pdf")}, content_type="multipart/form-data")
    assert response.status_code == expect, response.json
    return response.json


def test_a_claim_is_filed_submitted_and_paid_and_the_member_is_told_only_that_it_changed(app, client, callers):  # noqa: F811
    claim = file(client, callers)
    assert (claim["status"], claim["status_label"], claim["description"]) == ("filed", "已登记", DESCRIPTION)
    doc = document(client, callers, claim["id"])
    assert doc["filename"] == "诊断证明.pdf"
    assert post(client, callers, "union_officer", f"{claim['id']}/paid", {"paid_on": "2026-11-20", "amount_fen": 1},
                expect=409)["error"]["code"] == "transition_not_allowed"
    post(client, callers, "union_officer", f"{claim['id']}/submitted", {"submitted_on": "2026-11-05"})
    paid = post(client, callers, "union_officer", f"{claim['id']}/paid", {"paid_on": "2026-11-20", "amount_fen": 500000})
    assert (paid["status"], paid["amount_paid_fen"]) == ("paid", 500000)
    post(client, callers, "union_officer", f"{claim['id']}/refused", {"refused_on": "2026-11-21", "reason": "x"},
         expect=409)
    document(client, callers, claim["id"], expect=409)
    mine = client.get("/api/v1/mutual-aid-claims", headers=callers["subject"]).json["items"]
    assert [c["id"] for c in mine] == [claim["id"]] and "description" not in mine[0]
    with app.app_context():
        sent = list(db.session.scalars(select(Notice).where(Notice.occasion.like(f"claim:{claim['id']}:%"))))
    assert len(sent) == 3
    for notice in sent:
        text = f"{notice.title}{notice.body}{notice.data}"
        assert "互助保障申请有新进展" in text and DESCRIPTION not in text and "重大疾病" not in text


def test_a_refusal_keeps_its_reason_sealed(app, client, callers):  # noqa: F811
    claim = file(client, callers, plan="住院医疗互助保障")
    post(client, callers, "union_officer", f"{claim['id']}/submitted", {"submitted_on": "2026-11-05"})
    post(client, callers, "union_officer", f"{claim['id']}/refused", {"refused_on": "2026-11-21",
                                                                       "reason": "不在保障范围：既往病史"})
    detail = client.get(f"/api/v1/mutual-aid-claims/{claim['id']}", headers=callers["subject"]).json
    assert (detail["status_label"], detail["refusal"]) == ("未获赔付", "不在保障范围：既往病史")
    with app.app_context():
        raw = db.session.execute(select(MutualAidClaim.description_sealed, MutualAidClaim.refusal_sealed)).one()
    assert DESCRIPTION.encode() not in raw[0] and "既往病史".encode() not in raw[1]


SEES = {"subject": 200, "own_officer": 200, "union_officer": 200, "applicant": 200,     # applicant: an officer of 甲
        "other_officer": 404, "admin": 404, "unrelated": 404, "cashier": 403}


@pytest.mark.parametrize("who", list(SEES))
def test_a_claim_and_its_documents_are_seen_only_by_whom_they_concern(client, callers, who):  # noqa: F811
    claim = file(client, callers)
    doc = document(client, callers, claim["id"])
    detail = client.get(f"/api/v1/mutual-aid-claims/{claim['id']}", headers=callers[who])
    download = client.get(f"/api/v1/mutual-aid-claims/{claim['id']}/documents/{doc['id']}", headers=callers[who])
    assert detail.status_code == download.status_code == SEES[who], detail.json
    if SEES[who] == 200:
        assert detail.json["description"] == DESCRIPTION and download.data == PDF
    elif SEES[who] == 404:
        assert error_code(detail) == error_code(download) == "claim_not_found"


@pytest.mark.parametrize(("who", "status", "listed"), [
    ("union_officer", 200, True), ("own_officer", 200, True), ("other_officer", 200, False), ("admin", 403, False),
    ("subject", 403, False)])
def test_the_officers_list_shows_each_officer_their_members_claims_without_sealed_text(client, callers, who,  # noqa: F811
                                                                                        status, listed):
    claim = file(client, callers)
    response = client.get("/api/v1/officer/mutual-aid-claims", headers=callers[who])
    assert response.status_code == status
    if status == 200:
        assert [c["id"] for c in response.json["items"]] == ([claim["id"]] if listed else [])
        assert DESCRIPTION not in response.get_data(as_text=True)


def test_only_union_officers_track_claims_on_the_citys_plans(client, callers):  # noqa: F811
    body = {"employee_no": "M0001", "plan": "在职职工重大疾病互助保障", "filed_on": "2026-11-02"}
    refused = client.post("/api/v1/officer/mutual-aid-claims", json=body, headers=callers["own_officer"])
    assert (refused.status_code, error_code(refused)) == (403, "union_officer_only")
    wrong = client.post("/api/v1/officer/mutual-aid-claims", json={**body, "plan": "商业保险"},
                        headers=callers["union_officer"])
    assert wrong.status_code == 422 and "住院医疗互助保障" in wrong.json["error"]["message"]
    claim = file(client, callers)
    post(client, callers, "own_officer", f"{claim['id']}/submitted", {"submitted_on": "2026-11-05"}, expect=403)


def test_reading_is_audited_and_a_moved_document_does_not_open(app, client, callers):  # noqa: F811
    first, second = file(client, callers), file(client, callers, plan="住院医疗互助保障")
    doc = document(client, callers, first["id"])
    client.get(f"/api/v1/mutual-aid-claims/{first['id']}", headers=callers["own_officer"])
    client.get(f"/api/v1/mutual-aid-claims/{first['id']}/documents/{doc['id']}", headers=callers["subject"])
    with app.app_context():
        reads = db.session.execute(select(AuditLog.actor_label, AuditLog.action).where(
            AuditLog.action.in_(["claim.read", "claim.file"])).order_by(AuditLog.id)).all()
    assert [tuple(r) for r in reads] == [("J0001", "claim.read"), ("M0001", "claim.file")]
    with app.app_context(), unit_of_work():
        from models import CondolenceAttachment
        db.session.execute(update(CondolenceAttachment).values(claim_id=second["id"]))
    moved = client.get(f"/api/v1/mutual-aid-claims/{second['id']}/documents/{doc['id']}", headers=callers["subject"])
    assert (moved.status_code, error_code(moved)) == (500, "record_unreadable")


def test_the_years_figures_count_claims_filed_and_paid(app, client, callers):  # noqa: F811
    paid = [file(client, callers), file(client, callers, plan="住院医疗互助保障", filed_on="2026-10-30")]
    file(client, callers, plan="女职工特殊疾病互助保障")                   # still open
    for n, claim in enumerate(paid):
        post(client, callers, "union_officer", f"{claim['id']}/submitted", {"submitted_on": "2026-11-05"})
        post(client, callers, "union_officer", f"{claim['id']}/paid",
             {"paid_on": f"2026-11-2{n}", "amount_fen": 100000 * (n + 1)})
    with app.app_context():
        assert claims.figures(date(2026, 1, 1), date(2026, 12, 31)) == {"filed": 3, "paid": 2, "paid_fen": 300000}
        assert claims.figures(date(2026, 11, 1), date(2026, 11, 20)) == {"filed": 2, "paid": 1, "paid_fen": 100000}


def test_claims_are_rekeyed_and_erased_like_requests(app, make_app, client, callers, subprocess_env):  # noqa: F811
    import subprocess
    import sys
    from datetime import datetime, timedelta, timezone
    from pathlib import Path

    from app.services.condolences import retention
    from tests.test_condolence_privacy import OTHER_KEY

    claim = file(client, callers)
    document(client, callers, claim["id"])
    env = {**subprocess_env, "SMART_UNION__PRIVACY__KEYS__T2": OTHER_KEY, "SMART_UNION__PRIVACY__CURRENT_KEY": "t2"}
    done = subprocess.run([str(Path(sys.executable).parent / "smart-union"), "privacy", "rekey"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "附件 1 个" in done.stdout, done.stderr
    only_new = make_app(**{"privacy.keys": {"t2": OTHER_KEY}, "privacy.current_key": "t2"}).test_client()
    assert only_new.get(f"/api/v1/mutual-aid-claims/{claim['id']}", headers=callers["subject"]).json[
        "description"] == DESCRIPTION
    assert error_code(client.get(f"/api/v1/mutual-aid-claims/{claim['id']}", headers=callers["subject"])) == \
        "record_unreadable"                                                  # the old key alone no longer opens it

    post(client, callers, "union_officer", f"{claim['id']}/submitted", {"submitted_on": "2026-11-05"})
    with app.app_context(), unit_of_work():
        db.session.execute(update(MutualAidClaim).values(status="paid", amount_paid_fen=1000, paid_on=date(2026, 11, 9),
                                                         closed_at=datetime(2026, 11, 9, tzinfo=timezone.utc)))
    with app.app_context(), unit_of_work():
        assert retention.erase_expired_details(datetime(2031, 11, 8, tzinfo=timezone.utc)) == 0
    with app.app_context(), unit_of_work():
        assert retention.erase_expired_details(datetime(2031, 11, 10, tzinfo=timezone.utc)) == 1
    with app.app_context():
        row = db.session.get(MutualAidClaim, claim["id"])
        assert (row.description_sealed, row.documents, row.amount_paid_fen) == (None, [], 1000)
        assert row.details_erased_at > datetime(2031, 11, 9, tzinfo=timezone.utc) - timedelta(days=1)
