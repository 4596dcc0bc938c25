"""Staff-congress proposals over real HTTP: filing and seconding in the window, the window's close, the committee's
review, 交办 / 退办 / 答复, satisfaction rounds, 未评价 by timeout, and everyone told at each step. Who sees what is
tests/test_proposal_visibility.py; reminders are tests/test_proposal_reminders.py."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests
import time_machine
from sqlalchemy import func, select

from app import clock
from app.extensions import db
from app.services.proposals import review, satisfaction
from app.unit_of_work import unit_of_work
from models import AuditLog, Notice, Notification, ProposalStep, Second
from tests.proposals_support import AFTER_THE_WINDOW, IN_THE_WINDOW, Api, cong  # noqa: F401 (fixture)


@pytest.fixture(autouse=True)
def in_the_window():
    with time_machine.travel(IN_THE_WINDOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def api(live_server, cong):
    return Api(live_server, cong)


def run_job(app, job) -> int:
    with app.app_context(), unit_of_work():
        return job(clock.now())


def told(app, staff_id: int) -> list[str]:
    """What a person was told about proposals, oldest first."""
    with app.app_context():
        return list(db.session.scalars(select(Notice.body).join(Notification).where(
            Notification.staff_id == staff_id, Notice.occasion.like("proposal%")).order_by(Notice.id)))


def second_all(api, *proposal_ids: int) -> None:
    """李代表 and 赵代表 second each: enough for review."""
    for pid in proposal_ids:
        for who in ("seconder", "second2"):
            api("POST", f"/proposals/{pid}/seconds", who, expect=201)


def close_the_window(app, traveller) -> int:
    traveller.move_to(AFTER_THE_WINDOW)
    return run_job(app, review.close_windows)


def accepted(api, app, traveller, **changes) -> dict:
    proposal = api.file(**changes)
    second_all(api, proposal["id"])
    close_the_window(app, traveller)
    return api("POST", f"/officer/proposals/{proposal['id']}/accept", "committee", expect=200).json()


def assigned(api, app, traveller, co=True) -> tuple[dict, dict, dict | None]:
    """An accepted proposal handed to 教务处 (lead) and 后勤处 (co); returns it and both assignments."""
    proposal = accepted(api, app, traveller)
    body = {"lead_department_id": api.cong.departments["教务处"],
            "co_department_ids": [api.cong.departments["后勤处"]] if co else []}
    proposal = api("POST", f"/officer/proposals/{proposal['id']}/assign", "committee", body, 200).json()
    lead = next(a for a in proposal["assignments"] if a["lead"])
    other = next((a for a in proposal["assignments"] if not a["lead"]), None)
    return proposal, lead, other


def answer(api, proposal, lead, grade="A"):
    return api("POST", f"/officer/proposals/{proposal['id']}/assignments/{lead['id']}/answer", "jiaowu",
               {"text": "今年 7 月起开设暑期托管班。", "grade": grade}, 200).json()


# --- filing and seconding -----------------------------------------------------------------------------------------

def test_a_representative_files_inside_the_window_and_nobody_outside_it(app, api, in_the_window):
    proposal = api.file()
    assert proposal["status"] == "submitted" and proposal["status_label"] == "征集中（附议中）"
    assert proposal["author"] == "王代表" and proposal["category_label"] == "民生福利" and not proposal["locked"]
    assert api("POST", "/proposals", "staff", {"session_id": api.cong.session_id, **_body()}).json()["error"][
        "code"] == "representatives_only"
    in_the_window.move_to(AFTER_THE_WINDOW)
    late = api("POST", "/proposals", "author", {"session_id": api.cong.session_id, **_body()})
    assert late.status_code == 409 and late.json()["error"]["code"] == "window_closed"
    later = api("POST", "/officer/proposals/sessions", "officer", {
        "term_id": api.cong.term_id, "year": 2028, "name": "第二届教代会第五次会议", "meeting_on": "2028-03-20",
        "opens_at": "2028-02-20T08:00:00+08:00"}, 201).json()
    assert later["closes_at"] == "2028-03-05T00:00:00+08:00" and not later["collecting"]
    early = api("POST", "/proposals", "author", {"session_id": later["id"], **_body()}, 409)
    assert early.json()["error"]["code"] == "window_closed"


def _body():
    from tests.proposals_support import BODY
    return BODY


def test_one_second_per_person_never_ones_own_and_editing_after_a_second_is_refused(app, api):
    proposal = api.file()
    pid = proposal["id"]
    assert api("PATCH", f"/proposals/{pid}", "author", {"measures": "按成本收费"}, 200).json()["measures"] == "按成本收费"
    own = api("POST", f"/proposals/{pid}/seconds", "author", expect=403)
    assert own.json()["error"]["code"] == "own_proposal"
    assert api("POST", f"/proposals/{pid}/seconds", "seconder", expect=201).json()["seconds"] == 1
    twice = api("POST", f"/proposals/{pid}/seconds", "seconder", expect=409)
    assert twice.json()["error"]["code"] == "already_seconded"
    locked = api("PATCH", f"/proposals/{pid}", "author", {"title": "改过的案由"}, 409)
    assert locked.json()["error"]["code"] == "proposal_locked"
    assert api("POST", f"/proposals/{pid}/withdraw", "author", expect=409).json()["error"]["code"] == "proposal_locked"
    detail = api("GET", f"/proposals/{pid}", "author", expect=200).json()
    assert detail["title"] == proposal["title"] and detail["locked"] and detail["seconders"] == ["李代表"]
    assert any("李代表附议了您的提案" in text for text in told(app, api.cong.ids["author"]))
    # a second withdrawn keeps the text locked: it is what the seconder backed
    assert api("DELETE", f"/proposals/{pid}/seconds", "seconder", expect=200).json()["seconds"] == 0
    assert api("PATCH", f"/proposals/{pid}", "author", {"title": "再改"}, 409).json()["error"]["code"] == \
        "proposal_locked"


def test_the_author_withdraws_freely_before_the_first_second(app, api):
    pid = api.file()["id"]
    assert api("POST", f"/proposals/{pid}/withdraw", "author", expect=200).json()["status"] == "withdrawn"
    assert api("POST", f"/proposals/{pid}/seconds", "seconder").status_code == 404     # stays with its author
    assert api("GET", f"/proposals/{pid}", "author", expect=200).json()["status_label"] == "已撤回"


@pytest.mark.row_locks
def test_twenty_seconds_at_once_are_twenty_and_one_person_twice_at_once_is_one(app, api, make_staff, grant,
                                                                             token_for):
    from app.services.proposals import congress
    from models import Staff
    extra = {f"r{i}": make_staff(f"X{i:04d}", f"代表{i}") for i in range(20)}
    with app.app_context(), unit_of_work():
        officer = db.session.get(Staff, api.cong.ids["officer"])
        congress.add_representatives(officer, api.cong.term_id, congress.PeopleFields(
            employee_nos=[f"X{i:04d}" for i in range(20)]))
    api.cong.ids.update(extra)
    pid = api.file()["id"]
    answers = api.at_once([("POST", f"/proposals/{pid}/seconds", who, None) for who in extra])
    assert sorted(r.status_code for r in answers) == [201] * 20
    twice = api.at_once([("POST", f"/proposals/{pid}/seconds", "seconder", None)] * 2)
    assert sorted(r.status_code for r in twice) == [201, 409]
    assert api("GET", f"/proposals/{pid}", "author", expect=200).json()["seconds"] == 21
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Second).where(Second.proposal_id == pid)) == 21


# --- the window's close and the committee's review ------------------------------------------------------------------

def test_at_the_close_enough_seconds_go_to_review_and_too_few_close_below_the_minimum(app, api, in_the_window):
    backed = api.file()["id"]
    second_all(api, backed)
    thin = api.file(title="关于食堂延长晚餐时间的建议")["id"]
    api("POST", f"/proposals/{thin}/seconds", "seconder", expect=201)
    assert close_the_window(app, in_the_window) == 2
    assert run_job(app, review.close_windows) == 0                 # once
    assert api("GET", f"/proposals/{backed}", "author", expect=200).json()["status"] == "under_review"
    below = api("GET", f"/proposals/{thin}", "author", expect=200).json()
    assert below["status"] == "below_minimum" and below["status_label"] == "未达附议人数"
    assert api("GET", f"/proposals/{thin}", "staff").status_code == 404
    assert api("DELETE", f"/proposals/{backed}/seconds", "seconder", expect=409).json()["error"]["code"] == \
        "seconds_final"
    assert any("未达到 2 人" in text for text in told(app, api.cong.ids["seconder"]))


def test_accepting_numbers_per_session_and_tells_author_and_seconders(app, api, in_the_window):
    first = api.file()["id"]
    second = api.file(title="关于改善教师停车条件的建议")["id"]
    second_all(api, first, second)
    close_the_window(app, in_the_window)
    numbers = [api("POST", f"/officer/proposals/{pid}/accept", "committee", expect=200).json()["number"]
               for pid in (second, first)]
    assert numbers == ["2027-001", "2027-002"]
    again = api("POST", f"/officer/proposals/{first}/accept", "committee2", expect=409)
    assert again.json()["error"]["code"] == "proposal_state"
    for who in ("author", "seconder", "second2"):
        assert any("已立案，编号 2027-002" in text for text in told(app, api.cong.ids[who]))
    assert api("GET", f"/proposals/{first}", "staff", expect=200).json()["number"] == "2027-002"


@pytest.mark.row_locks
def test_two_committee_members_deciding_at_once_cannot_both_succeed(app, api, in_the_window):
    pid = api.file()["id"]
    second_all(api, pid)
    close_the_window(app, in_the_window)
    answers = api.at_once([("POST", f"/officer/proposals/{pid}/accept", "committee", None),
                           ("POST", f"/officer/proposals/{pid}/reject", "committee2", {"reason": "不属于提案范围"})])
    assert sorted(r.status_code for r in answers) == [200, 409]
    with app.app_context():
        decided = db.session.scalars(select(ProposalStep.action).where(
            ProposalStep.proposal_id == pid, ProposalStep.action.in_(("accepted", "rejected")))).all()
    assert len(decided) == 1


def test_a_merge_makes_the_author_and_seconders_co_proposers_of_the_accepted_one(app, api, in_the_window):
    target = api.file()["id"]
    merged = api.file("rep3", title="关于暑期托管的建议")["id"]
    second_all(api, target, merged)
    close_the_window(app, in_the_window)
    api("POST", f"/officer/proposals/{target}/accept", "committee", expect=200)
    done = api("POST", f"/officer/proposals/{merged}/merge", "committee", {"into_id": target}, 200).json()
    assert done["status"] == "merged" and done["merged_into_id"] == target
    assert sorted(api("GET", f"/proposals/{target}", "staff", expect=200).json()["co_proposers"]) == sorted([
        "钱代表", "李代表", "赵代表"])
    assert any("已并入提案 2027-001" in text for text in told(app, api.cong.ids["rep3"]))
    assert api("GET", f"/proposals/{merged}", "staff").status_code == 404
    into_itself = api("POST", f"/officer/proposals/{target}/merge", "committee", {"into_id": target})
    assert into_itself.status_code == 409


def test_an_opinion_goes_to_the_department_and_a_rejection_gives_its_reason(app, api, in_the_window):
    opinion, rejected = api.file()["id"], api.file(title="关于发放购物卡的建议")["id"]
    second_all(api, opinion, rejected)
    close_the_window(app, in_the_window)
    api("POST", f"/officer/proposals/{opinion}/opinion", "committee",
        {"department_id": api.cong.departments["后勤处"], "reason": "属日常管理事项"}, 200)
    assert api("GET", f"/proposals/{opinion}", "houqin", expect=200).json()["opinion_department"] == "后勤处"
    assert api("GET", f"/proposals/{opinion}", "jiaowu").status_code == 404
    assert any("转来一条意见建议" in text for text in told(app, api.cong.ids["houqin"]))
    api("POST", f"/officer/proposals/{rejected}/reject", "committee", {"reason": "不属于提案范围"}, 200)
    assert any("不予立案。原因：不属于提案范围" in text for text in told(app, api.cong.ids["second2"]))
    assert api("GET", f"/proposals/{rejected}", "staff").status_code == 404


# --- handling ------------------------------------------------------------------------------------------------------

def test_a_lead_department_sends_it_back_and_the_committee_reassigns_it(app, api, in_the_window):
    proposal, lead, co = assigned(api, app, in_the_window)
    assert any("交贵部门主办" in text for text in told(app, api.cong.ids["jiaowu"]))
    assert any("协办（主办：教务处）" in text for text in told(app, api.cong.ids["houqin"]))
    wrong = api("POST", f"/officer/proposals/{proposal['id']}/assignments/{lead['id']}/return", "houqin",
                {"reason": "不归我们"}, 403)
    assert wrong.json()["error"]["code"] == "not_the_department"
    back = api("POST", f"/officer/proposals/{proposal['id']}/assignments/{lead['id']}/return", "jiaowu",
               {"reason": "该事项不属于本部门职责"}, 200).json()
    assert back["status"] == "accepted"
    assert any("教务处退办" in text for text in told(app, api.cong.ids["committee2"]))
    again = api("POST", f"/officer/proposals/{proposal['id']}/assign", "committee",
                {"lead_department_id": api.cong.departments["后勤处"]}, 200).json()
    current = [a for a in again["assignments"] if a["status"] == "pending"]
    assert [(a["department"], a["lead"]) for a in current] == [("后勤处", True)]


def test_a_send_back_after_the_allowed_days_is_refused(app, api, in_the_window):
    proposal, lead, _ = assigned(api, app, in_the_window)
    in_the_window.shift(timedelta(days=6))
    late = api("POST", f"/officer/proposals/{proposal['id']}/assignments/{lead['id']}/return", "jiaowu",
               {"reason": "不属于本部门"}, 409)
    assert late.json()["error"]["code"] == "return_window_passed"


def test_the_co_handler_gives_its_opinion_and_the_lead_answers(app, api, in_the_window):
    proposal, lead, co = assigned(api, app, in_the_window)
    pid = proposal["id"]
    api("POST", f"/officer/proposals/{pid}/assignments/{co['id']}/opinion", "houqin", {"text": "场地可提供"}, 200)
    assert any("后勤处已提交协办意见" in text for text in told(app, api.cong.ids["jiaowu"]))
    lead_opinion = api("POST", f"/officer/proposals/{pid}/assignments/{lead['id']}/opinion", "jiaowu",
                       {"text": "x"}, 409)
    assert lead_opinion.json()["error"]["code"] == "lead_answers", lead_opinion.text
    done = answer(api, proposal, lead)
    assert done["status"] == "answered" and done["answer"]["grade_label"] == "A 已解决"
    for who in ("author", "seconder", "second2"):
        assert any("教务处已答复（A 已解决）" in text for text in told(app, api.cong.ids[who]))
    public = api("GET", f"/proposals/{pid}", "staff", expect=200).json()
    assert public["answer"]["text"] == "今年 7 月起开设暑期托管班。"
    assert all("text" not in a for a in public["assignments"])          # the opinions stay with the handlers
    handler = api("GET", f"/proposals/{pid}", "houqin", expect=200).json()
    assert any(a.get("text") == "场地可提供" for a in handler["assignments"])
    twice = api("POST", f"/officer/proposals/{pid}/assignments/{lead['id']}/answer", "jiaowu",
                {"text": "再答", "grade": "B"}, 409)
    assert twice.json()["error"]["code"] == "assignment_state"


def test_dissatisfied_sends_it_back_for_another_round_then_the_rating_closes_it(app, api, in_the_window):
    proposal, lead, _ = assigned(api, app, in_the_window, co=False)
    pid = proposal["id"]
    answer(api, proposal, lead, grade="C")
    assert api("POST", f"/proposals/{pid}/rating", "seconder", {"satisfaction": "满意"}, 403).json()["error"][
        "code"] == "not_the_author"
    again = api("POST", f"/proposals/{pid}/rating", "author", {"satisfaction": "不满意", "comment": "没有时间表"},
                200).json()
    assert again["status"] == "handling" and again["round"] == 2
    second_lead = next(a for a in again["assignments"] if a["status"] == "pending")
    assert second_lead["department"] == "教务处" and second_lead["round"] == 2
    assert any("第 2 轮办理" in text for text in told(app, api.cong.ids["seconder"]))
    answer(api, {"id": pid}, second_lead, grade="B")
    closed = api("POST", f"/proposals/{pid}/rating", "author", {"satisfaction": "不满意"}, 200).json()
    assert closed["status"] == "closed" and closed["satisfaction_label"] == "不满意"      # rounds used up (2)
    assert api("POST", f"/proposals/{pid}/rating", "author", {"satisfaction": "满意"}, 409).json()["error"][
        "code"] == "proposal_state"


def test_an_answer_not_rated_in_time_closes_as_unrated(app, api, in_the_window):
    proposal, lead, _ = assigned(api, app, in_the_window, co=False)
    answer(api, proposal, lead)
    in_the_window.shift(timedelta(days=14))
    assert run_job(app, satisfaction.close_unrated) == 0
    in_the_window.shift(timedelta(days=1, seconds=1))
    assert run_job(app, satisfaction.close_unrated) == 1
    assert run_job(app, satisfaction.close_unrated) == 0
    closed = api("GET", f"/proposals/{proposal['id']}", "staff", expect=200).json()
    assert closed["status"] == "closed" and closed["satisfaction_label"] == "未评价"
    assert any("未评价" in text for text in told(app, api.cong.ids["author"]))


def test_co_proposers_comment_and_others_may_not(app, api, in_the_window):
    proposal, lead, _ = assigned(api, app, in_the_window, co=False)
    pid = proposal["id"]
    assert api("POST", f"/proposals/{pid}/comments", "author", {"text": "谢谢"}, 409).json()["error"]["code"] == \
        "not_answered"
    answer(api, proposal, lead)
    assert api("POST", f"/proposals/{pid}/comments", "author", {"text": "希望延长到六点"}, 201).json()["name"] == "王代表"
    assert api("POST", f"/proposals/{pid}/comments", "staff", {"text": "我也想"}, 403).json()["error"]["code"] == \
        "not_a_proposer"


def test_every_disallowed_transition_is_refused_with_the_state(app, api, in_the_window):
    pid = api.file()["id"]
    for path, body in ((f"/officer/proposals/{pid}/accept", None), (f"/officer/proposals/{pid}/reject",
                                                                       {"reason": "x"}),
                       (f"/officer/proposals/{pid}/assign", {"lead_department_id": api.cong.departments["教务处"]})):
        refused = api("POST", path, "committee", body, 409).json()["error"]
        assert refused["code"] == "proposal_state" and "征集中" in refused["message"]
    assert api("POST", f"/proposals/{pid}/rating", "author", {"satisfaction": "满意"}, 409).json()["error"][
        "code"] == "proposal_state"
    not_committee = api("POST", f"/officer/proposals/{pid}/accept", "officer", expect=403)
    assert not_committee.json()["error"]["code"] == "committee_only"


def test_every_step_is_audited_with_its_date(app, api, in_the_window):
    proposal, lead, _ = assigned(api, app, in_the_window, co=False)
    answer(api, proposal, lead)
    with app.app_context():
        actions = db.session.scalars(select(AuditLog.action).where(
            AuditLog.target_type == "proposal", AuditLog.target_id == str(proposal["id"])).order_by(AuditLog.id)).all()
    assert actions == ["proposal.filed", "proposal.seconded", "proposal.seconded", "proposal.to_review",
                       "proposal.accepted", "proposal.assigned", "proposal.answered"]
    history = api("GET", f"/proposals/{proposal['id']}", "staff", expect=200).json()["history"]
    assert [h["action"] for h in history][-1] == "answered" and all(h["at"] for h in history)


def test_the_official_account_keyword_tells_a_member_their_proposals(app, api, client, in_the_window):
    from models import WeChatApp, WeChatIdentity
    from tests.wechat_client import WeChatPusher
    accepted(api, app, in_the_window)
    with app.app_context(), unit_of_work():
        for who in ("seconder", "staff"):
            db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid=f"mp-{who}", following=True,
                                          staff_id=api.cong.ids[who]))
    wechat = WeChatPusher(client)
    told_seconder = wechat.push(wechat.text("mp-seconder", "提案")).content
    assert "2027-001《关于增设教职工子女暑期托管班的建议》：已立案，待交办" in told_seconder
    assert "没有" in wechat.push(wechat.text("mp-staff", "提案")).content


# --- files ---------------------------------------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def upload(api, path: str, who: str, data: bytes = PNG, expect: int | None = None):
    response = requests.post(api.url + path, files={"file": ("调查表.png", data)}, headers=api.cong[who], timeout=30)
    if expect is not None:
        assert response.status_code == expect, response.text
    return response


def test_the_author_attaches_files_until_the_first_second_and_the_backers_read_them(app, api):
    pid = api.file()["id"]
    sent = upload(api, f"/proposals/{pid}/attachments", "author", expect=201).json()
    assert sent["filename"] == "调查表.png" and sent["content_type"] == "image/png" and not sent["answer"]
    assert upload(api, f"/proposals/{pid}/attachments", "author", b"MZ\x90\x00", 400).json()["error"]["code"] == \
        "unsupported_file"
    api("POST", f"/proposals/{pid}/seconds", "seconder", expect=201)
    assert upload(api, f"/proposals/{pid}/attachments", "author", expect=409).json()["error"]["code"] == \
        "proposal_locked"
    read = api("GET", f"/proposals/{pid}/attachments/{sent['id']}", "seconder", expect=200)
    assert read.content == PNG and read.headers["Content-Type"] == "image/png"
    assert api("GET", f"/proposals/{pid}/attachments/{sent['id']}", "staff").status_code == 404


def test_an_answers_files_are_read_by_members_once_it_is_given(app, api, in_the_window):
    proposal, lead, _ = assigned(api, app, in_the_window, co=False)
    pid = proposal["id"]
    sent = upload(api, f"/officer/proposals/{pid}/assignments/{lead['id']}/attachments", "jiaowu", expect=201).json()
    assert sent["answer"] is True
    assert api("GET", f"/proposals/{pid}/attachments/{sent['id']}", "staff").status_code == 404   # a draft answer
    assert api("GET", f"/proposals/{pid}/attachments/{sent['id']}", "committee", expect=200).content == PNG
    answer(api, proposal, lead)
    assert [f["id"] for f in api("GET", f"/proposals/{pid}", "staff", expect=200).json()["files"]] == [sent["id"]]
    assert api("GET", f"/proposals/{pid}/attachments/{sent['id']}", "staff", expect=200).content == PNG
    late = upload(api, f"/officer/proposals/{pid}/assignments/{lead['id']}/attachments", "jiaowu", expect=409)
    assert late.json()["error"]["code"] == "assignment_state"


# --- what the review found ------------------------------------------------------------------------------------------

def test_the_author_cannot_rate_an_answer_as_unrated(app, api, in_the_window):
    proposal, lead, _ = assigned(api, app, in_the_window, co=False)
    answer(api, proposal, lead)
    refused = api("POST", f"/proposals/{proposal['id']}/rating", "author", {"satisfaction": "unrated"}, 422)
    assert refused.json()["error"]["code"] == "invalid_request"
    assert api("GET", f"/proposals/{proposal['id']}", "author", expect=200).json()["status"] == "answered"


def test_a_co_handler_that_sent_it_back_is_replaced_and_left_out_of_the_next_round(app, api, in_the_window):
    proposal, lead, co = assigned(api, app, in_the_window)
    pid = proposal["id"]
    api("POST", f"/officer/proposals/{pid}/assignments/{co['id']}/return", "houqin", {"reason": "不归我们"}, 200)
    assert api("GET", f"/proposals/{pid}", "author", expect=200).json()["status"] == "handling"
    again = api("POST", f"/officer/proposals/{pid}/assign", "committee",
                {"lead_department_id": api.cong.departments["教务处"]}, 200).json()      # 重新交办
    pending = [a for a in again["assignments"] if a["status"] == "pending"]
    assert [(a["department"], a["lead"]) for a in pending] == [("教务处", True)]
    answer(api, again, pending[0], grade="C")
    round_two = api("POST", f"/proposals/{pid}/rating", "author", {"satisfaction": "不满意"}, 200).json()
    assert [a["department"] for a in round_two["assignments"] if a["status"] == "pending"] == ["教务处"]


def test_more_disallowed_transitions_are_refused(app, api, in_the_window):
    proposal, lead, _ = assigned(api, app, in_the_window, co=False)
    pid = proposal["id"]
    for path, body in ((f"/officer/proposals/{pid}/reject", {"reason": "x"}),
                       (f"/officer/proposals/{pid}/opinion", {"department_id": api.cong.departments["后勤处"]}),
                       (f"/officer/proposals/{pid}/accept", None)):
        assert api("POST", path, "committee", body, 409).json()["error"]["code"] == "proposal_state"
    answer(api, proposal, lead)
    back = api("POST", f"/officer/proposals/{pid}/assignments/{lead['id']}/return", "jiaowu", {"reason": "x"}, 409)
    assert back.json()["error"]["code"] == "assignment_state"
    assert api("POST", f"/officer/proposals/{pid}/assign", "committee",
               {"lead_department_id": api.cong.departments["后勤处"]}, 409).json()["error"]["code"] == "proposal_state"
    assert api("POST", f"/proposals/{pid}/comments", "seconder", {"text": "我也有意见"}, 403).json()["error"][
        "code"] == "not_a_proposer"


def test_merging_into_a_proposal_not_accepted_is_refused(app, api, in_the_window):
    first, second = api.file()["id"], api.file(title="另一件提案")["id"]
    second_all(api, first, second)
    close_the_window(app, in_the_window)
    refused = api("POST", f"/officer/proposals/{first}/merge", "committee", {"into_id": second}, 409)
    assert refused.json()["error"]["code"] == "merge_target"


def test_the_author_and_seconders_are_told_of_review_assignment_and_the_committees_withdrawal(app, api,
                                                                                            in_the_window):
    withdrawn = api.file(title="请撤回的提案")["id"]
    api("POST", f"/proposals/{withdrawn}/seconds", "seconder", expect=201)
    api("POST", f"/officer/proposals/{withdrawn}/withdraw", "committee", {"reason": "提案人申请撤回"}, 200)
    proposal, lead, _ = assigned(api, app, in_the_window, co=False)
    for who in ("author", "seconder", "second2"):
        texts = told(app, api.cong.ids[who])
        assert any("已提交提案工作委员会审查" in t for t in texts), who
        assert any("已交教务处主办" in t for t in texts), who
    assert any("由提案工作委员会撤回" in t for t in told(app, api.cong.ids["seconder"]))


def test_an_import_under_an_old_department_name_changes_nothing(app, api):
    from app.services import departments, staff_import
    from models import Staff
    with app.app_context(), unit_of_work():
        departments.rename(db.session.get(Staff, api.cong.ids["officer"]), api.cong.departments["教务处"],
                           departments.RenameFields(name="本科生院"))
    with app.app_context(), unit_of_work():
        plan = staff_import._plan_changes(
            [staff_import._Row(2, "L0001", {"department": "教务处"})], {"L0001": db.session.get(
                Staff, api.cong.ids["jiaowu"])}, report := staff_import.ImportReport())
    assert plan == [] and report.unchanged == 1


# --- lists ---------------------------------------------------------------------------------------------------------

def test_the_lists_run_the_same_number_of_queries_for_two_proposals_or_eight(app, client, api, in_the_window,
                                                                           count_queries):
    """Members', the committee's, the liaison's and the overdue list: each a fixed number of statements."""
    lists = {"author": "/api/v1/proposals", "staff": "/api/v1/proposals", "committee": "/api/v1/officer/proposals",
             "jiaowu": "/api/v1/officer/proposals/assigned", "committee2": "/api/v1/officer/proposals/overdue"}

    def counted() -> dict[str, int]:
        found = {}
        for who, path in lists.items():
            headers = api.cong[who]
            client.get("/api/v1/me", headers=headers)          # the caller's card cached, as after any request
            with count_queries() as queries:
                assert client.get(path, headers=headers).status_code == 200
            found[who] = queries.count
        return found

    def handled(n: int) -> None:
        for _ in range(n):
            assigned(api, app, in_the_window)
            in_the_window.move_to(IN_THE_WINDOW)
            with app.app_context(), unit_of_work():         # a window open again for the next ones
                from models import CongressSession
                db.session.get(CongressSession, api.cong.session_id).window_closed_at = None

    handled(2)
    in_the_window.move_to(IN_THE_WINDOW + timedelta(days=200))      # every deadline passed: the overdue list fills
    few = counted()
    in_the_window.move_to(IN_THE_WINDOW)
    handled(6)
    in_the_window.move_to(IN_THE_WINDOW + timedelta(days=200))
    many = counted()
    assert len(client.get(lists["committee2"], headers=api.cong["committee2"]).json["items"]) == 16
    assert many == few



def test_the_lead_answers_once_the_co_handlers_opinions_are_in(app, api, in_the_window):
    proposal, lead, co = assigned(api, app, in_the_window)
    early = api("POST", f"/officer/proposals/{proposal['id']}/assignments/{lead['id']}/answer", "jiaowu",
                {"text": "已解决", "grade": "A"}, 409).json()["error"]
    assert early["code"] == "opinions_pending" and "后勤处" in early["message"]
    api("POST", f"/officer/proposals/{proposal['id']}/assignments/{co['id']}/opinion", "houqin", {"text": "同意"}, 200)
    assert answer(api, proposal, lead)["status"] == "answered"


def test_nothing_is_handed_to_a_department_nobody_answers_for(app, api, make_staff, in_the_window):
    make_staff("A0001", "档案员", department="档案馆")
    with app.app_context():
        from models import Department
        archive = db.session.scalar(select(Department.id).where(Department.name == "档案馆"))
    proposal = accepted(api, app, in_the_window)
    refused = api("POST", f"/officer/proposals/{proposal['id']}/assign", "committee",
                  {"lead_department_id": archive}, 409).json()["error"]
    assert refused["code"] == "no_liaison" and "档案馆" in refused["message"]


def test_a_session_stays_in_its_year_and_term_and_its_window_can_move_until_it_closes(app, api, in_the_window):
    body = {"term_id": api.cong.term_id, "year": 2031, "name": "第六次会议", "meeting_on": "2031-03-20"}
    assert api("POST", "/officer/proposals/sessions", "officer", body, 422).json()["error"]["code"] == "outside_term"
    other_year = {**body, "year": 2028, "meeting_on": "2027-12-20"}
    assert api("POST", "/officer/proposals/sessions", "officer", other_year, 422).json()["error"][
        "message"] == "会议日期须在该年度内"
    moved = api("PATCH", f"/officer/proposals/sessions/{api.cong.session_id}", "committee",
                {"closes_at": "2027-03-08T18:00:00+08:00"}, 200).json()
    assert moved["closes_at"] == "2027-03-08T18:00:00+08:00"
    late = api("PATCH", f"/officer/proposals/sessions/{api.cong.session_id}", "committee",
               {"closes_at": "2027-03-25T18:00:00+08:00"}, 422).json()["error"]
    assert late["code"] == "invalid_window"                             # after the meeting
    in_the_window.move_to(AFTER_THE_WINDOW.replace(day=9))
    run_job(app, review.close_windows)
    closed = api("PATCH", f"/officer/proposals/sessions/{api.cong.session_id}", "committee", {"name": "改名"}, 409)
    assert closed.json()["error"]["code"] == "window_closed"


def test_an_edit_names_what_it_changes(app, api):
    pid = api.file()["id"]
    assert api("PATCH", f"/proposals/{pid}", "author", {}, 422).json()["error"]["message"] == "请至少修改一项"
    assert api("PATCH", f"/proposals/{pid}", "author", {"title": None}, 422).json()["error"]["message"] == \
        "修改的内容不能为空"
    assert api("PATCH", f"/proposals/{pid}", "author", {"title": "x"}, 422).json()["error"]["message"] == \
        "参数 title 太短（至少 2 个字）"
    assert api("PATCH", f"/proposals/{pid}", "author", {"title": "案由\r\n伪造的第二行"}, 422).json()["error"][
        "message"] == "参数 title 不能包含换行"
