"""The authorization matrix of the proposal routes: every route × the callers the issue names — a representative
who wrote the proposal (author), one who seconded it (seconder), a member of the proposal committee, a liaison of
教务处 (liaison), a member who is none of these (staff) and a union officer — plus anonymous and unbound callers.

Each row says which callers succeed and with what status; every other bound caller is refused with the row's
refusal (403, or 404 where the record is not theirs to see). Where a caller succeeds on a record, a missing one
answers them 404. tests/test_authorization_matrix.py counts these rows as the proposal routes' rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable

import io

import pytest

from app import clock
from app.extensions import db
from app.services import auth, departments, roster
from app.services.proposals import congress, files, filing, handling
from app.unit_of_work import unit_of_work
from models import AssignmentStatus, ProposalStatus, Role, Staff, WeChatApp, WeChatIdentity
from tests.helpers import bearer

MISSING = 2**31 - 1
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
CALLERS = ("anonymous", "wechat", "author", "seconder", "committee", "liaison", "staff", "officer")
BOUND = CALLERS[2:]
P = "/api/v1/proposals"
O = "/api/v1/officer/proposals"
BODY = {"title": "关于增设教职工子女暑期托管班的建议", "reasons": "暑期双职工子女无人照看", "measures": "开设托管班",
        "category": "民生福利"}


@dataclass
class World:
    ids: dict[str, int]
    tokens: dict[str, str]
    term_id: int
    session_id: int
    departments: dict[str, int]

    def staff(self, who: str) -> Staff:
        return db.session.get(Staff, self.ids[who])


@pytest.fixture
def world(app) -> World:
    with app.app_context(), unit_of_work():
        people = {"author": ("R0001", "计算机学院"), "seconder": ("R0002", "外国语学院"), "committee": ("C0001", "校工会"),
                  "liaison": ("L0001", "教务处"), "houqin": ("L0002", "后勤处"), "staff": ("S0001", "计算机学院"),
                  "officer": ("U0001", "校工会")}
        staff = {who: roster.upsert_staff(no, roster.StaffFields(name=f"{who}同志", department=dept),
                                          actor_label="matrix")[0] for who, (no, dept) in people.items()}
        roster.grant_role(staff["officer"], Role.UNION_OFFICER, actor_label="matrix")
        officer = staff["officer"]
        term = congress.create_term(officer, congress.TermFields(name="第二届", starts_on="2024-03-01",
                                                                 ends_on="2099-12-31"))
        now = clock.now()
        meeting_on = (now + timedelta(days=40)).date()
        session = congress.create_session(officer, congress.SessionFields(
            term_id=term.id, year=meeting_on.year, name="第二届教代会第四次会议", meeting_on=meeting_on,
            opens_at=now - timedelta(days=1), closes_at=now + timedelta(days=20)))
        congress.add_representatives(officer, term.id, congress.PeopleFields(employee_nos=["R0001", "R0002"]))
        congress.set_committee_member(officer, "C0001", True)
        found = {name: departments.resolve(name)[1] for name in ("教务处", "后勤处")}
        congress.set_liaison(officer, found["教务处"], "L0001", True)
        congress.set_liaison(officer, found["后勤处"], "L0002", True)
        tokens = {}
        for who, person in staff.items():
            identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"openid-{who}", staff_id=person.id)
            db.session.add(identity)
            db.session.flush()
            tokens[who] = auth.issue_token(identity, person)
        unbound = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid="openid-unbound")
        db.session.add(unbound)
        db.session.flush()
        tokens["wechat"] = auth.issue_token(unbound, None)
        return World({who: s.id for who, s in staff.items()}, tokens, term.id, session.id, found)


def build(app, w: World, make: Callable[[World], Any]) -> Any:
    with app.app_context(), unit_of_work():
        return make(w)


def a_proposal(w: World, status: ProposalStatus = ProposalStatus.SUBMITTED, seconded: bool = True,
               lead: str = "教务处", co: str | None = None) -> int:
    """By the author, seconded by the seconder, then put in `status` (with a number once accepted, assignments
    while handled, and the lead's answer once answered)."""
    proposal = filing.file(w.staff("author"), filing.ProposalFields(session_id=w.session_id, **BODY))
    if seconded:
        filing.second(w.staff("seconder"), proposal.id)
    proposal.status = status
    if status in (ProposalStatus.ACCEPTED, ProposalStatus.HANDLING, ProposalStatus.ANSWERED):
        proposal.number = f"2027-{proposal.id:03d}"
    if status in (ProposalStatus.HANDLING, ProposalStatus.ANSWERED):
        proposal.round = 1
        handling.start_handling(proposal, w.staff("committee"), w.departments[lead],
                                [w.departments[co]] if co else [], clock.today() + timedelta(days=90))
    if status is ProposalStatus.ANSWERED:
        for part in handling.current_assignments(proposal.id):
            part.status, part.text, part.done_at = AssignmentStatus.DONE, "已办", clock.now()
        proposal.answered_at = clock.now()
    db.session.flush()
    return proposal.id


def assignment_of(proposal_id: int, department_id: int) -> int:
    return next(a.id for a in handling.current_assignments(proposal_id) if a.department_id == department_id)


@dataclass
class Req:
    path: str
    json: Any = None
    upload: bool = False         # a PNG as multipart field `file`


@dataclass
class Row:
    ok: dict[str, int]                                   # who succeeds, with which status
    seen: Callable[[World], Req]                         # built inside a unit of work
    refusal: dict[str, int] = field(default_factory=dict)  # the others' refusal where it is not 403
    missing: Callable[[World], Req] | None = None        # the same request on no record: 404 for those in `ok`


def req(path: str, json: Any = None) -> Callable[[World], Req]:
    return lambda w: Req(path, json)


def on(state: ProposalStatus, path: str, json: Any = None, seconded: bool = True) -> Callable[[World], Req]:
    return lambda w: Req(path.format(a_proposal(w, state, seconded)), json)


def both(path: str, json: Any = None) -> Callable[[World], Req]:
    """Merging: one under review, into an accepted one."""
    def make(w):
        source = a_proposal(w, ProposalStatus.UNDER_REVIEW)
        return Req(path.format(source), {"into_id": a_proposal(w, ProposalStatus.ACCEPTED)})
    return make


def part(path: str, json: Any, lead: bool) -> Callable[[World], Req]:
    """A department's part: 教务处 as the lead (or as the co-handler of 后勤处's lead)."""
    def make(w):
        pid = a_proposal(w, ProposalStatus.HANDLING, lead="教务处" if lead else "后勤处",
                         co=None if lead else "教务处")
        return Req(path.format(pid, assignment_of(pid, w.departments["教务处"])), json)
    return make


def missing(path: str, json: Any = None, upload: bool = False) -> Callable[[World], Req]:
    return lambda w: Req(path.format(MISSING, MISSING), json, upload)


def upload_to(path: str, state: ProposalStatus, **kw) -> Callable[[World], Req]:
    def make(w):
        if "/assignments/" in path:
            return Req(part(path, None, lead=True)(w).path, upload=True)
        return Req(path.format(a_proposal(w, state, **kw)), upload=True)
    return make


def a_file(w: World) -> Req:
    """The author's file on a proposal the seconder backs (attached before the second)."""
    pid = a_proposal(w, SUBMITTED, seconded=False)
    row = files.attach_to_proposal(w.staff("author"), pid, "照片.png", PNG)
    filing.second(w.staff("seconder"), pid)
    return Req(f"{P}/{pid}/attachments/{row.id}")


def terms_path(path: str, json: Any = None) -> Callable[[World], Req]:
    return lambda w: Req(path.format(term=w.term_id, session=w.session_id, dept=w.departments["后勤处"]), json)


EVERYONE = {who: 200 for who in BOUND}
COMMITTEE = {"committee": 200}
MANAGERS = {"committee": 200, "officer": 200}
HIDDEN = {"liaison": 404, "staff": 404, "officer": 404}       # a proposal still collecting seconds
SUBMITTED, UNDER_REVIEW, ACCEPTED, ANSWERED = (ProposalStatus.SUBMITTED, ProposalStatus.UNDER_REVIEW,
                                               ProposalStatus.ACCEPTED, ProposalStatus.ANSWERED)
REASON = {"reason": "不属于提案范围"}
RETITLED = {"title": "改过的案由"}
TERM = {"name": "第三届", "starts_on": "2029-03-01", "ends_on": "2034-02-28"}

ROWS: dict[tuple[str, str], Row] = {
    # members and representatives
    ("GET", f"{P}/sessions"): Row(EVERYONE, req(f"{P}/sessions")),
    ("GET", P): Row(EVERYONE, req(P)),
    ("GET", f"{P}/<int:proposal_id>"): Row({"author": 200, "seconder": 200, "committee": 200},
                                           on(SUBMITTED, P + "/{}"), HIDDEN, missing(P + "/{}")),
    ("POST", P): Row({"author": 201, "seconder": 201}, lambda w: Req(P, {"session_id": w.session_id, **BODY})),
    ("PATCH", f"{P}/<int:proposal_id>"): Row({"author": 200}, on(SUBMITTED, P + "/{}", RETITLED, seconded=False),
                                             HIDDEN, missing(P + "/{}", RETITLED)),
    ("POST", f"{P}/<int:proposal_id>/withdraw"): Row({"author": 200}, on(SUBMITTED, P + "/{}/withdraw",
                                                                          seconded=False), HIDDEN,
                                                     missing(P + "/{}/withdraw")),
    ("POST", f"{P}/<int:proposal_id>/seconds"): Row({"seconder": 201}, on(SUBMITTED, P + "/{}/seconds",
                                                                          seconded=False), HIDDEN,
                                                    missing(P + "/{}/seconds")),
    ("DELETE", f"{P}/<int:proposal_id>/seconds"): Row({"seconder": 200}, on(SUBMITTED, P + "/{}/seconds"),
                                                      {**HIDDEN, "author": 409, "committee": 409},
                                                      missing(P + "/{}/seconds")),
    ("POST", f"{P}/<int:proposal_id>/attachments"): Row({"author": 201}, upload_to(P + "/{}/attachments", SUBMITTED,
                                                                                 seconded=False), HIDDEN,
                                                        missing(P + "/{}/attachments", upload=True)),
    ("GET", f"{P}/<int:proposal_id>/attachments/<int:file_id>"): Row(
        {"author": 200, "seconder": 200, "committee": 200}, a_file, HIDDEN, missing(P + "/{}/attachments/{}")),
    ("POST", f"{O}/<int:proposal_id>/assignments/<int:assignment_id>/attachments"): Row(
        {"liaison": 201}, upload_to(O + "/{}/assignments/{}/attachments", ProposalStatus.HANDLING),
        missing=missing(O + "/{}/assignments/{}/attachments", upload=True)),
    ("POST", f"{P}/<int:proposal_id>/rating"): Row({"author": 200}, on(ANSWERED, P + "/{}/rating",
                                                                       {"satisfaction": "满意"}),
                                                   missing=missing(P + "/{}/rating", {"satisfaction": "满意"})),
    ("POST", f"{P}/<int:proposal_id>/comments"): Row({"author": 201}, on(ANSWERED, P + "/{}/comments",
                                                                         {"text": "谢谢"}),
                                                     missing=missing(P + "/{}/comments", {"text": "谢谢"})),
    # the committee
    ("GET", O): Row(COMMITTEE, req(O)),
    ("POST", f"{O}/<int:proposal_id>/accept"): Row(COMMITTEE, on(UNDER_REVIEW, O + "/{}/accept"),
                                                   missing=missing(O + "/{}/accept")),
    ("POST", f"{O}/<int:proposal_id>/merge"): Row(COMMITTEE, both(O + "/{}/merge"),
                                                  missing=missing(O + "/{}/merge", {"into_id": 1})),
    ("POST", f"{O}/<int:proposal_id>/opinion"): Row(COMMITTEE, lambda w: Req(
        O + f"/{a_proposal(w, UNDER_REVIEW)}/opinion", {"department_id": w.departments["后勤处"]}),
        missing=lambda w: Req(O + f"/{MISSING}/opinion", {"department_id": w.departments["后勤处"]})),
    ("POST", f"{O}/<int:proposal_id>/reject"): Row(COMMITTEE, on(UNDER_REVIEW, O + "/{}/reject", REASON),
                                                   missing=missing(O + "/{}/reject", REASON)),
    ("POST", f"{O}/<int:proposal_id>/withdraw"): Row(COMMITTEE, on(SUBMITTED, O + "/{}/withdraw", REASON),
                                                     missing=missing(O + "/{}/withdraw", REASON)),
    ("POST", f"{O}/<int:proposal_id>/assign"): Row(COMMITTEE, lambda w: Req(
        O + f"/{a_proposal(w, ACCEPTED)}/assign", {"lead_department_id": w.departments["教务处"]}),
        missing=lambda w: Req(O + f"/{MISSING}/assign", {"lead_department_id": w.departments["教务处"]})),
    ("GET", f"{O}/overdue"): Row(COMMITTEE, req(f"{O}/overdue")),
    # the departments' liaisons
    ("GET", f"{O}/assigned"): Row({"liaison": 200}, req(f"{O}/assigned")),
    ("POST", f"{O}/<int:proposal_id>/assignments/<int:assignment_id>/return"): Row(
        {"liaison": 200}, part(O + "/{}/assignments/{}/return", REASON, lead=True),
        missing=missing(O + "/{}/assignments/{}/return", REASON)),
    ("POST", f"{O}/<int:proposal_id>/assignments/<int:assignment_id>/opinion"): Row(
        {"liaison": 200}, part(O + "/{}/assignments/{}/opinion", {"text": "同意"}, lead=False),
        missing=missing(O + "/{}/assignments/{}/opinion", {"text": "同意"})),
    ("POST", f"{O}/<int:proposal_id>/assignments/<int:assignment_id>/answer"): Row(
        {"liaison": 200}, part(O + "/{}/assignments/{}/answer", {"text": "已解决", "grade": "A"}, lead=True),
        missing=missing(O + "/{}/assignments/{}/answer", {"text": "已解决", "grade": "A"})),
    # the congress's frame
    ("GET", f"{O}/terms"): Row(MANAGERS, req(f"{O}/terms")),
    ("POST", f"{O}/terms"): Row({"committee": 201, "officer": 201}, req(f"{O}/terms", TERM)),
    ("POST", f"{O}/sessions"): Row({"committee": 201, "officer": 201}, lambda w: Req(f"{O}/sessions", {
        "term_id": w.term_id, "year": 2099, "name": "第二届教代会第五次会议", "meeting_on": "2099-03-20"}),
        missing=lambda w: Req(f"{O}/sessions", {"term_id": MISSING, "year": 2028, "name": "x",
                                                "meeting_on": "2028-03-20"})),
    ("PATCH", f"{O}/sessions/<int:session_id>"): Row(MANAGERS, terms_path(O + "/sessions/{session}", {"name": "第四次会议"}),
                                                     missing=missing(O + "/sessions/{}", {"name": "第四次会议"})),
    ("GET", f"{O}/terms/<int:term_id>/representatives"): Row(MANAGERS, terms_path(O + "/terms/{term}/representatives"),
                                                             missing=missing(O + "/terms/{}/representatives")),
    ("POST", f"{O}/terms/<int:term_id>/representatives"): Row(
        MANAGERS, terms_path(O + "/terms/{term}/representatives", {"employee_nos": ["S0001"]}),
        missing=missing(O + "/terms/{}/representatives", {"employee_nos": ["S0001"]})),
    ("DELETE", f"{O}/terms/<int:term_id>/representatives/<employee_no>"): Row(
        {"committee": 204, "officer": 204}, terms_path(O + "/terms/{term}/representatives/R0002"),
        missing=missing(O + "/terms/{}/representatives/R0002")),
    ("GET", f"{O}/committee"): Row(MANAGERS, req(f"{O}/committee")),
    ("PUT", f"{O}/committee/<employee_no>"): Row({"officer": 204}, req(f"{O}/committee/S0001"),
                                                 missing=req(f"{O}/committee/NOPE99")),
    ("DELETE", f"{O}/committee/<employee_no>"): Row({"officer": 204}, req(f"{O}/committee/C0001"),
                                                    missing=req(f"{O}/committee/NOPE99")),
    ("GET", f"{O}/departments"): Row(MANAGERS, req(f"{O}/departments")),
    ("POST", f"{O}/departments/<int:department_id>/rename"): Row(
        MANAGERS, terms_path(O + "/departments/{dept}/rename", {"name": "后勤保障处"}),
        missing=missing(O + "/departments/{}/rename", {"name": "后勤保障处"})),
    ("PUT", f"{O}/departments/<int:department_id>/liaisons/<employee_no>"): Row(
        {"officer": 204}, terms_path(O + "/departments/{dept}/liaisons/S0001"),
        missing=missing(O + "/departments/{}/liaisons/S0001")),
    ("DELETE", f"{O}/departments/<int:department_id>/liaisons/<employee_no>"): Row(
        {"officer": 204}, terms_path(O + "/departments/{dept}/liaisons/L0002"),
        missing=missing(O + "/departments/{}/liaisons/L0002")),
    # the session's documents
    **{("GET", f"{O}/sessions/<int:session_id>/{name}"): Row(
        MANAGERS, terms_path(O + "/sessions/{session}/" + name), missing=missing(O + "/sessions/{}/" + name))
       for name in ("compilation.xlsx", "report.xlsx", "compilation.html", "report.html")},
}
PROPOSAL_ROUTES = set(ROWS)
MATRIX = [(method, rule, who) for (method, rule) in ROWS for who in CALLERS]


def _send(client, method: str, request: Req, token: str | None):
    headers = bearer(token) if token else {}
    if request.upload:
        return client.open(request.path, method=method, headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(PNG), "照片.png")})
    if request.json is None:
        return client.open(request.path, method=method, headers=headers)
    return client.open(request.path, method=method, json=request.json, headers=headers)


@pytest.mark.parametrize(("method", "rule", "who"), MATRIX, ids=[f"{m} {r} as {w}" for m, r, w in MATRIX])
def test_proposal_matrix(app, client, world, method, rule, who):
    row = ROWS[(method, rule)]
    response = _send(client, method, build(app, world, row.seen), world.tokens.get(who))
    text = response.get_data().decode(errors="replace")
    if who in ("anonymous", "wechat"):
        assert response.status_code == 401, text
        return
    if who not in row.ok:
        assert response.status_code == row.refusal.get(who, 403), text
        return
    assert response.status_code == row.ok[who], text
    if row.missing is not None:
        response = _send(client, method, build(app, world, row.missing), world.tokens[who])
        assert response.status_code == 404, response.get_data(as_text=True)
        assert response.json["error"]["code"].endswith("not_found")
