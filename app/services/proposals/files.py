"""A proposal's files: the author's (filed with it, until the first second) and the lead department's with its
answer (shown to members once the answer is given; to the committee and the handling departments before)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from app.errors import Conflict, NotFound
from app.extensions import db
from app.services import attachments, policy
from app.services.proposals import filing, handling
from app.services.proposals.records import get_proposal, lock, record_step
from models import AssignmentStatus, Proposal, ProposalAttachment, Staff

MAX_FILES = 10         # per proposal, and per answer


def attach_to_proposal(staff: Staff, proposal_id: int, filename: str, data: bytes) -> ProposalAttachment:
    proposal = lock(get_proposal(staff, proposal_id))
    policy.ensure_author(staff, proposal)
    filing.ensure_editable(proposal, "添加附件")
    return _store(proposal, None, staff, filename, data)


def attach_to_answer(liaison: Staff, proposal_id: int, assignment_id: int, filename: str,
                     data: bytes) -> ProposalAttachment:
    proposal, assignment = handling.part_of(liaison, proposal_id, assignment_id)
    if not assignment.lead:
        raise Conflict("co_gives_opinion", "协办部门请提交协办意见，附件随主办部门的答复提交")
    return _store(proposal, assignment.id, liaison, filename, data)


def _store(proposal: Proposal, assignment_id: int | None, staff: Staff, filename: str,
           data: bytes) -> ProposalAttachment:
    held = db.session.scalar(select(func.count()).select_from(ProposalAttachment).where(
        ProposalAttachment.proposal_id == proposal.id, ProposalAttachment.assignment_id.is_(None)
        if assignment_id is None else ProposalAttachment.assignment_id == assignment_id))
    if held >= MAX_FILES:
        raise Conflict("too_many_files", f"最多上传 {MAX_FILES} 个附件")
    content_type, key = attachments.checked_upload(data)
    attachments.write_after_commit(key, data)
    row = ProposalAttachment(proposal_id=proposal.id, assignment_id=assignment_id,
                             filename=Path(filename or "附件").name[:200] or key, content_type=content_type,
                             size=len(data), storage_key=key, uploaded_by_id=staff.id)
    db.session.add(row)
    db.session.flush()
    record_step(proposal, "attached", staff, file=row.id, answer=assignment_id is not None)
    return row


def files_of(staff: Staff, proposal: Proposal) -> list[ProposalAttachment]:
    """The files the caller may open: the proposal's, and an answer's once given (before, the handlers')."""
    rows = db.session.scalars(select(ProposalAttachment).where(ProposalAttachment.proposal_id == proposal.id)
                              .order_by(ProposalAttachment.id)).all()
    if all(row.assignment_id is None for row in rows):
        return list(rows)
    handler = policy.sees_handling(staff, proposal.id)
    answered = {a.id for a in handling.all_assignments(proposal.id) if a.status is AssignmentStatus.DONE}
    return [row for row in rows if row.assignment_id is None or handler or row.assignment_id in answered]


def read(staff: Staff, proposal_id: int, file_id: int) -> tuple[ProposalAttachment, Path]:
    proposal = get_proposal(staff, proposal_id)
    found = next((row for row in files_of(staff, proposal) if row.id == file_id), None)
    if found is None:
        raise NotFound("找不到该附件", code="attachment_not_found")
    return found, attachments.path_of(found)
