"""Condolences, part 2: finance pays a month's approved condolences in one batch cut off on the 25th; a gift is
closed when its delivery is recorded; the ledger and the year's figures add up to what was paid; the quarter's 公示
says who, which sub-union, the disclosure label and how much — nothing more — and leaves out never-disclosed types."""

from __future__ import annotations

import io
from contextlib import contextmanager
from datetime import date, datetime
from zoneinfo import ZoneInfo

import openpyxl
import pytest
import time_machine
from sqlalchemy import select

from app.extensions import db
from app.services.condolences import payments
from models import CondolenceBatch
from tests.helpers import error_code
from tests.test_condolences import SECRET_WORDS, act, people, race, type_id  # noqa: F401  (people: the fixture)

BEIJING = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def app(make_app, tmp_path):
    """Tokens that last through the months these tests travel across (issued today, used in 2027), and the clock
    file a scheduler's jobs read (absent until a test writes it: until then time-machine's clock rules)."""
    return make_app(**{"app.token_ttl_seconds": 2 * 365 * 24 * 3600, "app.clock_file": str(tmp_path / "now.txt")})


@contextmanager
def at(year: int, month: int, day: int, hour: int = 10):
    with time_machine.travel(datetime(year, month, day, hour, tzinfo=BEIJING), tick=False):
        yield


def approved(client, people, when: tuple, who: str = "member", kind: str = "本人住院", event: str | None = None,
             payment: dict | None = None, verifier: str = "jia_officer", approver: str = "union_one") -> dict:
    """A request filed, verified and approved at `when` (Beijing); its approval as the API answered it."""
    with at(*when):
        body = {"type_id": type_id(client, people, kind), "event_date": event or f"{when[0]}-{when[1]:02d}-01",
                "place": "市第一人民医院", "description": "急性阑尾炎住院一周"}
        if kind.startswith("直系亲属"):
            body.update(relation="父母", relative_name="张建国")
        filed = client.post("/api/v1/condolences", json=body, headers=people[who])
        assert filed.status_code == 201, filed.json
        act(client, people, verifier, filed.json["id"], "verify")
        return act(client, people, approver, filed.json["id"], "approve", payment or {"payment": "money"})


def close(client, people, month: str, when: tuple, who: str = "union_one", expect: int = 201) -> dict:
    with at(*when):
        response = client.post("/api/v1/officer/condolence-batches", json={"month": month}, headers=people[who])
    assert response.status_code == expect, response.json
    return response.json


def test_a_months_batch_holds_what_was_approved_by_the_cut_off_and_adds_up(client, people):
    march = [approved(client, people, (2027, 3, 3)),
             approved(client, people, (2027, 3, 5), kind="直系亲属住院", event="2027-03-02"),
             approved(client, people, (2027, 3, 25, 23), who="yi_officer", verifier="union_two")]
    gift = approved(client, people, (2027, 3, 6), kind="意外事故",
                    payment={"payment": "gift", "gift": "水果篮", "amount_fen": 30000, "amount_reason": "按实物价值"})
    april = approved(client, people, (2027, 3, 26, 9), kind="重大疾病", event="2027-03-20")     # after the cut-off
    batch = close(client, people, "2027-03", (2027, 3, 27))
    assert sorted(r["id"] for r in batch["requests"]) == sorted(r["id"] for r in march)
    assert (batch["count"], batch["total_fen"]) == (3, sum(r["amount_fen"] for r in march)) == (3, 50000 + 30000 + 50000)
    assert {t["name"]: (t["count"], t["total_fen"]) for t in batch["by_type"]} == {
        "本人住院": (2, 100000), "直系亲属住院": (1, 30000)}
    assert {t["name"]: (t["count"], t["total_fen"]) for t in batch["by_sub_union"]} == {
        "甲分工会": (2, 80000), "乙分工会": (1, 50000)}
    assert gift["id"] not in [r["id"] for r in batch["requests"]]

    next_month = close(client, people, "2027-04", (2027, 4, 25))
    assert [r["id"] for r in next_month["requests"]] == [april["id"]]
    assert close(client, people, "2027-03", (2027, 4, 26), who="union_two", expect=409)["error"]["code"] == \
        "batch_closed"


def test_the_batch_workbook_for_finance_checks_cell_by_cell(client, people):
    first = approved(client, people, (2027, 3, 3))
    second = approved(client, people, (2027, 3, 4), who="yi_officer", verifier="union_two")
    batch = close(client, people, "2027-03", (2027, 3, 25))
    with at(2027, 3, 25):
        response = client.get(f"/api/v1/officer/condolence-batches/{batch['id']}.xlsx", headers=people["union_one"])
    assert response.status_code == 200 and "condolence-batch-2027-03.xlsx" in response.headers["Content-Disposition"]
    sheet = openpyxl.load_workbook(io.BytesIO(response.data)).active
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0] == payments.BATCH_HEADERS
    assert rows[1] == [1, "M0001", "王会员", "甲分工会", "本人住院", "2027-03-01", "2027-03-03 10:00", 500]
    assert rows[2] == [2, "Y0001", "乙主席", "乙分工会", "本人住院", "2027-03-01", "2027-03-04 10:00", 500]
    assert ["按类型合计"] == [c for c in rows[4] if c is not None]
    assert rows[5][4:] == ["本人住院", "2 人次", None, 1000]
    assert [c for c in rows[7] if c is not None] == ["按分工会合计"]
    assert {tuple(r[4:8:3]) for r in rows[8:10]} == {("甲分工会", 500), ("乙分工会", 500)}
    assert rows[-1][0] == "总计" and rows[-1][-1] == (first["amount_fen"] + second["amount_fen"]) / 100
    assert not any(word in str(rows) for word in ("市第一人民医院", "急性阑尾炎", "张建国"))


def test_marking_the_batch_paid_closes_its_requests_and_then_it_never_changes(client, people):
    request = approved(client, people, (2027, 3, 3))
    batch = close(client, people, "2027-03", (2027, 3, 26))
    paid = {"paid_on": "2027-03-28", "method": "转账", "handled_by": "王会计"}
    with at(2027, 3, 28):
        done = client.post(f"/api/v1/officer/condolence-batches/{batch['id']}/paid", json=paid,
                           headers=people["union_one"])
        again = client.post(f"/api/v1/officer/condolence-batches/{batch['id']}/paid", json=paid,
                            headers=people["union_two"])
        detail = client.get(f"/api/v1/condolences/{request['id']}", headers=people["member"]).json
    assert (done.status_code, done.json["status"], done.json["method"], done.json["handled_by"]) == \
        (200, "paid", "transfer", "王会计")
    assert (done.json["status_label"], done.json["method_label"]) == ("已发放", "转账")
    assert (again.status_code, error_code(again)) == (409, "batch_paid")
    assert (detail["status"], detail["status_label"]) == ("closed", "已发放")
    assert [s["action"] for s in detail["history"]][-1] == "paid"


def test_a_batch_is_closed_on_or_after_its_cut_off_day_and_by_union_officers(client, people):
    refused = close(client, people, "2027-03", (2027, 3, 24), expect=409)
    assert refused["error"]["code"] == "before_cut_off" and "3 月 25 日" in refused["error"]["message"]
    for who in ("jia_officer", "admin", "member"):
        close(client, people, "2027-03", (2027, 3, 25), who=who, expect=403)
    assert close(client, people, "2027-03", (2027, 3, 25))["count"] == 0


@pytest.mark.row_locks
def test_two_officers_closing_one_batch_at_once_one_succeeds(app, client, people):  # noqa: F811
    approved(client, people, (2027, 3, 3))
    with at(2027, 3, 26):
        done, refused = race(app, people, [(who, payments.close_batch, ("2027-03",))
                                           for who in ("union_one", "union_two")])
    assert len(done) == 1 and refused == ["batch_closed"]
    with app.app_context():
        assert db.session.get(CondolenceBatch, done[0]).count == 1


def test_a_gift_is_closed_by_its_delivery_and_money_only_by_its_batch(client, people):
    gift = approved(client, people, (2027, 3, 6), kind="意外事故",
                    payment={"payment": "gift", "gift": "水果篮", "amount_fen": 30000, "amount_reason": "按实物价值"})
    money = approved(client, people, (2027, 3, 7), kind="重大疾病", event="2027-03-02")
    with at(2027, 3, 8):
        delivered = client.post(f"/api/v1/officer/condolences/{gift['id']}/delivered", headers=people["jia_officer"],
                                json={"delivered_on": "2027-03-08", "note": "送到家中"})
        refused = client.post(f"/api/v1/officer/condolences/{money['id']}/delivered", headers=people["jia_officer"],
                              json={"delivered_on": "2027-03-08"})
        again = client.post(f"/api/v1/officer/condolences/{gift['id']}/delivered", headers=people["jia_officer"],
                            json={"delivered_on": "2027-03-08"})
        outsider = client.post(f"/api/v1/officer/condolences/{money['id']}/delivered", headers=people["yi_officer"],
                               json={"delivered_on": "2027-03-08"})
    assert (delivered.status_code, delivered.json["status"]) == (200, "closed")
    assert (refused.status_code, error_code(refused)) == (409, "paid_in_money")
    assert (again.status_code, error_code(again)) == (409, "transition_not_allowed")
    assert outsider.status_code == 404


def test_the_years_figures_count_what_was_paid_or_delivered_by_its_day(app, client, people):
    paid_march = [approved(client, people, (2027, 3, 3)),
                  approved(client, people, (2027, 3, 4), who="yi_officer", verifier="union_two")]
    gift = approved(client, people, (2027, 3, 6), kind="意外事故",
                    payment={"payment": "gift", "gift": "水果篮", "amount_fen": 30000, "amount_reason": "按实物价值"})
    approved(client, people, (2027, 3, 27), kind="重大疾病", event="2027-03-02")      # after the cut-off: not paid
    batch = close(client, people, "2027-03", (2027, 3, 26))
    with at(2027, 3, 28):
        client.post(f"/api/v1/officer/condolence-batches/{batch['id']}/paid", headers=people["union_one"],
                    json={"paid_on": "2027-03-28", "method": "cash", "handled_by": "王会计"})
    with at(2027, 4, 2):
        client.post(f"/api/v1/officer/condolences/{gift['id']}/delivered", headers=people["jia_officer"],
                    json={"delivered_on": "2027-04-02"})
        year = client.get("/api/v1/officer/condolence-figures?start=2027-01-01&end=2027-12-31",
                          headers=people["union_one"]).json
        march = client.get("/api/v1/officer/condolence-figures?start=2027-03-01&end=2027-03-31",
                           headers=people["union_one"]).json
    expected = sum(r["amount_fen"] for r in paid_march) + gift["amount_fen"]
    assert (year["count"], year["total_fen"]) == (3, expected)
    assert {t["name"]: (t["count"], t["total_fen"]) for t in year["by_type"]} == {
        "本人住院": (2, 100000), "意外事故": (1, 30000)}
    assert {t["name"]: t["count"] for t in year["by_sub_union"]} == {"甲分工会": 2, "乙分工会": 1}
    assert (march["count"], march["total_fen"]) == (2, 100000)        # the gift was delivered in April
    with app.app_context():
        assert payments.figures(date(2027, 4, 1), date(2027, 4, 30)).total_fen == 30000


def test_the_ledger_lists_each_approval_of_the_period_with_what_became_of_it(client, people):
    first = approved(client, people, (2027, 3, 3))
    approved(client, people, (2027, 5, 3), kind="重大疾病", event="2027-05-01")        # outside the period
    close(client, people, "2027-03", (2027, 3, 26))
    with at(2027, 3, 27):
        response = client.get("/api/v1/officer/condolence-ledger.xlsx?start=2027-03-01&end=2027-03-31",
                              headers=people["union_one"])
        refused = client.get("/api/v1/officer/condolence-ledger.xlsx?start=2027-03-01&end=2027-03-31",
                             headers=people["jia_officer"])
    assert refused.status_code == 403
    rows = [list(r) for r in openpyxl.load_workbook(io.BytesIO(response.data)).active.iter_rows(values_only=True)]
    assert rows[0] == payments.LEDGER_HEADERS
    assert rows[1:] == [[first["id"], "M0001", "王会员", "甲分工会", "本人住院", "住院慰问", "2027-03-01", "2027-03-03 10:00",
                         "慰问金", 500, "已批准，待发放", None, "2027-03"]]


def test_the_quarters_disclosure_names_only_who_where_what_label_and_how_much(client, people):
    hospital = approved(client, people, (2027, 3, 3))
    relative = approved(client, people, (2027, 3, 4), kind="直系亲属住院", event="2027-03-02")
    hidden = approved(client, people, (2027, 3, 5), who="yi_officer", verifier="union_two", kind="重大疾病",
                      event="2027-03-01")
    with at(2027, 3, 5):
        kinds = client.get("/api/v1/officer/condolence-rates", headers=people["admin"]).json["in_force"]
        serious = next(k["type_id"] for k in kinds if k["type_name"] == "重大疾病")
        marked = client.patch(f"/api/v1/officer/condolence-types/{serious}", json={"never_disclosed": True},
                              headers=people["admin"])
        assert marked.status_code == 200 and marked.json["never_disclosed"] is True
        assert client.patch(f"/api/v1/officer/condolence-types/{serious}", json={"never_disclosed": False},
                            headers=people["union_one"]).status_code == 403
    batch = close(client, people, "2027-03", (2027, 3, 26))
    with at(2027, 3, 28):
        client.post(f"/api/v1/officer/condolence-batches/{batch['id']}/paid", headers=people["union_one"],
                    json={"paid_on": "2027-03-28", "method": "转账", "handled_by": "王会计"})
    with at(2027, 4, 2):
        drafted = client.post("/api/v1/officer/condolence-disclosures", json={"year": 2027, "quarter": 1},
                              headers=people["union_one"])
    assert drafted.status_code == 201, drafted.json
    body = drafted.json["body"]
    assert "王会员｜甲分工会｜住院慰问｜500 元" in body and "王会员｜甲分工会｜住院慰问｜300 元" in body
    assert "乙主席" not in body and "合计 2 人次，800 元" in body            # the never-disclosed type is left out
    assert not any(word in body + drafted.json["title"] for word in SECRET_WORDS if word != "住院慰问")
    assert not any(word in body for word in ("本人住院", "直系亲属", "重大疾病", "父母"))
    with at(2027, 4, 2):
        draft = client.get(f"/api/v1/officer/announcements/{drafted.json['announcement_id']}",
                           headers=people["union_one"]).json
    assert (draft["status"], draft["category"]) == ("draft", "disclosure")
    assert not any(draft["audience"].values())                               # to every member
    assert hospital["id"] and relative["id"] and hidden["id"]


# --- retention ------------------------------------------------------------------------------------------------------

def test_retention_erases_files_and_sealed_text_five_years_after_the_end_and_keeps_the_ledger(
        app, client, people, tmp_path, caplog):
    from app.services import attachments
    from jobs.schedule import schedule
    from jobs.scheduler import JobRunner
    from models import CondolenceAttachment, CondolenceRequest
    from tests.helpers import set_clock_file
    from tests.test_condolences import PDF, mine

    with at(2027, 3, 3):
        body = {"type_id": type_id(client, people, "本人住院"), "event_date": "2027-03-01", "place": "市第一人民医院",
                "description": "急性阑尾炎住院一周"}
        withdrawn = client.post("/api/v1/condolences", json=body, headers=people["member"]).json
        upload = client.post(f"/api/v1/condolences/{withdrawn['id']}/attachments", headers=people["member"],
                             data={"file": (io.BytesIO(PDF), "出院记录.pdf")}, content_type="multipart/form-data")
        pending = client.post("/api/v1/condolences", json={**body, "event_date": "2027-02-01"},
                              headers=people["colleague"]).json
    with at(2027, 3, 4):
        mine(client, people, "member", withdrawn["id"], "withdraw")
    paid = approved(client, people, (2027, 3, 5), kind="重大疾病", event="2027-03-02")
    batch = close(client, people, "2027-03", (2027, 3, 26))
    with at(2027, 3, 28):
        client.post(f"/api/v1/officer/condolence-batches/{batch['id']}/paid", headers=people["union_one"],
                    json={"paid_on": "2027-03-28", "method": "转账", "handled_by": "王会计"})
    with app.app_context():
        stored = attachments.path_of(db.session.get(CondolenceAttachment, upload.json["id"]))
    assert stored.exists()

    clock = tmp_path / "now.txt"
    runner = JobRunner(app)
    runner.heartbeat()
    [job] = [spec for spec in schedule() if spec.id == "condolences.retention"]
    with caplog.at_level("INFO"):
        set_clock_file(clock, datetime(2032, 3, 3, 12, tzinfo=BEIJING))      # not yet five years after either end
        assert runner.run_job(job) == 0
        set_clock_file(clock, datetime(2032, 3, 5, 12, tzinfo=BEIJING))      # five years after the withdrawal
        assert runner.run_job(job) == 1
        set_clock_file(clock, datetime(2032, 3, 29, 12, tzinfo=BEIJING))     # ... and after the payment
        assert runner.run_job(job) == 1
        assert runner.run_job(job) == 0
    runner.leader.release()
    assert not stored.exists()
    with app.app_context():
        rows = {r.id: r for r in db.session.scalars(select(CondolenceRequest)).unique()}
        for erased in (withdrawn["id"], paid["id"]):
            row = rows[erased]
            assert (row.description_sealed, row.place_sealed, row.attachments) == (None, None, [])
            assert row.details_erased_at is not None
        assert (rows[paid["id"]].amount_fen, rows[paid["id"]].paid_on, rows[paid["id"]].type.name) == \
            (paid["amount_fen"], date(2027, 3, 28), "重大疾病")              # the ledger row stays
        assert rows[pending["id"]].description_sealed is not None and rows[pending["id"]].details_erased_at is None
        assert payments.figures(date(2027, 1, 1), date(2027, 12, 31)).total_fen == paid["amount_fen"]
    lines = [r.getMessage() for r in caplog.records if "retention" in r.getMessage()]
    assert lines and not any(name in " ".join(lines) for name in ("王会员", "M0001", "急性阑尾炎"))
