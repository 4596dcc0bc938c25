"""Retiree visits before Spring Festival: the year's plan holds every living retiree of the roster, officers see and
record their own sub-unions' (union officers all), a visit is recorded once, its note is sealed and reading it is
audited, money an officer advanced goes into the month's batch, and the figures add up."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from app.extensions import db
from app.services.condolences import payments, visits
from models import AuditLog, RetireeVisit, StaffStatus
from tests.helpers import error_code
from tests.test_condolence_payments import app, at, close  # noqa: F401  (app: tokens that last, a clock file)
from tests.test_condolences import people, race  # noqa: F401  (people: the fixture)

NOTE = "患高血压多年，老伴住院中"


@pytest.fixture
def retirees(make_staff, people) -> dict[str, int]:  # noqa: F811
    """R0001 (甲, from `people`), two more in 甲 and one in 乙; one who died, one who left."""
    made = {"甲二": make_staff("R0002", "钱退休", sub_union="甲分工会", status=StaffStatus.RETIRED),
            "甲三": make_staff("R0003", "孙退休", sub_union="甲分工会", status=StaffStatus.RETIRED),
            "乙一": make_staff("R0004", "李退休", sub_union="乙分工会", status=StaffStatus.RETIRED),
            "died": make_staff("R0005", "周退休", sub_union="甲分工会", status=StaffStatus.RETIRED,
                               died_on=date(2026, 5, 1)),
            "left": make_staff("L0001", "吴离职", sub_union="甲分工会", status=StaffStatus.LEFT)}
    return {"甲一": people.ids["retiree"], **made}


def plan(client, people, who="union_one", year=2027, expect=201):  # noqa: F811
    with at(2027, 1, 5):
        response = client.post("/api/v1/officer/visit-plans", json={"year": year}, headers=people[who])
    assert response.status_code == expect, response.json
    return response.json


def step(client, people, who, visit_id, action, body, expect=200, when=(2027, 1, 20)):  # noqa: F811
    with at(*when):
        response = client.post(f"/api/v1/officer/visit-plans/2027/visits/{visit_id}/{action}", json=body,
                               headers=people[who])
    assert response.status_code == expect, response.json
    return response.json


def by_name(made: dict) -> dict[str, dict]:
    return {v["name"]: v for v in made["visits"]}


def test_the_plan_holds_every_living_retiree_once_a_year(client, people, retirees):  # noqa: F811
    made = plan(client, people)
    assert sorted(by_name(made)) == sorted(["赵退休", "钱退休", "孙退休", "李退休"])
    assert {p["sub_union"]: p["retirees"] for p in made["progress"]} == {"甲分工会": 3, "乙分工会": 1}
    assert plan(client, people, who="union_two", expect=409)["error"]["code"] == "plan_exists"
    for who in ("jia_officer", "admin", "member"):
        assert plan(client, people, who=who, year=2028, expect=403)


def test_officers_see_and_record_their_own_sub_unions_retirees(client, people, retirees):  # noqa: F811
    made = by_name(plan(client, people))
    with at(2027, 1, 6):
        mine = client.get("/api/v1/officer/visit-plans/2027", headers=people["jia_officer"]).json
        admin = client.get("/api/v1/officer/visit-plans/2027", headers=people["admin"])
    assert sorted(by_name(mine)) == ["孙退休", "赵退休", "钱退休"] and admin.status_code == 403
    refused = step(client, people, "jia_officer", made["李退休"]["id"], "visited", {"visited_on": "2027-01-20"},
                   expect=404)
    assert refused["error"]["code"] == "visit_not_found"
    assigned = step(client, people, "union_one", made["钱退休"]["id"], "assign", {"employee_no": "J0001"})
    assert assigned["officer"] == "甲主席"
    wrong = step(client, people, "union_one", made["李退休"]["id"], "assign", {"employee_no": "J0001"}, expect=422)
    assert wrong["error"]["code"] == "not_their_officer"


def test_a_visit_is_recorded_once_and_its_note_is_sealed_and_read_under_audit(app, client, people, retirees):  # noqa: F811
    visit_id = by_name(plan(client, people))["钱退休"]["id"]
    done = step(client, people, "jia_officer", visit_id, "visited",
                {"visited_on": "2027-01-20", "money_fen": 50000, "gift": "米、油各一份", "note": NOTE})
    assert (done["status"], done["status_label"], done["officer"]) == ("visited", "已走访", "甲主席")
    again = step(client, people, "union_one", visit_id, "visited", {"visited_on": "2027-01-21"}, expect=409)
    assert again["error"]["code"] == "visit_recorded"
    step(client, people, "union_one", visit_id, "skip", {"reason": "迁居"}, expect=409)
    with app.app_context():
        raw = db.session.scalar(select(RetireeVisit.note_sealed).where(RetireeVisit.id == visit_id))
    assert NOTE.encode() not in raw
    with at(2027, 1, 22):
        listed = client.get("/api/v1/officer/visit-plans/2027", headers=people["union_one"]).get_data(as_text=True)
        detail = client.get(f"/api/v1/officer/visit-plans/2027/visits/{visit_id}", headers=people["union_one"])
    assert NOTE not in listed and detail.json["note"] == NOTE
    with app.app_context():
        assert db.session.scalar(select(AuditLog.actor_label).where(AuditLog.action == "visit.read")) == "U0001"


def test_a_retiree_who_moved_is_skipped_with_the_reason_and_progress_counts_it(client, people, retirees):  # noqa: F811
    made = by_name(plan(client, people))
    step(client, people, "jia_officer", made["孙退休"]["id"], "skip", {"reason": "已迁居外地"})
    step(client, people, "jia_officer", made["赵退休"]["id"], "visited",
         {"visited_on": "2027-01-20", "money_fen": 30000, "gift": "水果一箱"})
    with at(2027, 1, 22):
        progress = client.get("/api/v1/officer/visit-plans/2027", headers=people["union_one"]).json["progress"]
    assert {p["sub_union"]: (p["retirees"], p["visited"], p["skipped"], p["money_fen"], p["gifts"])
            for p in progress} == {"甲分工会": (3, 1, 1, 30000, 1), "乙分工会": (1, 0, 0, 0, 0)}


def test_money_advanced_for_reimbursement_goes_into_the_months_batch_and_the_figures_add_up(
        app, client, people, retirees):  # noqa: F811
    made = by_name(plan(client, people))
    step(client, people, "jia_officer", made["赵退休"]["id"], "visited",
         {"visited_on": "2027-01-20", "money_fen": 50000, "reimburse": True})
    step(client, people, "jia_officer", made["钱退休"]["id"], "visited",
         {"visited_on": "2027-01-21", "money_fen": 30000, "gift": "米、油各一份"}, when=(2027, 1, 21))
    step(client, people, "union_one", made["李退休"]["id"], "visited",
         {"visited_on": "2027-01-27", "gift": "米、油各一份"}, when=(2027, 1, 27))
    refused = step(client, people, "jia_officer", made["孙退休"]["id"], "visited",
                   {"visited_on": "2027-01-21", "reimburse": True}, expect=422)
    assert "报销" in refused["error"]["message"]
    batch = close(client, people, "2027-01", (2027, 1, 26))
    assert [(line["name"], line["amount_fen"], line["type_name"]) for line in batch["lines"]] == [
        ("赵退休", 50000, payments.VISIT_TYPE)]
    assert (batch["count"], batch["total_fen"], batch["requests"]) == (1, 50000, [])
    with app.app_context():
        figures = visits.figures(date(2027, 1, 1), date(2027, 1, 31))
    assert (figures.visited, figures.money_fen, figures.gifts) == (3, 80000, {"米、油各一份": 2})


def test_a_staff_member_cannot_see_the_plan(client, people, retirees):  # noqa: F811
    plan(client, people)
    with at(2027, 1, 6):
        response = client.get("/api/v1/officer/visit-plans/2027", headers=people["member"])
    assert (response.status_code, error_code(response)) == (403, "officer_only")


@pytest.mark.row_locks
def test_two_officers_recording_one_visit_at_once_one_succeeds(app, client, people, retirees):  # noqa: F811
    visit_id = by_name(plan(client, people))["钱退休"]["id"]
    fields = visits.VisitedFields(visited_on=date(2027, 1, 20), money_fen=50000)
    with at(2027, 1, 21):
        done, refused = race(app, people, [(who, visits.record_visit, (2027, visit_id, fields))
                                           for who in ("jia_officer", "union_one")])
    assert (done, refused) == ([visit_id], ["visit_recorded"])
