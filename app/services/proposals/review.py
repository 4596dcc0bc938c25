"""The window's close (the scheduler: enough seconds → 待审查, too few → 未达附议人数) and the committee's review
(审查): 立案 with the session's next number, 并案 into an accepted proposal (whose backers become co-proposers of that
one), 转为意见建议 to a department, or 不立案 with a reason. Each decision tells the author and the seconders."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import exists, insert, or_, select, update

from app import clock
from app.errors import Conflict
from app.extensions import db
from app.services import departments, policy
from app.services.proposals.records import (
    NUMBERED, ReasonFields, backers, ensure_has_liaison, get_proposal, liaisons_of, lock, lock_session, record_step, settings, tell,
    transition,
)
from app.validation import Id
from models import CongressSession, CoProposer, Proposal, ProposalStatus, Staff

REVIEWABLE = (ProposalStatus.UNDER_REVIEW,)


class MergeFields(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"into_id": 12}]})
    into_id: Id = Field(description="并入的已立案提案编号（id）")


class OpinionFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"department_id": 3, "reason": "属日常管理事项，转有关部门研究办理"}]})
    department_id: Id = Field(description="转交的部门")
    reason: str | None = Field(default=None, min_length=1, max_length=500)


# --- the window's close (scheduler) --------------------------------------------------------------------------------

def close_windows(now: datetime) -> int:
    """Every session whose window has passed is closed (whoever runs this first claims it) and its proposals still
    collecting move on; a later run sweeps any a filing in flight left behind. Returns proposals moved."""
    collecting = exists().where(Proposal.session_id == CongressSession.id, Proposal.status == ProposalStatus.SUBMITTED)
    due = db.session.scalars(select(CongressSession.id).where(
        CongressSession.closes_at <= now, or_(CongressSession.window_closed_at.is_(None), collecting))
        .order_by(CongressSession.id)).all()
    return sum(_close_window(session_id, now) for session_id in due)


def _close_window(session_id: int, now: datetime) -> int:
    # Waits for filings in flight (they hold the session's row shared), then lists with a locking read, which sees
    # them where a plain read (MariaDB) would keep an older snapshot.
    db.session.execute(update(CongressSession).where(
        CongressSession.id == session_id, CongressSession.window_closed_at.is_(None))
        .values(window_closed_at=now).execution_options(synchronize_session=False))
    collecting = db.session.scalars(select(Proposal.id).where(
        Proposal.session_id == session_id, Proposal.status == ProposalStatus.SUBMITTED)
        .order_by(Proposal.id).with_for_update()).all()
    minimum = settings().min_seconds
    moved = 0
    for proposal_id in collecting:
        proposal = lock(db.session.get(Proposal, proposal_id))
        if proposal.status is not ProposalStatus.SUBMITTED:
            continue
        if proposal.seconds >= minimum:
            transition(proposal, (ProposalStatus.SUBMITTED,), ProposalStatus.UNDER_REVIEW, "提交审查")
            record_step(proposal, "to_review", None, f"征集期结束，附议 {proposal.seconds} 人，已提交提案工作委员会审查。",
                        seconds=proposal.seconds)
        else:
            transition(proposal, (ProposalStatus.SUBMITTED,), ProposalStatus.BELOW_MINIMUM, "结束征集",
                       closed_at=now)
            record_step(proposal, "below_minimum", None,
                        f"征集期结束，附议 {proposal.seconds} 人，未达到 {minimum} 人，未提交审查。",
                        seconds=proposal.seconds, minimum=minimum)
        moved += 1
    return moved


# --- the committee's decisions -------------------------------------------------------------------------------------

def _under_review(member: Staff, proposal_id: int) -> Proposal:
    policy.ensure_on_committee(member)
    return get_proposal(member, proposal_id)


def accept(member: Staff, proposal_id: int) -> Proposal:
    """立案: numbered in the session's order of acceptance (2027-017), the number taken under the session's lock."""
    proposal = _under_review(member, proposal_id)
    transition(proposal, REVIEWABLE, ProposalStatus.ACCEPTED, "立案", decided_by_id=member.id,
               decided_at=clock.now())
    session = lock_session(proposal.session_id)
    proposal.number = f"{session.year}-{session.next_number:03d}"
    session.next_number += 1
    record_step(proposal, "accepted", member, f"已立案，编号 {proposal.number}，将交有关部门办理。",
                number=proposal.number)
    return proposal


def merge(member: Staff, proposal_id: int, fields: MergeFields) -> Proposal:
    proposal = _under_review(member, proposal_id)
    target = get_proposal(member, fields.into_id)
    if target.id != proposal.id:
        lock(target)             # merges into one target queue here: each reads the co-proposers the last added
    if target.id == proposal.id or target.session_id != proposal.session_id or target.status not in NUMBERED:
        raise Conflict("merge_target", "只能并入本次会议已立案的另一件提案")
    transition(proposal, REVIEWABLE, ProposalStatus.MERGED, "并案", merged_into_id=target.id,
               decided_by_id=member.id, decided_at=clock.now(), closed_at=clock.now())
    joining = backers(proposal) - {target.author_id}
    have = set(db.session.scalars(select(CoProposer.staff_id).where(CoProposer.proposal_id == target.id)))
    if joining - have:
        db.session.execute(insert(CoProposer), [{"proposal_id": target.id, "staff_id": sid,
                                                 "via_proposal_id": proposal.id, "created_at": clock.now()}
                                                for sid in sorted(joining - have)])
    record_step(proposal, "merged", member, f"已并入提案 {target.number}《{target.title}》，原提案的提案人和附议人"
                "成为该提案的共同提案人。",
                into=target.id, number=target.number)
    record_step(target, "merged_in", member, from_proposal=proposal.id, co_proposers=len(joining - have))
    return proposal


def forward_as_opinion(member: Staff, proposal_id: int, fields: OpinionFields) -> Proposal:
    proposal = _under_review(member, proposal_id)
    department = departments.get_department(fields.department_id)
    ensure_has_liaison(department)
    transition(proposal, REVIEWABLE, ProposalStatus.OPINION, "转为意见建议", opinion_department_id=department.id,
               decision_reason=fields.reason, decided_by_id=member.id, decided_at=clock.now(),
               closed_at=clock.now())
    step = record_step(proposal, "opinion", member, f"不作为正式提案立案，已作为意见建议转{department.name}研究办理。",
                       department=department.name)
    tell(f"proposal:{proposal.id}:{step.id}:department", liaisons_of(department.id), proposal,
         "提案工作委员会转来一条意见建议，请研究办理。", title="转来的意见建议")
    return proposal


def reject(member: Staff, proposal_id: int, fields: ReasonFields) -> Proposal:
    proposal = _under_review(member, proposal_id)
    transition(proposal, REVIEWABLE, ProposalStatus.REJECTED, "决定不予立案", decision_reason=fields.reason,
               decided_by_id=member.id, decided_at=clock.now(), closed_at=clock.now())
    record_step(proposal, "rejected", member, f"不予立案。原因：{fields.reason}", reason=fields.reason)
    return proposal


def withdraw_for_author(member: Staff, proposal_id: int, fields: ReasonFields) -> Proposal:
    """Once seconded, a proposal is withdrawn only by the committee (at its author's request), before review."""
    policy.ensure_on_committee(member)
    proposal = get_proposal(member, proposal_id)
    transition(proposal, (ProposalStatus.SUBMITTED, ProposalStatus.UNDER_REVIEW), ProposalStatus.WITHDRAWN, "撤回",
               decision_reason=fields.reason, decided_by_id=member.id, decided_at=clock.now(), closed_at=clock.now())
    record_step(proposal, "withdrawn", member, f"应提案人申请，由提案工作委员会撤回。原因：{fields.reason}",
                reason=fields.reason)
    return proposal


def for_committee(member: Staff, session_id: int | None, status: ProposalStatus | None) -> list[Proposal]:
    policy.ensure_on_committee(member)
    query = select(Proposal).order_by(Proposal.id)
    if session_id is not None:
        query = query.where(Proposal.session_id == session_id)
    if status is not None:
        query = query.where(Proposal.status == status)
    return list(db.session.scalars(query))



def co_proposers_of(proposal_id: int) -> list[CoProposer]:
    return list(db.session.scalars(select(CoProposer).where(CoProposer.proposal_id == proposal_id)
                                   .order_by(CoProposer.id)))
