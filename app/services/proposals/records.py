"""What the proposal modules share: labels, loading a proposal the caller may see, its state moves, its history,
and telling the people concerned."""

from __future__ import annotations

from flask import current_app
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import lazyload

from app.config import ProposalsSection
from app.errors import Conflict
from app.extensions import db
from app.services import audit, notifications, policy
from app.services.state_changes import move_status
from app.validation import labelled
from models import (
    AnswerGrade, CongressSession, CoProposer, Proposal, ProposalCategory, ProposalStatus, ProposalStep, Role,
    RoleAssignment, Satisfaction, Second, Staff,
)

TABLE = "proposal"
PAGE = "pages/proposals/detail?id={proposal_id}"
STATUS_LABELS = {
    ProposalStatus.SUBMITTED: "征集中（附议中）", ProposalStatus.WITHDRAWN: "已撤回",
    ProposalStatus.BELOW_MINIMUM: "未达附议人数", ProposalStatus.UNDER_REVIEW: "待审查",
    ProposalStatus.ACCEPTED: "已立案，待交办", ProposalStatus.MERGED: "已并案", ProposalStatus.OPINION: "转为意见建议",
    ProposalStatus.REJECTED: "不予立案", ProposalStatus.HANDLING: "办理中", ProposalStatus.ANSWERED: "已答复，待评价",
    ProposalStatus.CLOSED: "已办结",
}
CATEGORY_LABELS = {ProposalCategory.TEACHING: "教学科研", ProposalCategory.TALENT: "人才队伍",
                   ProposalCategory.LOGISTICS: "后勤保障", ProposalCategory.WELFARE: "民生福利",
                   ProposalCategory.OTHER: "其他"}
GRADE_LABELS = {AnswerGrade.A: "A 已解决", AnswerGrade.B: "B 正在解决", AnswerGrade.C: "C 列入规划",
                AnswerGrade.D: "D 因条件限制暂无法解决"}
SATISFACTION_LABELS = {Satisfaction.SATISFIED: "满意", Satisfaction.BASICALLY_SATISFIED: "基本满意",
                       Satisfaction.DISSATISFIED: "不满意", Satisfaction.UNRATED: "未评价"}
CategoryChoice = labelled(ProposalCategory, CATEGORY_LABELS)
GradeChoice = labelled(AnswerGrade, GRADE_LABELS)
NUMBERED = policy.PUBLIC_PROPOSAL_STATES          # 立案: numbered, and read by every member


class ReasonFields(BaseModel):
    """Why: 不立案, a withdrawal for its author, 退办."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"reason": "不属于教代会提案范围"}]})
    reason: str = Field(min_length=1, max_length=500, description="原因")


def settings() -> ProposalsSection:
    return current_app.config["SU"].proposals


def get_proposal(staff: Staff, proposal_id: int) -> Proposal:
    """A proposal the caller may see (404 otherwise, whether or not it exists)."""
    policy.ensure_sees_proposal(staff, proposal_id)
    return db.session.get(Proposal, proposal_id)


def visible(staff: Staff, session_id: int | None, mine: bool) -> list[Proposal]:
    """What a member may read (accepted ones, and their own), newest first; `mine`: those they back."""
    query = select(Proposal).where(policy.backs_condition(staff) if mine else policy.proposal_visible_condition(staff))
    if session_id is not None:
        query = query.where(Proposal.session_id == session_id)
    return list(db.session.scalars(query.order_by(Proposal.id.desc()).limit(1000)))


def lock(proposal: Proposal) -> Proposal:
    """The proposal's row locked and re-read: seconds, edits and the window's close queue here, one at a time."""
    db.session.scalar(select(Proposal).where(Proposal.id == proposal.id).options(lazyload("*"))
                      .with_for_update().execution_options(populate_existing=True))
    return proposal


def lock_session(session_id: int, shared: bool = False) -> CongressSession:
    """The session's row locked and re-read: exclusive for its numbers; shared by filings, so that the window's
    close waits for a filing in flight and then sees it."""
    return db.session.scalar(select(CongressSession).where(CongressSession.id == session_id)
                             .options(lazyload("*")).with_for_update(read=shared)
                             .execution_options(populate_existing=True))


def not_allowed(status: ProposalStatus, action: str) -> Conflict:
    return Conflict("proposal_state", f"该提案当前为“{STATUS_LABELS[status]}”，不能{action}")


def transition(proposal: Proposal, allowed: tuple[ProposalStatus, ...], new: ProposalStatus, action: str,
               *conditions, **values) -> None:
    """Exactly one of two people acting at once moves it; the other is told the state the winner left."""
    if proposal.status not in allowed:
        raise not_allowed(proposal.status, action)
    now = move_status(proposal, allowed, new, *conditions, **values)
    if now is not None:
        raise not_allowed(now, action)


def backers(proposal: Proposal) -> set[int]:
    """Its author, seconders and co-proposers: the people each step is told to."""
    seconders = db.session.scalars(select(Second.staff_id).where(Second.proposal_id == proposal.id))
    co_proposers = db.session.scalars(select(CoProposer.staff_id).where(CoProposer.proposal_id == proposal.id))
    return {proposal.author_id, *seconders, *co_proposers}


def committee_members() -> set[int]:
    return set(db.session.scalars(select(RoleAssignment.staff_id).where(
        RoleAssignment.role == Role.PROPOSAL_COMMITTEE)))


def ensure_has_liaison(department) -> None:
    """Handing a proposal to a department nobody answers for would leave it unanswered and its reminders unread."""
    if not db.session.scalar(select(RoleAssignment.id).where(
            RoleAssignment.role == Role.DEPARTMENT_LIAISON, RoleAssignment.department_id == department.id).limit(1)):
        raise Conflict("no_liaison", f"{department.name}尚未指定提案联络人，请校工会先指定联络人再交办")


def liaisons_of(department_id: int) -> set[int]:
    """Whoever answers for a department; where it has none yet, the committee hears instead, so nothing is lost."""
    liaisons = set(db.session.scalars(select(RoleAssignment.staff_id).where(
        RoleAssignment.role == Role.DEPARTMENT_LIAISON, RoleAssignment.department_id == department_id)))
    return liaisons or committee_members()


def record_step(proposal: Proposal, action: str, actor: Staff | None, told: str | None = None,
                **detail) -> ProposalStep:
    """A step in the proposal's history (with its date) and in the audit log; `told` goes to its backers."""
    step = ProposalStep(proposal_id=proposal.id, action=action, actor_id=actor.id if actor else None,
                        detail=detail)
    db.session.add(step)
    db.session.flush()
    audit.record(actor, f"proposal.{action}", TABLE, proposal.id, actor_label="" if actor else "scheduler",
                 **detail)
    if told:
        tell(f"proposal:{proposal.id}:{step.id}", backers(proposal), proposal, told)
    return step


def tell(occasion: str, staff_ids: set[int], proposal: Proposal, text: str, title: str = "提案有新进展") -> None:
    notifications.notify_people(
        "service", occasion, staff_ids, title, f"提案《{proposal.title}》：{text}",
        data={"summary": text[:20], "proposal_id": proposal.id}, page=PAGE.format(proposal_id=proposal.id))


STATUS_LINES = 10        # a chat reply stays short


def status_text(staff: Staff) -> str:
    """The official account's answer to "提案": each proposal the member backs, with its status (newest first)."""
    mine = visible(staff, None, mine=True)
    if not mine:
        return "您目前没有提出或附议的提案。代表可在小程序“教代会提案”中提交和附议提案。"
    lines = [f"{p.number or '（未立案）'}《{p.title}》：{STATUS_LABELS[p.status]}"
             + (f"，{SATISFACTION_LABELS[p.satisfaction]}" if p.satisfaction else "") for p in mine[:STATUS_LINES]]
    more = f"\n另有 {len(mine) - STATUS_LINES} 件" if len(mine) > STATUS_LINES else ""
    return "您提出或附议的提案（最新在前）：\n" + "\n".join(lines) + more + "\n详情请在小程序“教代会提案”中查看。"
