"""The signed-in staff member's cached card (app.services.principals): a token whose card is in Redis is refused at
once by every change that ends it, whichever process makes the change, and a change never hides behind a card."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import requests
from sqlalchemy import select, update

from app.extensions import db
from app.services import principals, roster
from app.services.proposals import congress
from app.services.staff_import import import_staff_file
from app.unit_of_work import unit_of_work
from models import Department, Staff, StaffStatus
from tests.helpers import bearer, error_code, linked_follower
from tests.test_cli_staff import SMART_UNION
from tests.test_staff_import import write_csv
from tests.wechat_client import WeChatPusher

ME = "/api/v1/me"


@pytest.fixture
def people(app, make_staff, grant, token_for):
    """A member (工号 M0001) whose token has been used once, so their card is cached; a union officer."""
    member = make_staff("M0001", name="刘老师", department="计算机学院", sub_union="信息学院分工会")
    officer = make_staff("U0001", name="陈干事", department="校工会")
    grant(officer, "union_officer")
    return {"member": member, "officer": officer, "member_token": token_for(member),
            "officer_token": token_for(officer)}


def cached_card(app, staff_id: int) -> bytes | None:
    """Read without an app context of its own (whose teardown would end the caller's unit of work)."""
    key = app.config["SU"].redis.key_prefix + f"principal:{principals.CARD_VERSION}:{staff_id}"
    return app.extensions["redis"].hget(key, "value")


def warm(client, app, people) -> None:
    assert client.get(ME, headers=bearer(people["member_token"])).status_code == 200
    assert cached_card(app, people["member"]) is not None, "the first request stores the card"


def officer_call(client, people, method: str, path: str, json=None) -> None:
    answer = client.open(path, method=method, json=json, headers=bearer(people["officer_token"]))
    assert answer.status_code in (200, 201, 204), answer.get_json()


def in_unit_of_work(app, work) -> None:
    with app.app_context(), unit_of_work():
        work()


def a_term(app, people) -> int:
    with app.app_context(), unit_of_work():
        officer = db.session.get(Staff, people["officer"])
        return congress.create_term(officer, congress.TermFields(name="第二届", starts_on="2024-03-01",
                                                                 ends_on="2029-02-28")).id


def sub_union_id(app, name: str) -> int:
    with app.app_context():
        return roster.ensure_sub_union(name)[0].id


def department_id(app, name: str) -> int:
    with app.app_context():
        return db.session.scalar(select(Department.id).where(Department.name == name))


def cli(subprocess_env, *args: str) -> None:
    done = subprocess.run([SMART_UNION, *args], env=subprocess_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


ROSTER_ROW = ["M0001", "刘老师", "女", "1980-01-02", "计算机学院", "信息学院分工会", "", "在职"]
OTHER_ROW = ["U0001", "陈干事", "女", "1980-01-02", "校工会", "", "", "在职"]


# Each change that must end the member's session, made the way an officer or the engineer makes it.
ENDING_CHANGES = {
    "api: a role granted": lambda t: officer_call(
        t.client, t.people, "POST", "/api/v1/officer/staff/M0001/roles/grant",
        {"role": "sub_union_officer", "sub_union_id": sub_union_id(t.app, "信息学院分工会")}),
    "api: unbound": lambda t: officer_call(t.client, t.people, "POST", "/api/v1/officer/staff/M0001/unbind"),
    "api: 离职": lambda t: officer_call(t.client, t.people, "PATCH", "/api/v1/officer/staff/M0001",
                                        {"status": "离职"}),
    "api: a date of death": lambda t: officer_call(t.client, t.people, "PATCH", "/api/v1/officer/staff/M0001",
                                                   {"died_on": "2026-11-01"}),
    "cli: grant": lambda t: cli(t.env, "staff", "grant", "M0001", "admin"),
    "cli: unbind": lambda t: cli(t.env, "staff", "unbind", "M0001"),
    "import: 离职 in the file": lambda t: t.import_rows([ROSTER_ROW[:-1] + ["离职"], OTHER_ROW]),
    "import: --mark-missing-left": lambda t: t.import_rows([OTHER_ROW], mark_missing_left=True),
    "api: representative of a term": lambda t: officer_call(
        t.client, t.people, "POST", f"/api/v1/officer/proposals/terms/{a_term(t.app, t.people)}/representatives",
        {"employee_nos": ["M0001"]}),
    "api: proposal committee": lambda t: officer_call(
        t.client, t.people, "PUT", "/api/v1/officer/proposals/committee/M0001"),
    "api: department liaison": lambda t: officer_call(
        t.client, t.people, "PUT",
        f"/api/v1/officer/proposals/departments/{department_id(t.app, '计算机学院')}/liaisons/M0001"),
}


class Setting:
    def __init__(self, app, client, people, env, tmp_path: Path):
        self.app, self.client, self.people, self.env, self.tmp_path = app, client, people, env, tmp_path

    def import_rows(self, rows: list[list], **options) -> None:
        path = write_csv(self.tmp_path / "roster.csv", rows)
        with self.app.app_context(), unit_of_work():
            report = import_staff_file(path, actor_label="test", **options)
            assert report.ok, report.lines()


@pytest.mark.parametrize("change", ENDING_CHANGES, ids=list(ENDING_CHANGES))
def test_a_cached_session_ends_with_the_next_request_after_the_change(app, client, people, subprocess_env,
                                                                     tmp_path, change):
    warm(client, app, people)
    ENDING_CHANGES[change](Setting(app, client, people, subprocess_env, tmp_path))
    refused = client.get(ME, headers=bearer(people["member_token"]))
    assert refused.status_code == 401
    assert error_code(refused) in ("token_revoked", "staff_left")


def test_revoking_a_role_by_cli_ends_the_officers_cached_session(app, client, people, subprocess_env):
    officer = bearer(people["officer_token"])
    assert client.get("/api/v1/officer/staff", headers=officer).status_code == 200
    cli(subprocess_env, "staff", "revoke", "U0001", "union_officer")
    assert error_code(client.get("/api/v1/officer/staff", headers=officer)) == "token_revoked"


def test_revoking_a_role_by_api_ends_the_sub_union_officers_cached_session(app, client, people, grant, token_for):
    grant(people["member"], "sub_union_officer", "信息学院分工会")
    member = bearer(token_for(people["member"]))
    assert client.get("/api/v1/officer/staff", headers=member).status_code == 200
    officer_call(client, people, "POST", "/api/v1/officer/staff/M0001/roles/revoke",
                 {"role": "sub_union_officer", "sub_union_id": sub_union_id(app, "信息学院分工会")})
    assert error_code(client.get("/api/v1/officer/staff", headers=member)) == "token_revoked"


def test_a_profile_change_shows_at_once_though_the_session_goes_on(app, client, people):
    warm(client, app, people)
    officer_call(client, people, "PATCH", "/api/v1/officer/staff/M0001", {"name": "刘晓老师", "sub_union": "机关分工会"})
    me = client.get(ME, headers=bearer(people["member_token"])).get_json()
    assert (me["name"], me["sub_union"]) == ("刘晓老师", "机关分工会")
    assert client.patch(ME, json={"birthday_calendar": "lunar"},
                        headers=bearer(people["member_token"])).status_code == 200
    assert client.get(ME, headers=bearer(people["member_token"])).get_json()["birthday_calendar"] == "lunar"


def test_a_bulk_update_of_staff_rows_marks_every_card(app, client, people):
    """A department renamed is one Core UPDATE of the staff rows: no card names the old department after it."""
    warm(client, app, people)
    officer_call(client, people, "POST",
                 f"/api/v1/officer/proposals/departments/{department_id(app, '计算机学院')}/rename",
                 {"name": "计算机与人工智能学院"})
    assert client.get(ME, headers=bearer(people["member_token"])).get_json()["department"] == "计算机与人工智能学院"


def test_a_renamed_sub_union_shows_in_every_card(app, client, people):
    warm(client, app, people)

    def rename():
        roster.ensure_sub_union("信息学院分工会")[0].name = "信息与智能学院分工会"
    in_unit_of_work(app, rename)
    assert client.get(ME, headers=bearer(people["member_token"])).get_json()["sub_union"] == "信息与智能学院分工会"


def test_a_request_that_read_the_old_row_cannot_store_it_after_the_change(app, people):
    """The race the marks exist for: a request reads the staff row, the revocation commits, and only then does the
    request try to store its card. The card must not land, or the old token would pass again."""
    staff_id = people["member"]
    with app.app_context():
        _, seen = principals.CARDS.cached(staff_id)
        stale = principals._load(staff_id)                   # the old row, auth_version before the change
        db.remove_session()
    in_unit_of_work(app, lambda: roster.set_status(db.session.get(Staff, staff_id), StaffStatus.LEFT,
                                                   actor_label="test"))
    with app.app_context():
        principals.CARDS.store(staff_id, stale, seen)
        assert principals.CARDS.cached(staff_id)[0] is None
        assert principals.staff_card(staff_id).status is StaffStatus.LEFT


@pytest.mark.row_locks       # SQLite's writer would hold the other request's transaction until it ends
def test_no_card_is_stored_while_a_change_is_on_its_way(app, client, live_server, people):
    """Between the flush and the commit the old row is still what others read: nobody may cache it then."""
    staff_id = people["member"]
    with app.app_context(), unit_of_work():
        staff = db.session.get(Staff, staff_id)
        roster.set_status(staff, StaffStatus.LEFT, actor_label="test")
        db.session.flush()
        meanwhile = requests.get(live_server.url + ME, headers=bearer(people["member_token"]), timeout=30)
        assert meanwhile.status_code == 200                                    # not committed yet
        assert cached_card(app, staff_id) is None
    assert error_code(client.get(ME, headers=bearer(people["member_token"]))) == "token_revoked"


def test_a_change_rolled_back_lets_the_card_be_cached_again(app, client, people):
    staff_id = people["member"]
    with pytest.raises(RuntimeError), app.app_context(), unit_of_work():
        roster.set_status(db.session.get(Staff, staff_id), StaffStatus.LEFT, actor_label="test")
        db.session.flush()
        raise RuntimeError("refused later in the same request")
    warm(client, app, people)


def test_one_writers_release_does_not_lift_another_writers_mark(app, people):
    """Two changes to one person overlap (the second waited on the first's row lock): the first's release must not
    let a card read before the second commits be stored."""
    staff_id = people["member"]
    with app.app_context():
        principals.CARDS.mark_pending("first", {staff_id})
        principals.CARDS.mark_pending("second", {staff_id})
        principals.CARDS.release("first", {staff_id})
        _, seen = principals.CARDS.cached(staff_id)
        principals.CARDS.store(staff_id, principals._load(staff_id), seen)
        assert principals.CARDS.cached(staff_id)[0] is None, "stored while the second change was still on its way"
        principals.CARDS.release("second", {staff_id})
        db.remove_session()          # a new request (on MariaDB this transaction's snapshot predates the release)
        assert principals.staff_card(staff_id) is not None
        assert principals.CARDS.cached(staff_id)[0] is not None, "cached again once every writer has released"


def test_a_card_of_another_version_is_read_again_from_the_database(app, client, people):
    warm(client, app, people)
    key = app.config["SU"].redis.key_prefix + f"principal:{principals.CARD_VERSION}:{people['member']}"
    app.extensions["redis"].hset(key, "value", b"not a card of this version")
    assert client.get(ME, headers=bearer(people["member_token"])).get_json()["employee_no"] == "M0001"


def test_a_card_holds_what_the_row_holds_roles_and_sub_union_name_included(app, make_staff, grant):
    officer = make_staff("C0001", name="王干事", phone="13800001111", sub_union="信息学院分工会")
    grant(officer, "sub_union_officer", "信息学院分工会")
    grant(officer, "union_officer")
    plain = make_staff("C0002", name="赵老师", sub_union=None)
    with app.app_context(), unit_of_work():
        for staff_id in (officer, plain):
            row = db.session.get(Staff, staff_id)
            card = principals.staff_card(staff_id)
            for column in ("id", "employee_no", "name", "gender", "birthday", "department", "department_id",
                           "sub_union_id", "phone", "status", "member_since", "died_on", "auth_version"):
                assert getattr(card, column) == getattr(row, column), column
            assert (card.sub_union.name if card.sub_union else None) == (row.sub_union.name if row.sub_union else None)
            assert sorted((r.role.value, r.sub_union_id) for r in card.roles) == \
                sorted((r.role.value, r.sub_union_id) for r in row.roles)
        assert len(principals.staff_card(officer).roles) == 2 and principals.staff_card(plain).roles == ()
        assert principals.staff_card(10**9) is None


# --- the official account reads the same cards ---------------------------------------------------------------------

def say(client, openid: str, text: str) -> str:
    wechat = WeChatPusher(client)
    return wechat.push(wechat.text(openid, text)).content or ""


def test_a_role_revoked_by_cli_ends_an_officers_official_account_commands_at_the_next_push(app, client, people,
                                                                                            subprocess_env):
    openid = linked_follower(app, people["officer"])
    assert "发布公告" in say(client, openid, "帮助")
    assert "发布公告" in say(client, openid, "帮助")       # (MariaDB: the first read the link, fixing its snapshot)
    assert cached_card(app, people["officer"]) is not None, "the push stored the officer's card"
    cli(subprocess_env, "staff", "revoke", "U0001", "union_officer")
    assert "发布公告" not in say(client, openid, "帮助")
    assert "仅限工会干部" in say(client, openid, "发布公告")


def left_by_a_bulk_update(t) -> None:
    """离职 written by a Core UPDATE, which leaves the follower linked: only the card says the person left."""
    in_unit_of_work(t.app, lambda: db.session.execute(
        update(Staff).where(Staff.id == t.people["member"]).values(status=StaffStatus.LEFT)))


@pytest.mark.parametrize("change", ["api: 离职", "api: unbound", "core: 离职"])
def test_a_follower_whose_staff_member_left_or_was_unbound_speaks_for_no_one_at_the_next_push(app, client, people,
                                                                                              change):
    openid = linked_follower(app, people["member"])
    assert "刘老师" in say(client, openid, "我的")
    assert "刘老师" in say(client, openid, "我的")        # (MariaDB: the first read the link, fixing its snapshot)
    assert cached_card(app, people["member"]) is not None, "the push stored the member's card"
    (ENDING_CHANGES.get(change) or left_by_a_bulk_update)(Setting(app, client, people, {}, Path()))
    answer = say(client, openid, "我的")
    assert "还没有绑定" in answer and "刘老师" not in answer
