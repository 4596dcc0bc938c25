"""Satisfaction (满意度): the lead proposer rates the answer 满意 / 基本满意 / 不满意 with a comment; 不满意 sends it
back to the same departments for another round until `max_rounds`; co-proposers may comment; an answer not rated
within `rate_within_days` closes the proposal as 未评价, counted apart. Then it is closed (办结)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app import clock
from app.errors import Conflict
from app.extensions import db
from app.services import calendar, policy
from app.services.proposals import handling
from app.services.state_changes import move_status
from app.services.proposals.records import (
    SATISFACTION_LABELS, get_proposal, record_step, settings, transition,
)
from app.validation import labelled
from models import AssignmentStatus, Proposal, ProposalComment, ProposalStatus, Satisfaction, Staff

Rating = labelled(Satisfaction, {k: v for k, v in SATISFACTION_LABELS.items() if k is not Satisfaction.UNRATED})


class RateFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"satisfaction": "满意", "comment": "答复具体，落实到位"}]})
    satisfaction: Rating = Field(description="satisfied 满意 / basically_satisfied 基本满意 / dissatisfied 不满意")
    comment: str | None = Field(default=None, min_length=1, max_length=500)


class CommentFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"text": "希望托管班延长到下午六点"}]})
    text: str = Field(min_length=1, max_length=500)


def rate(staff: Staff, proposal_id: int, fields: RateFields) -> Proposal:
    proposal = get_proposal(staff, proposal_id)
    policy.ensure_author(staff, proposal)
    if fields.satisfaction is Satisfaction.DISSATISFIED and proposal.round < settings().max_rounds:
        _another_round(staff, proposal, fields.comment)
        return proposal
    transition(proposal, (ProposalStatus.ANSWERED,), ProposalStatus.CLOSED, "评价", satisfaction=fields.satisfaction,
               satisfaction_comment=fields.comment, rated_at=clock.now(), closed_at=clock.now())
    label = SATISFACTION_LABELS[fields.satisfaction]
    record_step(proposal, "rated", staff, f"提案人评价：{label}，提案已办结。", satisfaction=fields.satisfaction.value)
    return proposal


def _another_round(staff: Staff, proposal: Proposal, comment: str | None) -> None:
    """不满意: the departments of the answered round take it up again, with a fresh deadline."""
    transition(proposal, (ProposalStatus.ANSWERED,), ProposalStatus.HANDLING, "评价", round=proposal.round + 1)
    if comment:
        db.session.add(ProposalComment(proposal_id=proposal.id, staff_id=staff.id, round=proposal.round - 1,
                                       text=comment))
    record_step(proposal, "dissatisfied", staff, f"提案人对答复不满意，已退回承办部门进行第 {proposal.round} 轮办理。",
                round=proposal.round)
    answered = [a for a in handling.current_assignments(proposal.id) if a.status is not AssignmentStatus.RETURNED]
    lead = next(a.department_id for a in answered if a.lead)
    deadline = calendar.months_after(clock.today(), settings().handling_months)
    handling.start_handling(proposal, None, lead, [a.department_id for a in answered if not a.lead], deadline)


def comment(staff: Staff, proposal_id: int, fields: CommentFields) -> ProposalComment:
    proposal = get_proposal(staff, proposal_id)
    policy.ensure_may_comment(staff, proposal)
    if proposal.answered_at is None:
        raise Conflict("not_answered", "提案答复后才能评论")
    row = ProposalComment(proposal_id=proposal.id, staff_id=staff.id, round=proposal.round, text=fields.text)
    db.session.add(row)
    db.session.flush()
    record_step(proposal, "commented", staff)
    return row


def comments_of(proposal_id: int) -> list[ProposalComment]:
    return list(db.session.scalars(select(ProposalComment).where(ProposalComment.proposal_id == proposal_id)
                                   .order_by(ProposalComment.id)))


def close_unrated(now: datetime) -> int:
    """未评价: an answer not rated in time closes the proposal, counted apart from the ratings (scheduler)."""
    cutoff = now - timedelta(days=settings().rate_within_days)
    closed = 0
    for proposal in db.session.scalars(select(Proposal).where(Proposal.status == ProposalStatus.ANSWERED,
                                                              Proposal.answered_at <= cutoff)).all():
        if move_status(proposal, (ProposalStatus.ANSWERED,), ProposalStatus.CLOSED,
                                satisfaction=Satisfaction.UNRATED, closed_at=now) is None:
            record_step(proposal, "unrated", None, f"答复后 {settings().rate_within_days} 天内未评价，提案已办结（未评价）。")
            closed += 1
    return closed
