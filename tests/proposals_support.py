"""The staff congress every proposal test starts from: 第二届 with its 2027 session, whose window is open from
02-20 to 03-05 (the meeting on 03-20), and the people who act on proposals."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
import requests

from app.extensions import db
from app.services.proposals import congress
from app.unit_of_work import unit_of_work
from models import Department, Staff
from sqlalchemy import select
from tests.helpers import bearer

BEIJING = ZoneInfo("Asia/Shanghai")
IN_THE_WINDOW = datetime(2027, 3, 1, 10, 0, tzinfo=BEIJING)
AFTER_THE_WINDOW = datetime(2027, 3, 5, 19, 0, tzinfo=BEIJING)
BODY = {"title": "关于增设教职工子女暑期托管班的建议", "reasons": "暑期双职工子女无人照看",
        "measures": "利用附属小学场地开设暑期托管班", "category": "民生福利"}
REPRESENTATIVES = ("author", "seconder", "second2", "rep3")


@dataclass
class Congress:
    ids: dict[str, int]
    token_for: Callable[[int], str]
    term_id: int
    session_id: int
    departments: dict[str, int]

    def __getitem__(self, who: str) -> dict[str, str]:
        """A fresh login at the (travelled) time of the call."""
        return bearer(self.token_for(self.ids[who]))


@pytest.fixture
def cong(app, make_staff, grant, token_for) -> Congress:
    """Representatives 提案人 (author), 附议人 (seconder, second2) and rep3; the committee (committee, committee2);
    the liaisons of 教务处 (jiaowu) and 后勤处 (houqin); a member who is none of these (staff); a union officer."""
    people = {
        "author": ("R0001", "王代表", "计算机学院"), "seconder": ("R0002", "李代表", "外国语学院"),
        "second2": ("R0003", "赵代表", "外国语学院"), "rep3": ("R0004", "钱代表", "数学学院"),
        "committee": ("C0001", "孙委员", "校工会"), "committee2": ("C0002", "周委员", "校工会"),
        "jiaowu": ("L0001", "吴联络", "教务处"), "houqin": ("L0002", "郑联络", "后勤处"),
        "staff": ("S0001", "冯会员", "计算机学院"), "officer": ("U0001", "陈干事", "校工会"),
    }
    ids = {who: make_staff(no, name, department=dept) for who, (no, name, dept) in people.items()}
    grant(ids["officer"], "union_officer")
    with app.app_context(), unit_of_work():
        officer = db.session.get(Staff, ids["officer"])
        term = congress.create_term(officer, congress.TermFields(name="第二届", starts_on="2024-03-01",
                                                                 ends_on="2029-02-28"))
        session = congress.create_session(officer, congress.SessionFields(
            term_id=term.id, year=2027, name="第二届教代会第四次会议", meeting_on="2027-03-20",
            opens_at="2027-02-20T08:00:00+08:00", closes_at="2027-03-05T18:00:00+08:00"))
        congress.add_representatives(officer, term.id, congress.PeopleFields(
            employee_nos=[people[who][0] for who in REPRESENTATIVES]))
        for who in ("committee", "committee2"):
            congress.set_committee_member(officer, people[who][0], True)
        departments = dict(db.session.execute(select(Department.name, Department.id)).all())
        congress.set_liaison(officer, departments["教务处"], "L0001", True)
        congress.set_liaison(officer, departments["后勤处"], "L0002", True)
        term_id, session_id = term.id, session.id
    return Congress(ids, token_for, term_id, session_id, departments)


class Api:
    """The JSON API over real HTTP, as the mini-program calls it."""

    def __init__(self, live_server, cong: Congress):
        self.url, self.cong = live_server.url + "/api/v1", cong

    def __call__(self, method: str, path: str, who: str | dict, json=None, expect: int | None = None):
        headers = self.cong[who] if isinstance(who, str) else who
        response = requests.request(method, self.url + path, json=json, headers=headers, timeout=30)
        if expect is not None:
            assert response.status_code == expect, (method, path, who, response.text)
        return response

    def file(self, who: str = "author", **changes) -> dict:
        return self("POST", "/proposals", who, {"session_id": self.cong.session_id, **BODY, **changes}, 201).json()

    def at_once(self, calls: list[tuple[str, str, str, dict | None]]) -> list[requests.Response]:
        """Sends each (method, path, who, json) from its own thread, all released together."""
        barrier = threading.Barrier(len(calls))
        answers: list = [None] * len(calls)

        def send(i, call):
            method, path, headers, json = call
            barrier.wait(timeout=30)
            answers[i] = self(method, path, headers, json)
        calls = [(method, path, self.cong[who], json) for method, path, who, json in calls]   # logged in first
        threads = [threading.Thread(target=send, args=(i, c)) for i, c in enumerate(calls)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        return answers
