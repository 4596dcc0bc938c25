"""Who reads a proposal, state by state and caller by caller (the detail, and the list agreeing with it); and a
department renamed without losing anything assigned to it."""

from __future__ import annotations

import pytest
import time_machine
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.services import roster
from app.services.proposals import congress, filing, handling, review, satisfaction
from app.unit_of_work import unit_of_work
from models import Assignment, Staff
from tests.proposals_support import AFTER_THE_WINDOW, BODY, IN_THE_WINDOW, Api, cong  # noqa: F401 (fixture)

CALLERS = ("author", "seconder", "rep3", "committee", "houqin", "jiaowu", "staff", "officer")
EVERYONE = set(CALLERS)
BACKERS = {"author", "seconder", "committee"}
SEES = {
    "submitted": BACKERS | {"rep3"},            # the term's representatives, to second it
    "withdrawn": {"author", "committee"},
    "below_minimum": BACKERS,
    "under_review": BACKERS,
    "merged": BACKERS,
    "opinion": BACKERS | {"houqin"},            # the department it was forwarded to
    "rejected": BACKERS,
    "accepted": EVERYONE, "handling": EVERYONE, "answered": EVERYONE, "closed": EVERYONE,
}


@pytest.fixture
def one_of_each(app, cong) -> dict[str, int]:
    """A proposal in each state, by 王代表 and (except the withdrawn one) seconded by 李代表."""
    def person(who):
        return db.session.get(Staff, cong.ids[who])
    ids: dict[str, int] = {}
    with time_machine.travel(IN_THE_WINDOW, tick=False), app.app_context(), unit_of_work():
        for state in set(SEES) - {"submitted"}:
            proposal = filing.file(person("author"), filing.ProposalFields(
                session_id=cong.session_id, **{**BODY, "title": f"提案（{state}）"}))
            ids[state] = proposal.id
            if state != "withdrawn":
                filing.second(person("seconder"), proposal.id)
            if state not in ("withdrawn", "below_minimum"):
                filing.second(person("second2"), proposal.id)
        filing.withdraw(person("author"), ids["withdrawn"])
    with time_machine.travel(AFTER_THE_WINDOW, tick=False), app.app_context(), unit_of_work():
        committee = person("committee")
        review.close_windows(clock.now())
        for state in ("accepted", "handling", "answered", "closed"):
            review.accept(committee, ids[state])
        review.merge(committee, ids["merged"], review.MergeFields(into_id=ids["accepted"]))
        review.forward_as_opinion(committee, ids["opinion"], review.OpinionFields(
            department_id=cong.departments["后勤处"]))
        review.reject(committee, ids["rejected"], review.ReasonFields(reason="不属于提案范围"))
        for state in ("handling", "answered", "closed"):
            handling.assign(committee, ids[state], handling.AssignFields(
                lead_department_id=cong.departments["教务处"]))
        for state in ("answered", "closed"):
            lead = handling.current_assignments(ids[state])[0]
            handling.answer(person("jiaowu"), ids[state], lead.id, handling.AnswerFields(text="已办", grade="A"))
        satisfaction.rate(person("author"), ids["closed"], satisfaction.RateFields(satisfaction="满意"))
        # the first window is closed: a proposal still collecting seconds belongs to a session still open
        later = congress.create_session(person("officer"), congress.SessionFields(
            term_id=cong.term_id, year=2028, name="第二届教代会第五次会议", meeting_on="2028-03-20",
            closes_at="2027-04-01T00:00:00+08:00"))
        ids["submitted"] = filing.file(person("author"), filing.ProposalFields(
            session_id=later.id, **{**BODY, "title": "提案（submitted）"})).id
        filing.second(person("seconder"), ids["submitted"])
    return ids


@pytest.fixture
def api(live_server, cong):
    return Api(live_server, cong)


@pytest.fixture(autouse=True)
def after_the_window():
    with time_machine.travel(AFTER_THE_WINDOW, tick=False):
        yield


def test_each_state_is_read_by_exactly_the_people_it_concerns(app, api, one_of_each):
    seen = {}
    for state, pid in one_of_each.items():
        for who in CALLERS:
            status = api("GET", f"/proposals/{pid}", who).status_code
            listed = pid in {p["id"] for p in api("GET", "/proposals", who, expect=200).json()["items"]}
            assert listed == (status == 200), (state, who)
            seen[(state, who)] = status
    actual = {state: {who for who in CALLERS if seen[(state, who)] == 200} for state in SEES}
    assert actual == SEES
    assert {code for code in seen.values()} == {200, 404}


def test_a_department_renamed_keeps_its_assignments_liaisons_and_old_name(app, api, one_of_each):
    jiaowu = api.cong.departments["教务处"]
    renamed = api("POST", f"/officer/proposals/departments/{jiaowu}/rename", "officer", {"name": "本科生院"},
                  200).json()
    assert renamed == {"id": jiaowu, "name": "本科生院", "aliases": ["教务处"],
                       "liaisons": [{"employee_no": "L0001", "name": "吴联络"}]}
    handled = api("GET", f"/proposals/{one_of_each['handling']}", "staff", expect=200).json()
    assert [a["department"] for a in handled["assignments"]] == ["本科生院"]
    assert api("GET", "/officer/proposals/assigned", "jiaowu", expect=200).json()["items"][0]["department"] == "本科生院"
    with app.app_context(), unit_of_work():      # HR's next import still says 教务处
        staff, _ = roster.update_staff("L0001", {"department": "教务处"})
        assert (staff.department, staff.department_id) == ("本科生院", jiaowu)
        newcomer, _ = roster.update_staff("N0001", {"name": "新同事", "department": "教务处"})
        assert newcomer.department_id == jiaowu
    with app.app_context():
        assert set(db.session.scalars(select(Assignment.department_id).where(
            Assignment.proposal_id.in_(list(one_of_each.values()))))) == {jiaowu}
    taken = api("POST", f"/officer/proposals/departments/{jiaowu}/rename", "officer", {"name": "后勤处"}, 409)
    assert taken.json()["error"]["code"] == "department_name_taken"
    assert api("POST", f"/officer/proposals/departments/{jiaowu}/rename", "staff", {"name": "X"}, 403).json()[
        "error"]["code"] == "committee_only"


def test_the_sessions_documents_hold_the_accepted_proposals_only(app, api, one_of_each):
    import io
    from openpyxl import load_workbook
    compiled = api("GET", f"/officer/proposals/sessions/{api.cong.session_id}/compilation.xlsx", "officer",
                   expect=200)
    rows = list(load_workbook(io.BytesIO(compiled.content)).active.iter_rows(values_only=True))
    assert [r[1] for r in rows[1:]] == [f"提案（{state}）" for state in ("accepted", "handling", "answered", "closed")]
    assert rows[4][10] == "已办" and rows[4][11] == "A 已解决"
    page = api("GET", f"/officer/proposals/sessions/{api.cong.session_id}/report.html", "committee", expect=200).text
    assert "共立案4项，满意1项，基本满意0项，尚未办结3项" in page and "提案（rejected）" not in page
    assert api("GET", f"/officer/proposals/sessions/{api.cong.session_id}/report.html", "staff").status_code == 403


def test_files_follow_their_proposals_visibility(app, api, one_of_each):
    from app.services.proposals import files
    with app.app_context(), unit_of_work(), time_machine.travel(AFTER_THE_WINDOW, tick=False):
        author = db.session.get(Staff, api.cong.ids["author"])
        later = filing.file(author, filing.ProposalFields(session_id=_open_session(), **BODY))
        kept = files.attach_to_proposal(author, later.id, "调查表.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 8).id
        pid = later.id
    assert api("GET", f"/proposals/{pid}/attachments/{kept}", "author", expect=200)
    for who in ("staff", "jiaowu", "officer"):
        assert api("GET", f"/proposals/{pid}/attachments/{kept}", who).status_code == 404, who
    assert api("GET", f"/proposals/{one_of_each['closed']}/attachments/{kept}", "staff").status_code == 404


def _open_session() -> int:
    from models import CongressSession
    return db.session.scalar(select(CongressSession.id).where(CongressSession.year == 2028))


def _outcome(app, who_id: int, action) -> str:
    """What one action does, tried on the fixture's data and rolled back: "done", or the refusal's code."""
    from app.errors import Conflict, Refusal
    with app.app_context(), time_machine.travel(AFTER_THE_WINDOW, tick=False):
        try:
            action(db.session.get(Staff, who_id))
            return "done"
        except Conflict as refusal:
            return refusal.code
        except Refusal as refusal:
            return f"{type(refusal).__name__}:{refusal.code}"
        finally:
            db.session.rollback()
            db.remove_session()


def test_every_action_in_every_state_is_done_only_where_the_state_allows_it(app, api, one_of_each):
    """Each action by the one who may take it, on a proposal in each state: done where the state allows it,
    otherwise refused as a conflict that names the state (or, where that person may not see the proposal, 404)."""
    from app.services.proposals.records import ReasonFields
    ids = one_of_each

    def lead_part(pid: int) -> int:
        return next((a.id for a in handling.current_assignments(pid) if a.lead and a.status.value == "pending"),
                    10**6)

    actions = {
        "second": ("second2", lambda s, pid: filing.second(s, pid), {"submitted"}),
        "withdraw_second": ("seconder", lambda s, pid: filing.withdraw_second(s, pid), {"submitted"}),
        "accept": ("committee", lambda s, pid: review.accept(s, pid), {"under_review"}),
        "reject": ("committee", lambda s, pid: review.reject(s, pid, ReasonFields(reason="x")), {"under_review"}),
        "opinion": ("committee", lambda s, pid: review.forward_as_opinion(s, pid, review.OpinionFields(
            department_id=api.cong.departments["后勤处"])), {"under_review"}),
        "merge": ("committee", lambda s, pid: review.merge(s, pid, review.MergeFields(into_id=ids["handling"])),
                  {"under_review"}),
        "withdraw_for_author": ("committee", lambda s, pid: review.withdraw_for_author(
            s, pid, ReasonFields(reason="x")), {"submitted", "under_review"}),
        "assign": ("committee", lambda s, pid: handling.assign(s, pid, handling.AssignFields(
            lead_department_id=api.cong.departments["后勤处"])), {"accepted", "handling"}),
        "answer": ("jiaowu", lambda s, pid: handling.answer(s, pid, lead_part(pid), handling.AnswerFields(
            text="已办", grade="A")), {"handling"}),
        "rate": ("author", lambda s, pid: satisfaction.rate(s, pid, satisfaction.RateFields(satisfaction="满意")),
                 {"answered"}),
        "comment": ("author", lambda s, pid: satisfaction.comment(s, pid, satisfaction.CommentFields(text="谢谢")),
                    {"answered", "closed"}),
    }
    allowed_refusals = {"proposal_state", "seconds_final", "assignment_state", "merge_target",
                        "NotFound:proposal_not_found", "NotFound:assignment_not_found", "not_answered"}
    for name, (who, act, allowed) in actions.items():
        outcomes = {state: _outcome(app, api.cong.ids[who], lambda staff: act(staff, pid))
                    for state, pid in ids.items()}
        assert {state for state, outcome in outcomes.items() if outcome == "done"} == allowed, (name, outcomes)
        assert {outcome for outcome in outcomes.values() if outcome != "done"} <= allowed_refusals, (name, outcomes)
