"""Condolences, part 1: a member (or an officer, with consent) files; the member's sub-union verifies; a union officer
approves at the rate in force on the event's day, within its ceiling and yearly count. Four eyes throughout; every
step tells the people concerned that something changed, and nothing of what. Who sees a request is covered in
tests/test_condolence_privacy.py."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
import requests
import time_machine
from sqlalchemy import select

from app.extensions import db
from app.services.condolences import review
from app.unit_of_work import unit_of_work
from app.errors import Conflict
from models import AuditLog, CondolenceRequest, Notice, Notification, Staff, StaffStatus
from tests.helpers import bearer, error_code

BEIJING = ZoneInfo("Asia/Shanghai")
TODAY = date(2027, 3, 10)
PDF = b"%PDF-1.4\n" + b"0" * 200
SECRET_WORDS = ("本人住院", "直系亲属", "市第一人民医院", "急性阑尾炎", "张建国", "住院慰问")


@pytest.fixture(autouse=True)
def on_a_quiet_day():
    with time_machine.travel(datetime(2027, 3, 10, 10, 0, tzinfo=BEIJING), tick=False):
        yield


@dataclass
class People:
    ids: dict[str, int]
    tokens: dict[str, dict[str, str]]

    def __getitem__(self, who: str) -> dict[str, str]:
        return self.tokens[who]


@pytest.fixture
def people(make_staff, grant, token_for) -> People:
    """甲分工会: the member, a colleague, its officer; 乙分工会: its officer; union officers 一 and 二; an admin."""
    ids = {
        "member": make_staff("M0001", "王会员", sub_union="甲分工会"),
        "colleague": make_staff("M0002", "李同事", sub_union="甲分工会"),
        "retiree": make_staff("R0001", "赵退休", sub_union="甲分工会", status=StaffStatus.RETIRED),
        "jia_officer": make_staff("J0001", "甲主席", sub_union="甲分工会"),
        "yi_officer": make_staff("Y0001", "乙主席", sub_union="乙分工会"),
        "union_one": make_staff("U0001", "校工会一", sub_union="丙分工会"),
        "union_two": make_staff("U0002", "校工会二", sub_union="丙分工会"),
        "admin": make_staff("D0001", "管理员", sub_union="丙分工会"),
    }
    grant(ids["jia_officer"], "sub_union_officer", "甲分工会")
    grant(ids["yi_officer"], "sub_union_officer", "乙分工会")
    grant(ids["union_one"], "union_officer")
    grant(ids["union_two"], "union_officer")
    grant(ids["admin"], "admin")
    return People(ids, {who: bearer(token_for(staff_id)) for who, staff_id in ids.items()})


def type_id(client, people, name: str) -> int:
    response = client.get("/api/v1/condolences/types", headers=people["member"])
    return next(t["id"] for t in response.json["items"] if t["name"] == name)


def file_request(client, people, who="member", kind="本人住院", **fields) -> dict:
    body = {"type_id": type_id(client, people, kind), "event_date": "2027-03-01", "place": "市第一人民医院",
            "description": "急性阑尾炎住院一周", **fields}
    response = client.post("/api/v1/condolences", json=body, headers=people[who])
    assert response.status_code == 201, response.json
    return response.json


def _step(client, people, who: str, path: str, json, expect: int) -> dict:
    """A POST with a JSON body, or with none at all (as `curl -X POST` sends it)."""
    response = client.post(path, json=json, headers=people[who]) if json is not None else \
        client.post(path, headers=people[who])
    assert response.status_code == expect, response.json
    return response.json


def act(client, people, who: str, request_id: int, action: str, json=None, expect: int = 200):
    """A reviewer's step."""
    return _step(client, people, who, f"/api/v1/officer/condolences/{request_id}/{action}", json, expect)


def mine(client, people, who: str, request_id: int, action: str, json=None, expect: int = 200):
    """The applicant's step."""
    return _step(client, people, who, f"/api/v1/condolences/{request_id}/{action}", json, expect)


def notices(app, request_id: int) -> list[Notice]:
    with app.app_context():
        return list(db.session.scalars(select(Notice).where(Notice.occasion.like(f"condolence:{request_id}:%"))
                                       .order_by(Notice.id)))


def recipients(app, notice: Notice) -> set[int]:
    with app.app_context():
        return set(db.session.scalars(select(Notification.staff_id).where(Notification.notice_id == notice.id)))


# --- the whole workflow ------------------------------------------------------------------------------------------

def test_filed_returned_resubmitted_verified_and_approved_at_the_standard_amount(app, client, people):
    filed = file_request(client, people)
    rid = filed["id"]
    assert (filed["status"], filed["status_label"], filed["member_category_label"]) == ("submitted", "待核实", "在职")
    assert (filed["description"], filed["place"], filed["standard_amount_fen"]) == \
        ("急性阑尾炎住院一周", "市第一人民医院", 50000)

    returned = act(client, people, "jia_officer", rid, "return", {"missing": "请补充出院记录"})
    assert returned["status"] == "returned"
    detail = client.get(f"/api/v1/condolences/{rid}", headers=people["member"]).json
    assert detail["missing_material"] == "请补充出院记录"

    upload = client.post(f"/api/v1/condolences/{rid}/attachments", headers=people["member"],
                         data={"file": (io.BytesIO(PDF), "出院记录.pdf")},
                         content_type="multipart/form-data")
    assert upload.status_code == 201 and upload.json["filename"] == "出院记录.pdf"
    resubmitted = mine(client, people, "member", rid, "resubmit", {"description": "已补充出院记录"})
    assert (resubmitted["status"], resubmitted["description"], resubmitted["missing_material"]) == \
        ("submitted", "已补充出院记录", None)

    assert act(client, people, "jia_officer", rid, "verify")["status"] == "verified"
    approved = act(client, people, "union_one", rid, "approve", {"payment": "money"})
    assert (approved["status"], approved["amount_fen"], approved["payment"]) == ("approved", 50000, "money")

    history = client.get(f"/api/v1/condolences/{rid}", headers=people["member"]).json["history"]
    assert [s["action"] for s in history] == ["submitted", "returned", "resubmitted", "verified", "approved"]
    steps = notices(app, rid)
    assert len(steps) == 5 and all(recipients(app, n) == {people.ids["member"]} for n in steps)


def test_no_notice_carries_the_type_a_relative_a_place_or_a_description(app, client, people):
    filed = file_request(client, people, kind="直系亲属住院", relation="父母", relative_name="张建国")
    act(client, people, "jia_officer", filed["id"], "verify")
    act(client, people, "union_one", filed["id"], "reject", {"reason": "材料不全"})
    sent = notices(app, filed["id"])
    assert len(sent) == 3
    for notice in sent:
        text = f"{notice.title} {notice.body} {notice.data} {notice.page}"
        assert not any(word in text for word in SECRET_WORDS), text
        assert f"编号 {filed['id']}" in notice.body


def test_an_officer_files_for_a_member_with_consent_and_both_are_told(app, client, people):
    body = {"employee_no": "M0001", "consent_by": "家属", "consent_at": "2027-03-09T18:00:00",
            "type_id": type_id(client, people, "本人住院并手术"), "event_date": "2027-03-05",
            "place": "市第一人民医院", "description": "手术后无法办理，家属电话同意"}
    response = client.post("/api/v1/officer/condolences", json=body, headers=people["jia_officer"])
    assert response.status_code == 201, response.json
    filed = response.json
    assert (filed["consent_by"], filed["consent_at"], filed["applicant_employee_no"], filed["employee_no"]) == \
        ("家属", "2027-03-09T18:00:00+08:00", "J0001", "M0001")
    [notice] = notices(app, filed["id"])
    assert recipients(app, notice) == {people.ids["member"], people.ids["jia_officer"]}
    assert client.get(f"/api/v1/condolences/{filed['id']}", headers=people["member"]).status_code == 200


def test_an_officer_files_only_for_members_of_their_sub_unions(client, people):
    body = {"employee_no": "M0001", "consent_by": "本人", "consent_at": "2027-03-09T18:00:00+08:00",
            "type_id": type_id(client, people, "本人住院"), "event_date": "2027-03-05", "description": "住院"}
    response = client.post("/api/v1/officer/condolences", json=body, headers=people["yi_officer"])
    assert (response.status_code, error_code(response)) == (404, "staff_not_found")
    response = client.post("/api/v1/officer/condolences", json={**body, "consent_by": "同事"},
                           headers=people["jia_officer"])
    assert response.status_code == 422


def test_withdrawn_before_approval_but_not_after(client, people):
    first = file_request(client, people)
    assert mine(client, people, "member", first["id"], "withdraw")["status"] == "withdrawn"
    second = file_request(client, people, event_date="2027-02-01")
    act(client, people, "jia_officer", second["id"], "verify")
    act(client, people, "union_one", second["id"], "approve", {"payment": "money"})
    refused = mine(client, people, "member", second["id"], "withdraw", expect=409)
    assert refused["error"]["code"] == "transition_not_allowed"
    assert "已批准" in refused["error"]["message"]


def test_more_material_may_correct_the_relative_but_not_make_one_up(client, people):
    filed = file_request(client, people, kind="直系亲属住院", relation="父母", relative_name="张建国")
    act(client, people, "jia_officer", filed["id"], "return", {"missing": "亲属关系证明"})
    corrected = mine(client, people, "member", filed["id"], "resubmit", {"relation": "配偶", "relative_name": "刘芳"})
    assert (corrected["relation"], corrected["relation_label"], corrected["relative_name"]) == ("spouse", "配偶", "刘芳")
    assert corrected["missing_material"] is None
    own = file_request(client, people, event_date="2027-01-02")
    act(client, people, "jia_officer", own["id"], "return", {"missing": "发票"})
    refused = mine(client, people, "member", own["id"], "resubmit", {"relative_name": "某人"}, expect=422)
    assert refused["error"]["code"] == "not_for_a_relative"


def test_only_the_applicant_resubmits_uploads_or_withdraws(client, people):
    filed = file_request(client, people)
    response = client.post(f"/api/v1/condolences/{filed['id']}/withdraw", headers=people["jia_officer"])
    assert (response.status_code, error_code(response)) == (403, "applicant_only")


@pytest.mark.parametrize(("setup", "who", "action", "body"), [
    ([], "member", "resubmit", {}),                                     # not returned
    ([], "union_one", "approve", {"payment": "money"}),                 # not verified yet
    (["verify"], "jia_officer", "verify", None),                        # verified already
    (["withdraw"], "jia_officer", "verify", None),                      # withdrawn
    (["withdraw"], "jia_officer", "return", {"missing": "发票"}),
    (["verify", "approve"], "union_two", "reject", {"reason": "晚了"}),   # approved is final here
    (["verify", "approve"], "union_two", "approve", {"payment": "money"}),
    (["reject"], "jia_officer", "verify", None),
])
def test_a_transition_the_state_does_not_allow_is_refused(client, people, setup, who, action, body):
    rid = file_request(client, people)["id"]
    for step in setup:
        if step == "withdraw":
            mine(client, people, "member", rid, "withdraw")
        elif step == "verify":
            act(client, people, "jia_officer", rid, "verify")
        elif step == "approve":
            act(client, people, "union_one", rid, "approve", {"payment": "money"})
        elif step == "reject":
            act(client, people, "jia_officer", rid, "reject", {"reason": "不符合"})
    if who == "member":
        refused = mine(client, people, who, rid, action, body, expect=409)
    else:
        refused = act(client, people, who, rid, action, body, expect=409)
    assert refused["error"]["code"] == "transition_not_allowed"


# --- four eyes ---------------------------------------------------------------------------------------------------

def test_nobody_reviews_a_request_they_filed_or_that_concerns_them(client, people):
    own = file_request(client, people, who="jia_officer")            # the sub-union's officer is the member
    assert act(client, people, "jia_officer", own["id"], "verify", expect=403)["error"]["code"] == "four_eyes"
    # nobody else in 甲 is free: a union officer verifies, and another union officer approves
    assert act(client, people, "union_one", own["id"], "verify")["status"] == "verified"
    assert act(client, people, "union_one", own["id"], "approve", {"payment": "money"},
               expect=403)["error"]["code"] == "four_eyes"
    assert act(client, people, "union_two", own["id"], "approve", {"payment": "money"})["status"] == "approved"

    union_own = file_request(client, people, who="union_one")
    act(client, people, "union_two", union_own["id"], "verify")      # 丙 has no sub-union officer
    assert act(client, people, "union_one", union_own["id"], "approve", {"payment": "money"},
               expect=403)["error"]["code"] == "four_eyes"


def test_a_union_officer_verifies_only_where_the_sub_union_has_no_officer_free(client, people):
    filed = file_request(client, people)
    refused = act(client, people, "union_one", filed["id"], "verify", expect=403)
    assert refused["error"]["code"] == "sub_union_verifies"
    refused = act(client, people, "yi_officer", filed["id"], "verify", expect=404)
    assert refused["error"]["code"] == "condolence_not_found"


def test_an_officer_who_left_is_not_free_to_verify(app, client, people):
    filed = file_request(client, people)
    with app.app_context(), unit_of_work():
        db.session.get(Staff, people.ids["jia_officer"]).status = StaffStatus.LEFT
    assert act(client, people, "union_one", filed["id"], "verify")["status"] == "verified"


def test_a_sub_union_officer_does_not_approve(client, people):
    filed = file_request(client, people)
    act(client, people, "jia_officer", filed["id"], "verify")
    refused = act(client, people, "jia_officer", filed["id"], "approve", {"payment": "money"}, expect=403)
    assert refused["error"]["code"] == "union_officer_only"


# --- amounts, ceilings and the yearly count ---------------------------------------------------------------------

def verified(client, people, **fields) -> int:
    rid = file_request(client, people, **fields)["id"]
    act(client, people, "jia_officer", rid, "verify")
    return rid


def test_a_different_amount_needs_a_reason_and_never_passes_the_ceiling(client, people):
    rid = verified(client, people)
    refused = act(client, people, "union_one", rid, "approve", {"payment": "money", "amount_fen": 60000}, expect=422)
    assert refused["error"]["code"] == "reason_required"
    refused = act(client, people, "union_one", rid, "approve",
                  {"payment": "money", "amount_fen": 100001, "amount_reason": "特殊困难"}, expect=422)
    assert refused["error"]["code"] == "over_ceiling"
    refused = act(client, people, "union_one", rid, "approve", {"payment": "gift"}, expect=422)
    approved = act(client, people, "union_one", rid, "approve",
                   {"payment": "慰问品", "gift": "水果篮", "amount_fen": 100000, "amount_reason": "特殊困难"})
    assert (approved["amount_fen"], approved["payment"]) == (100000, "gift")


def test_an_approval_never_passes_the_yearly_count(client, people):
    # 直系亲属住院: once a year for a member (the solar year of the event), whoever the relative is
    first = verified(client, people, kind="直系亲属住院", relation="父母", relative_name="张建国",
                     event_date="2027-01-05")
    second = verified(client, people, kind="直系亲属住院", relation="配偶", relative_name="刘芳", event_date="2027-03-01")
    last_year = verified(client, people, kind="直系亲属住院", relation="配偶", relative_name="刘芳",
                         event_date="2026-12-20")
    act(client, people, "union_one", first, "approve", {"payment": "money"})
    refused = act(client, people, "union_one", second, "approve", {"payment": "money"}, expect=409)
    assert refused["error"]["code"] == "yearly_count_reached"
    assert act(client, people, "union_one", last_year, "approve", {"payment": "money"})["status"] == "approved"


def race(app, people, calls) -> tuple[list, list]:
    """Runs each (officer, function, args) in its own thread and unit of work, all released at once."""
    barrier = threading.Barrier(len(calls))
    done, refused = [], []

    def run(who, action, args):
        try:
            with app.app_context(), unit_of_work():
                officer = db.session.get(Staff, people.ids[who])
                barrier.wait(timeout=10)
                done.append(action(officer, *args).id)
        except Conflict as exc:
            refused.append(exc.code)
    threads = [threading.Thread(target=run, args=call) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return done, refused


@pytest.mark.row_locks
def test_two_officers_approving_one_request_at_once_one_succeeds(app, client, people):
    rid = verified(client, people)
    fields = review.ApproveFields(payment="money")
    done, refused = race(app, people, [("union_one", review.approve, (rid, fields)),
                                       ("union_two", review.approve, (rid, fields))])
    assert (done, refused) == ([rid], ["transition_not_allowed"])
    with app.app_context():
        request = db.session.get(CondolenceRequest, rid)
        assert request.approved_by_id in (people.ids["union_one"], people.ids["union_two"])
        assert len([s for s in request.history if s.action == "approved"]) == 1


@pytest.mark.row_locks
def test_two_approvals_racing_past_the_yearly_count_one_is_refused(app, client, people):
    first = verified(client, people, kind="重大疾病", event_date="2027-01-05")       # once a year
    second = verified(client, people, kind="重大疾病", event_date="2027-03-01")
    fields = review.ApproveFields(payment="money")
    done, refused = race(app, people, [("union_one", review.approve, (first, fields)),
                                       ("union_two", review.approve, (second, fields))])
    assert len(done) == 1 and refused == ["yearly_count_reached"]
    with app.app_context():
        statuses = sorted(r.status.value for r in db.session.scalars(select(CondolenceRequest)).unique())
    assert statuses == ["approved", "verified"]


@pytest.mark.row_locks
def test_two_approvals_racing_for_the_last_of_several_one_is_refused(app, client, people):
    # 本人住院: twice a year; the first is approved, so the counter's row exists when the two race for the second
    first = verified(client, people, event_date="2027-01-05")
    act(client, people, "union_one", first, "approve", {"payment": "money"})
    second = verified(client, people, event_date="2027-02-20")
    third = verified(client, people, event_date="2027-03-08")
    fields = review.ApproveFields(payment="money")
    done, refused = race(app, people, [("union_one", review.approve, (second, fields)),
                                       ("union_two", review.approve, (third, fields))])
    assert len(done) == 1 and refused == ["yearly_count_reached"]


@pytest.mark.row_locks
def test_a_withdrawal_racing_an_approval_one_wins(app, client, people):
    """An approved request can no longer be withdrawn, and a withdrawn one is never approved: of the two, one."""
    from app.services.condolences import filing

    rid = verified(client, people)
    done, refused = race(app, people, [("union_one", review.approve, (rid, review.ApproveFields(payment="money"))),
                                       ("member", filing.withdraw, (rid,))])
    assert done == [rid] and refused == ["transition_not_allowed"]
    assert steps_of(app, rid)[-1] in ("approved", "withdrawn")
    assert not {"approved", "withdrawn"} <= set(steps_of(app, rid))


@pytest.mark.row_locks
def test_a_withdrawal_racing_a_verification_is_never_followed_by_the_verification(app, client, people):
    """A verified request may still be withdrawn, so both may succeed — but only in that order: a withdrawn request
    is never verified afterwards."""
    from app.services.condolences import filing

    rid = file_request(client, people)["id"]
    done, refused = race(app, people, [("jia_officer", review.verify, (rid,)), ("member", filing.withdraw, (rid,))])
    steps = steps_of(app, rid)
    assert steps[-1] == "withdrawn"
    if len(done) == 2:                   # the verification committed first, then the withdrawal went through
        assert steps[-2:] == ["verified", "withdrawn"] and refused == []
    else:
        assert done == [rid] and refused == ["transition_not_allowed"] and "verified" not in steps


def steps_of(app, request_id: int) -> list[str]:
    with app.app_context():
        request = db.session.get(CondolenceRequest, request_id)
        return [step.action for step in request.history]


# --- filing rules -------------------------------------------------------------------------------------------------

def test_none_is_filed_more_than_six_months_after_the_event_or_before_it(client, people):
    refused = client.post("/api/v1/condolences", headers=people["member"], json={
        "type_id": type_id(client, people, "本人住院"), "event_date": "2026-09-09", "description": "住院"})
    assert (refused.status_code, error_code(refused)) == (422, "filed_too_late")
    assert file_request(client, people, event_date="2026-09-10")["status"] == "submitted"
    refused = client.post("/api/v1/condolences", headers=people["member"], json={
        "type_id": type_id(client, people, "本人住院"), "event_date": "2027-03-11", "description": "住院"})
    assert (refused.status_code, error_code(refused)) == (422, "event_in_the_future")


def test_a_relative_is_named_for_relatives_types_and_parents_in_law_only_where_the_rules_say(client, people):
    base = {"type_id": type_id(client, people, "直系亲属去世"), "event_date": "2027-03-01", "description": "丧事"}
    response = client.post("/api/v1/condolences", json=base, headers=people["member"])
    assert (response.status_code, error_code(response)) == (422, "relative_required")
    response = client.post("/api/v1/condolences", json={**base, "relation": "配偶父母", "relative_name": "周某"},
                           headers=people["member"])
    assert (response.status_code, error_code(response)) == (422, "not_a_direct_relative")
    response = client.post("/api/v1/condolences", headers=people["member"], json={
        "type_id": type_id(client, people, "本人住院"), "event_date": "2027-03-01", "description": "住院",
        "relation": "父母", "relative_name": "张建国"})
    assert (response.status_code, error_code(response)) == (422, "not_for_a_relative")
    response = client.post("/api/v1/condolences", json={**base, "relation": "兄弟", "relative_name": "王某"},
                           headers=people["member"])
    assert response.status_code == 422 and "父母" in response.json["error"]["message"]


def test_parents_in_law_count_where_the_union_includes_them(make_app, people, token_for):
    app = make_app(**{"condolences.parents_in_law_are_relatives": True})
    client = app.test_client()
    headers = bearer(token_for(people.ids["member"]))
    kinds = client.get("/api/v1/condolences/types", headers=headers).json
    assert "配偶父母" in kinds["relations"]
    kind = next(t["id"] for t in kinds["items"] if t["name"] == "直系亲属去世")
    response = client.post("/api/v1/condolences", headers=headers, json={
        "type_id": kind, "event_date": "2027-03-01", "description": "丧事", "relation": "配偶父母",
        "relative_name": "周某"})
    assert response.status_code == 201, response.json


def test_the_same_type_for_the_same_member_within_30_days_is_flagged_to_reviewers(client, people):
    first = file_request(client, people, event_date="2027-02-01")
    again = file_request(client, people, event_date="2027-03-02")            # 29 days later
    later = file_request(client, people, kind="意外事故", event_date="2027-03-02")
    listed = {r["id"]: r for r in client.get("/api/v1/officer/condolences", headers=people["jia_officer"]).json["items"]}
    assert listed[first["id"]]["possible_duplicate_of_id"] is None
    assert listed[again["id"]]["possible_duplicate_of_id"] == first["id"]
    assert listed[later["id"]]["possible_duplicate_of_id"] is None
    assert client.get(f"/api/v1/condolences/{again['id']}", headers=people["jia_officer"]).json[
        "possible_duplicate_of_id"] == first["id"]
    assert again["possible_duplicate_of_id"] is None                    # the hint is the reviewers', not the member's


# --- rates --------------------------------------------------------------------------------------------------------

def test_the_rate_in_force_on_the_event_day_applies_and_stays_with_the_request(app, client, people):
    before = file_request(client, people, event_date="2027-02-27")
    new_rate = {"type": "本人住院", "member_category": "在职", "amount_fen": 80000, "ceiling_fen": 120000,
                "times_per_year": 3, "effective_from": "2027-02-28"}
    refused = client.put("/api/v1/officer/condolence-rates", json=new_rate, headers=people["union_one"])
    assert (refused.status_code, error_code(refused)) == (403, "admin_only")
    response = client.put("/api/v1/officer/condolence-rates", json=new_rate, headers=people["admin"])
    assert response.status_code == 200 and response.json["version"] == 2
    after = file_request(client, people, event_date="2027-02-28")
    assert (before["standard_amount_fen"], before["rate_version"]) == (50000, 1)
    assert (after["standard_amount_fen"], after["rate_version"]) == (80000, 2)
    retiree_rate = client.get("/api/v1/officer/condolence-rates", headers=people["union_one"]).json["in_force"]
    assert {(r["type_name"], r["member_category"], r["amount_fen"]) for r in retiree_rate} >= \
        {("本人住院", "active", 80000), ("本人住院", "retired", 50000)}
    with app.app_context():
        assert db.session.scalar(select(AuditLog.action).where(AuditLog.action == "condolence.rate")) is not None


def test_the_config_seeds_rates_only_into_an_empty_table(make_app, app, client, people):
    file_request(client, people)                            # seeds from the default config
    other = make_app(**{"condolences.rates": [{"name": "另一种", "label": "慰问", "subject": "self",
                                               "active": [1, 2, 1], "retired": [1, 2, 1]}]})
    kinds = other.test_client().get("/api/v1/condolences/types", headers=people["member"]).json["items"]
    assert "另一种" not in [k["name"] for k in kinds] and "本人住院" in [k["name"] for k in kinds]


def test_an_admin_adds_a_type_which_is_filed_once_it_has_rates(client, people):
    created = client.post("/api/v1/officer/condolence-types", headers=people["admin"],
                          json={"name": "子女重大疾病", "label": "大病慰问", "subject": "直系亲属"})
    assert created.status_code == 201, created.json
    body = {"type_id": created.json["id"], "event_date": "2027-03-01", "description": "住院", "relation": "子女",
            "relative_name": "王小明"}
    refused = client.post("/api/v1/condolences", json=body, headers=people["member"])
    assert (refused.status_code, error_code(refused)) == (422, "no_rate")
    client.put("/api/v1/officer/condolence-rates", headers=people["admin"], json={
        "type": "子女重大疾病", "member_category": "active", "amount_fen": 100000, "ceiling_fen": 100000,
        "times_per_year": 1, "effective_from": "2027-01-01"})
    assert client.post("/api/v1/condolences", json=body, headers=people["member"]).status_code == 201
    again = client.post("/api/v1/officer/condolence-types", headers=people["admin"],
                        json={"name": "子女重大疾病", "label": "大病慰问", "subject": "relative"})
    assert (again.status_code, error_code(again)) == (409, "type_exists")


def test_a_retiree_is_paid_at_the_retirees_rate_even_after_death(app, client, people):
    body = {"employee_no": "R0001", "consent_by": "家属", "consent_at": "2027-03-09T18:00:00+08:00",
            "type_id": type_id(client, people, "本人去世"), "event_date": "2027-03-08", "description": "病逝"}
    with app.app_context(), unit_of_work():
        db.session.get(Staff, people.ids["retiree"]).died_on = date(2027, 3, 8)
    response = client.post("/api/v1/officer/condolences", json=body, headers=people["jia_officer"])
    assert response.status_code == 201, response.json
    assert response.json["standard_amount_fen"] == 150000 and response.json["member_category"] == "retired"
    [notice] = notices(app, response.json["id"])
    assert recipients(app, notice) == {people.ids["jia_officer"]}       # never to the person who died


def test_types_list_what_a_member_files_without_amounts_of_others(client, people):
    listed = client.get("/api/v1/condolences/types", headers=people["member"]).json
    assert [t["name"] for t in listed["items"]][:3] == ["本人住院", "本人住院并手术", "直系亲属住院"]
    assert listed["relations"] == ["配偶", "父母", "子女"]


def test_a_withdrawn_request_is_no_duplicate(client, people):
    first = file_request(client, people)
    mine(client, people, "member", first["id"], "withdraw")
    second = file_request(client, people)
    detail = client.get(f"/api/v1/condolences/{second['id']}", headers=people["jia_officer"]).json
    assert detail["possible_duplicate_of_id"] is None


# --- over real HTTP -------------------------------------------------------------------------------------------------

def test_the_whole_workflow_over_real_http(app, live_server, people):
    """Served on loopback as in production: a 补材料 round then approval, a rejection, a withdrawal."""
    def call(method: str, path: str, who: str, **kwargs):
        return requests.request(method, f"{live_server.url}/api/v1{path}", headers=people[who], timeout=10, **kwargs)

    kinds = {k["name"]: k["id"] for k in call("GET", "/condolences/types", "member").json()["items"]}

    def filed(kind: str, day: str, **extra) -> int:
        response = call("POST", "/condolences", "member", json={
            "type_id": kinds[kind], "event_date": day, "place": "市第一人民医院", "description": "急性阑尾炎", **extra})
        assert response.status_code == 201, response.text
        return response.json()["id"]

    approved = filed("本人住院", "2027-03-01")
    assert call("POST", f"/officer/condolences/{approved}/return", "jia_officer",
                json={"missing": "出院记录"}).json()["status"] == "returned"
    upload = call("POST", f"/condolences/{approved}/attachments", "member",
                  files={"file": ("出院记录.pdf", PDF, "application/pdf")})
    assert upload.status_code == 201, upload.text
    assert call("POST", f"/condolences/{approved}/resubmit", "member").json()["status"] == "submitted"
    assert call("POST", f"/officer/condolences/{approved}/verify", "jia_officer").json()["status"] == "verified"
    done = call("POST", f"/officer/condolences/{approved}/approve", "union_one", json={"payment": "money"})
    assert (done.status_code, done.json()["amount_fen"]) == (200, 50000)
    again = call("POST", f"/officer/condolences/{approved}/approve", "union_two", json={"payment": "money"})
    assert (again.status_code, again.json()["error"]["code"]) == (409, "transition_not_allowed")

    rejected = filed("意外事故", "2027-02-01")
    refused = call("POST", f"/officer/condolences/{rejected}/reject", "jia_officer", json={"reason": "请先认定工伤"})
    assert refused.json()["status"] == "rejected"
    assert call("GET", f"/condolences/{rejected}", "member").json()["reject_reason"] == "请先认定工伤"

    withdrawn = filed("直系亲属住院", "2027-03-05", relation="子女", relative_name="王小明")
    assert call("POST", f"/condolences/{withdrawn}/withdraw", "member").json()["status"] == "withdrawn"
    assert call("GET", f"/condolences/{withdrawn}", "yi_officer").status_code == 404

    statuses = {r["id"]: r["status"] for r in call("GET", "/condolences", "member").json()["items"]}
    assert statuses == {approved: "approved", rejected: "rejected", withdrawn: "withdrawn"}
    file_download = call("GET", f"/condolences/{approved}/attachments/{upload.json()['id']}", "union_two")
    assert file_download.content == PDF and "no-store" in file_download.headers["Cache-Control"]
    texts = [f"{n.title}{n.body}{n.data}" for rid in (approved, rejected, withdrawn) for n in notices(app, rid)]
    assert len(texts) == 5 + 2 + 2 and not any(word in t for t in texts for word in SECRET_WORDS)
