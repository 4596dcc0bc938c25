"""Filing and seconding (附议), inside the session's collection window. The author edits or withdraws freely until
the first second; from then on the text is what the seconders backed, locked, and only the committee withdraws it.
One second per representative per proposal (a unique key), never one's own, withdrawable until review starts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import Conflict
from app.extensions import db
from app.services import policy
from app.services.proposals import congress
from app.services.proposals.records import (
    STATUS_LABELS, CategoryChoice, get_proposal, lock, lock_session, record_step, tell, transition,
)
from app.validation import Id, line
from models import Proposal, ProposalStatus, Second, Staff


Title = line(2, 100)


class ProposalText(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    title: Title = Field(description="案由")
    reasons: str = Field(min_length=1, max_length=5000, description="理由")
    measures: str = Field(min_length=1, max_length=5000, description="建议（具体措施）")
    category: CategoryChoice = Field(description="teaching 教学科研 / talent 人才队伍 / logistics 后勤保障 / "
                                                 "welfare 民生福利 / other 其他")


class ProposalFields(ProposalText):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"session_id": 1, "title": "关于增设教职工子女暑期托管班的建议", "reasons": "暑期双职工子女无人照看",
         "measures": "由工会牵头，利用附属小学场地开设暑期托管班", "category": "民生福利"}]})
    session_id: Id


class EditFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"measures": "由工会牵头，利用附属小学场地开设暑期托管班，按成本收费"}]})
    title: Title | None = None
    reasons: str | None = Field(default=None, min_length=1, max_length=5000)
    measures: str | None = Field(default=None, min_length=1, max_length=5000)
    category: CategoryChoice | None = None

    @model_validator(mode="after")
    def _something(self):
        if not self.model_fields_set:
            raise ValueError("请至少修改一项")
        if any(getattr(self, name) is None for name in self.model_fields_set):
            raise ValueError("修改的内容不能为空")
        return self


def file(staff: Staff, fields: ProposalFields) -> Proposal:
    session = congress.get_session(fields.session_id)
    policy.ensure_representative(staff, session.term_id)
    congress.ensure_window_open(lock_session(session.id, shared=True), "提交提案")
    proposal = Proposal(session_id=session.id, author_id=staff.id, submitted_at=clock.now(),
                        **fields.model_dump(exclude={"session_id"}))
    db.session.add(proposal)
    db.session.flush()
    record_step(proposal, "filed", staff)
    return proposal


def edit(staff: Staff, proposal_id: int, fields: EditFields) -> Proposal:
    proposal = lock(get_proposal(staff, proposal_id))
    policy.ensure_author(staff, proposal)
    ensure_editable(proposal, "修改")
    changed = fields.model_dump(exclude_unset=True)
    for name, value in changed.items():
        setattr(proposal, name, value)
    record_step(proposal, "edited", staff, fields=sorted(changed))
    return proposal


def withdraw(staff: Staff, proposal_id: int) -> Proposal:
    proposal = lock(get_proposal(staff, proposal_id))
    policy.ensure_author(staff, proposal)
    _ensure_unseconded(proposal, "撤回")
    transition(proposal, (ProposalStatus.SUBMITTED,), ProposalStatus.WITHDRAWN, "撤回",
               Proposal.first_seconded_at.is_(None), closed_at=clock.now())
    record_step(proposal, "withdrawn", staff)
    return proposal


def ensure_editable(proposal: Proposal, action: str) -> None:
    """The text and files are the author's until someone seconds them, and only while the window is open."""
    _ensure_unseconded(proposal, action)
    congress.ensure_window_open(proposal.session, action)


def _ensure_unseconded(proposal: Proposal, action: str) -> None:
    if proposal.status is not ProposalStatus.SUBMITTED:
        raise Conflict("proposal_state", f"该提案当前为“{STATUS_LABELS[proposal.status]}”，不能{action}")
    if proposal.first_seconded_at is not None:
        raise Conflict("proposal_locked", f"已有代表附议过，提案内容已锁定（附议的是这一版本），不能{action}；"
                                          "如需撤回请联系提案工作委员会")


def second(staff: Staff, proposal_id: int) -> Proposal:
    proposal = lock(get_proposal(staff, proposal_id))
    policy.ensure_may_second(staff, proposal)
    _ensure_collecting(proposal, "附议")
    try:
        with db.session.begin_nested():
            db.session.execute(insert(Second).values(proposal_id=proposal.id, staff_id=staff.id,
                                                     created_at=clock.now()))
    except IntegrityError:
        raise Conflict("already_seconded", "您已附议该提案") from None
    proposal.seconds += 1            # read under the row lock: the count as the last seconder committed it
    if proposal.first_seconded_at is None:
        proposal.first_seconded_at = clock.now()
    step = record_step(proposal, "seconded", staff)
    tell(f"proposal:{proposal.id}:{step.id}", {proposal.author_id}, proposal,
         f"{staff.name}附议了您的提案，目前共 {proposal.seconds} 人附议。", title="您的提案有新的附议")
    return proposal


def withdraw_second(staff: Staff, proposal_id: int) -> Proposal:
    proposal = lock(get_proposal(staff, proposal_id))
    _ensure_collecting(proposal, "撤回附议")
    removed = db.session.execute(delete(Second).where(Second.proposal_id == proposal.id,
                                                      Second.staff_id == staff.id))
    if not removed.rowcount:
        raise Conflict("not_seconded", "您没有附议该提案")
    proposal.seconds -= 1
    record_step(proposal, "second_withdrawn", staff)
    return proposal


def _ensure_collecting(proposal: Proposal, action: str) -> None:
    """Seconds are given and withdrawn only while the window is open: at its close they are final."""
    if proposal.status is not ProposalStatus.SUBMITTED:
        raise Conflict("seconds_final", f"该提案当前为“{STATUS_LABELS[proposal.status]}”，附议已截止，不能{action}")
    congress.ensure_window_open(proposal.session, action)


def seconders(proposal: Proposal) -> list[Second]:
    return list(db.session.scalars(select(Second).where(Second.proposal_id == proposal.id).order_by(Second.id)))
