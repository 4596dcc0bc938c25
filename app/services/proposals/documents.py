"""The session's documents for the next congress: the proposal compilation (提案汇编: every accepted proposal with
its answer) and the handling report's table (number, title, lead department, grade, satisfaction), each as XLSX and
as a printable page; and the one line a work report states ("共立案64项，满意59项，基本满意5项")."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from flask import render_template
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.services import policy, spreadsheets
from app.services.proposals import congress
from app.services.proposals.records import (
    CATEGORY_LABELS, GRADE_LABELS, NUMBERED, SATISFACTION_LABELS, STATUS_LABELS,
)
from models import Assignment, CongressSession, CoProposer, Proposal, Satisfaction, Staff


@dataclass
class Entry:
    proposal: Proposal
    co_proposers: list[str]
    lead: str
    co_handlers: list[str]
    answer: Assignment | None

    @property
    def grade(self) -> str:
        return GRADE_LABELS[self.answer.grade] if self.answer and self.answer.grade else ""

    @property
    def satisfaction(self) -> str:
        """The rating; before it, the state (a later round after 不满意 says so)."""
        found, proposal = self.proposal.satisfaction, self.proposal
        if found:
            return SATISFACTION_LABELS[found]
        later_round = f"（不满意，第 {proposal.round} 轮办理）" if proposal.round > 1 else ""
        return STATUS_LABELS[proposal.status] + later_round


def entries(officer: Staff, session_id: int) -> tuple[CongressSession, list[Entry]]:
    """Every accepted proposal of the session in number order, in four queries whatever their number."""
    policy.ensure_manages_congress(officer)
    session = congress.get_session(session_id)
    proposals = list(db.session.scalars(select(Proposal).where(
        Proposal.session_id == session.id, Proposal.status.in_(NUMBERED)).order_by(Proposal.number)))
    ids = [p.id for p in proposals]
    co_proposers: dict[int, list[str]] = {}
    assignments: dict[int, list[Assignment]] = {}
    if ids:
        for proposal_id, name in db.session.execute(select(CoProposer.proposal_id, Staff.name).join(
                Staff, Staff.id == CoProposer.staff_id).where(CoProposer.proposal_id.in_(ids)).order_by(CoProposer.id)):
            co_proposers.setdefault(proposal_id, []).append(name)
        for row in db.session.scalars(select(Assignment).where(Assignment.proposal_id.in_(ids))
                                      .order_by(Assignment.handling, Assignment.id)):
            assignments.setdefault(row.proposal_id, []).append(row)
    return session, [_entry(p, co_proposers.get(p.id, []), assignments.get(p.id, [])) for p in proposals]


def _entry(proposal: Proposal, co_proposers: list[str], rows: list[Assignment]) -> Entry:
    latest = [a for a in rows if a.handling == rows[-1].handling] if rows else []
    answers = [a for a in rows if a.lead and a.grade is not None]
    return Entry(proposal, co_proposers, next((a.department.name for a in latest if a.lead), ""),
                 [a.department.name for a in latest if not a.lead], answers[-1] if answers else None)


def summary_line(found: list[Entry]) -> str:
    counts = Counter(e.proposal.satisfaction for e in found)
    line = (f"共立案{len(found)}项，满意{counts[Satisfaction.SATISFIED]}项，"
            f"基本满意{counts[Satisfaction.BASICALLY_SATISFIED]}项")
    if counts[Satisfaction.DISSATISFIED]:
        line += f"，不满意{counts[Satisfaction.DISSATISFIED]}项"
    if counts[Satisfaction.UNRATED]:
        line += f"，未评价{counts[Satisfaction.UNRATED]}项"
    if counts[None]:
        line += f"，尚未办结{counts[None]}项"
    return line


COMPILATION_HEADERS = ["立案号", "案由", "类别", "提案人", "共同提案人", "附议人数", "理由", "建议", "主办部门", "协办部门",
                       "答复", "答复等级", "答复日期"]
REPORT_HEADERS = ["立案号", "案由", "提案人", "主办部门", "答复等级", "满意度"]


def compilation_xlsx(officer: Staff, session_id: int) -> tuple[CongressSession, bytes]:
    session, found = entries(officer, session_id)
    rows = [[e.proposal.number, e.proposal.title, CATEGORY_LABELS[e.proposal.category], e.proposal.author.name,
             "、".join(e.co_proposers), e.proposal.seconds, e.proposal.reasons, e.proposal.measures, e.lead,
             "、".join(e.co_handlers), e.answer.text if e.answer else "", e.grade,
             clock.local_cell(e.answer.done_at) if e.answer else None] for e in found]
    return session, spreadsheets.workbook("提案汇编", COMPILATION_HEADERS, rows,
                                          [10, 30, 10, 10, 16, 8, 40, 40, 14, 16, 50, 16, 16])


def report_xlsx(officer: Staff, session_id: int) -> tuple[CongressSession, bytes]:
    session, found = entries(officer, session_id)
    rows = [[e.proposal.number, e.proposal.title, e.proposal.author.name, e.lead, e.grade, e.satisfaction]
            for e in found]
    rows.append([summary_line(found)])
    return session, spreadsheets.workbook("提案办理情况", REPORT_HEADERS, rows, [10, 40, 10, 16, 20, 12])


def printable(officer: Staff, session_id: int, kind: str) -> str:
    """The same documents as a page to print (A4, one proposal per page in the compilation)."""
    session, found = entries(officer, session_id)
    return render_template(f"proposals/{kind}.html", session=session, entries=found, summary=summary_line(found),
                           categories=CATEGORY_LABELS, local_cell=clock.local_cell)
