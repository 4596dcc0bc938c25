"""Handling (办理): 交办 to a lead department (主办) and co-handlers (协办) with a deadline; 退办 by a department
within the configured days (the committee reassigns); each co-handler's opinion to the lead; the lead's answer
(答复, graded A–D); reminders (督办) to every department still owing its part; the committee's overdue list."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.orm import lazyload

from app import clock
from app.errors import Conflict, Invalid, NotFound
from app.extensions import db
from app.services import calendar, departments, notifications, policy
from app.services.proposals.records import (
    GRADE_LABELS, GradeChoice, ReasonFields, committee_members, ensure_has_liaison, get_proposal, liaisons_of, lock, record_step,
    settings, tell, transition,
)
from app.services.state_changes import move_status
from app.validation import Day, Id
from models import Assignment, AssignmentStatus, Notice, Proposal, ProposalStatus, Staff

PENDING = (AssignmentStatus.PENDING,)


class AssignFields(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"lead_department_id": 2, "co_department_ids": [5], "deadline": "2027-06-30"}]})
    lead_department_id: Id = Field(description="主办部门")
    co_department_ids: list[Id] = Field(default_factory=list, max_length=10, description="协办部门")
    deadline: Day | None = Field(default=None, description="办理期限；不填为交办之日起三个月（可配置）")

    @model_validator(mode="after")
    def _distinct(self):
        if len(set(self.co_department_ids)) != len(self.co_department_ids) or \
                self.lead_department_id in self.co_department_ids:
            raise ValueError("主办和协办部门不能重复")
        return self


class OpinionFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"text": "同意开设，场地由附属小学提供"}]})
    text: str = Field(min_length=1, max_length=5000, description="协办意见（给主办部门）")


class AnswerFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"text": "经研究，今年 7 月起开设暑期托管班。", "grade": "A"}]})
    text: str = Field(min_length=1, max_length=10000, description="答复内容")
    grade: GradeChoice = Field(description="A 已解决 / B 正在解决 / C 列入规划 / D 因条件限制暂无法解决")


# --- 交办 -------------------------------------------------------------------------------------------------------

def assign(member: Staff, proposal_id: int, fields: AssignFields) -> Proposal:
    policy.ensure_on_committee(member)
    proposal = lock(get_proposal(member, proposal_id))     # two reassignments at once: one after the other
    deadline = fields.deadline or calendar.months_after(clock.today(), settings().handling_months)
    if deadline <= clock.today():
        raise Invalid("deadline_passed", "办理期限必须晚于今天")
    for department_id in (fields.lead_department_id, *fields.co_department_ids):
        ensure_has_liaison(departments.get_department(department_id))
    reassigning = proposal.status is ProposalStatus.HANDLING or _handled_before(proposal.id)
    transition(proposal, (ProposalStatus.ACCEPTED, ProposalStatus.HANDLING), ProposalStatus.HANDLING, "交办",
               round=max(proposal.round, 1))
    if reassigning:              # 重新交办 (a department sent it back, or the committee changes the departments)
        _supersede_pending(proposal.id)
    start_handling(proposal, member, fields.lead_department_id, fields.co_department_ids, deadline,
                   again=reassigning)
    return proposal


def _handled_before(proposal_id: int) -> bool:
    return db.session.scalar(select(Assignment.id).where(Assignment.proposal_id == proposal_id).limit(1)) is not None


def start_handling(proposal: Proposal, actor: Staff | None, lead_id: int, co_ids: list[int], deadline: date,
                   again: bool = False) -> None:
    """One 交办 of the proposal's current round: a row per department, each told to its liaisons. `again`: it
    replaces an earlier one (重新交办), and the people told hear so."""
    handling = (db.session.scalar(select(func.max(Assignment.handling)).where(
        Assignment.proposal_id == proposal.id)) or 0) + 1
    rows = [Assignment(proposal_id=proposal.id, handling=handling, round=proposal.round, department_id=did,
                       lead=did == lead_id, deadline=deadline, assigned_at=clock.now(),
                       assigned_by_id=actor.id if actor else None) for did in (lead_id, *co_ids)]
    db.session.add_all(rows)
    db.session.flush()
    lead = departments.get_department(lead_id)
    for row in rows:
        part = "主办" if row.lead else f"协办（主办：{lead.name}）"
        tell(f"proposal-assignment:{row.id}", liaisons_of(row.department_id), proposal,
             f"交贵部门{part}，办理期限 {deadline:%Y-%m-%d}。", title="提案交办通知")
    record_step(proposal, "assigned", actor, f"{'已重新交办，' if again else '已'}交{lead.name}主办，"
                f"办理期限 {deadline:%Y-%m-%d}。",
                round=proposal.round, handling=handling, lead=lead_id, co=list(co_ids), deadline=deadline.isoformat())


def current_assignments(proposal_id: int) -> list[Assignment]:
    """The assignments of the proposal's latest 交办."""
    latest = select(func.max(Assignment.handling)).where(Assignment.proposal_id == proposal_id).scalar_subquery()
    return list(db.session.scalars(select(Assignment).where(
        Assignment.proposal_id == proposal_id, Assignment.handling == latest).order_by(Assignment.id)))


def all_assignments(proposal_id: int) -> list[Assignment]:
    return list(db.session.scalars(select(Assignment).where(Assignment.proposal_id == proposal_id)
                                   .order_by(Assignment.id)))


def part_of(liaison: Staff, proposal_id: int, assignment_id: int) -> tuple[Proposal, Assignment]:
    proposal = get_proposal(liaison, proposal_id)
    assignment = db.session.get(Assignment, assignment_id)
    if assignment is None or assignment.proposal_id != proposal.id:
        raise NotFound("找不到该交办记录", code="assignment_not_found")
    policy.ensure_handles(liaison, assignment.department_id)
    if proposal.status is not ProposalStatus.HANDLING or assignment.status is not AssignmentStatus.PENDING:
        raise Conflict("assignment_state", "该交办已办理、已退办或已结束，不能再操作")
    return proposal, assignment


def _finish_part(assignment: Assignment, status: AssignmentStatus, **values) -> None:
    if move_status(assignment, PENDING, status, **values) is not None:
        raise Conflict("assignment_state", "该交办已由他人办理或退办")


def _supersede_pending(proposal_id: int) -> None:
    """What no department owes any more: the round was answered, sent back by its lead, or reassigned."""
    db.session.execute(update(Assignment).where(
        Assignment.proposal_id == proposal_id, Assignment.status == AssignmentStatus.PENDING)
        .values(status=AssignmentStatus.SUPERSEDED).execution_options(synchronize_session=False))


# --- a department's part ----------------------------------------------------------------------------------------

def send_back(liaison: Staff, proposal_id: int, assignment_id: int, fields: ReasonFields) -> Proposal:
    """退办 within `return_within_days` of the 交办. The lead's sends the proposal back to the committee to be
    reassigned; a co-handler's only drops that department from the round."""
    proposal, assignment = part_of(liaison, proposal_id, assignment_id)
    days = settings().return_within_days
    if clock.local().date() > clock.local(assignment.assigned_at).date() + timedelta(days=days):
        raise Conflict("return_window_passed", f"交办已超过 {days} 天，不能退办，请与提案工作委员会联系")
    _finish_part(assignment, AssignmentStatus.RETURNED, return_reason=fields.reason, returned_at=clock.now(),
                 done_by_id=liaison.id)
    name = assignment.department.name
    if assignment.lead:
        transition(proposal, (ProposalStatus.HANDLING,), ProposalStatus.ACCEPTED, "退办")
        _supersede_pending(assignment.proposal_id)
        step = record_step(proposal, "returned", liaison, f"{name}退办，提案工作委员会将重新交办。",
                           department=name, reason=fields.reason)
    else:
        step = record_step(proposal, "co_returned", liaison, department=name, reason=fields.reason)
    tell(f"proposal:{proposal.id}:{step.id}:committee", committee_members(), proposal,
         f"{name}退办（{'主办' if assignment.lead else '协办'}），原因：{fields.reason}", title="提案退办")
    return proposal


def give_opinion(liaison: Staff, proposal_id: int, assignment_id: int, fields: OpinionFields) -> Proposal:
    proposal, assignment = part_of(liaison, proposal_id, assignment_id)
    if assignment.lead:
        raise Conflict("lead_answers", "主办部门请直接答复")
    _finish_part(assignment, AssignmentStatus.DONE, text=fields.text, done_at=clock.now(), done_by_id=liaison.id)
    step = record_step(proposal, "co_opinion", liaison, department=assignment.department.name)
    lead = next(a for a in current_assignments(proposal.id) if a.lead)
    tell(f"proposal:{proposal.id}:{step.id}:lead", liaisons_of(lead.department_id), proposal,
         f"{assignment.department.name}已提交协办意见，请在答复时统筹。", title="协办意见")
    return proposal


def answer(liaison: Staff, proposal_id: int, assignment_id: int, fields: AnswerFields) -> Proposal:
    proposal, assignment = part_of(liaison, proposal_id, assignment_id)
    if not assignment.lead:
        raise Conflict("co_gives_opinion", "协办部门请提交协办意见，由主办部门答复")
    waiting = [a.department.name for a in current_assignments(proposal.id)
               if not a.lead and a.status is AssignmentStatus.PENDING]
    if waiting:
        raise Conflict("opinions_pending", f"协办部门（{'、'.join(waiting)}）尚未提交协办意见，请收到意见后再答复；"
                                           "如协办部门无法办理，请其退办或请提案工作委员会重新交办")
    _finish_part(assignment, AssignmentStatus.DONE, text=fields.text, grade=fields.grade, done_at=clock.now(),
                 done_by_id=liaison.id)
    transition(proposal, (ProposalStatus.HANDLING,), ProposalStatus.ANSWERED, "答复", answered_at=clock.now())
    _supersede_pending(assignment.proposal_id)
    record_step(proposal, "answered", liaison,
                f"{assignment.department.name}已答复（{GRADE_LABELS[fields.grade]}）。请提案人在 "
                f"{settings().rate_within_days} 天内评价是否满意。", department=assignment.department.name,
                grade=fields.grade.value, round=proposal.round)
    return proposal


def latest_answer(proposal_id: int) -> Assignment | None:
    return db.session.scalar(select(Assignment).where(
        Assignment.proposal_id == proposal_id, Assignment.lead.is_(True), Assignment.grade.is_not(None))
        .order_by(Assignment.id.desc()).limit(1))


def assigned_to(liaison: Staff) -> list[Assignment]:
    """A liaison's work: every assignment of their departments, latest first."""
    mine = policy.liaison_departments(liaison)
    policy.ensure_liaison(liaison)
    return list(db.session.scalars(select(Assignment).where(Assignment.department_id.in_(mine))
                                   .order_by(Assignment.id.desc()).limit(500)))


def overdue(member: Staff) -> list[Assignment]:
    """The parts still owed after their deadline, oldest deadline first."""
    policy.ensure_on_committee(member)
    return list(db.session.scalars(select(Assignment).join(Proposal, Proposal.id == Assignment.proposal_id).where(
        Proposal.status == ProposalStatus.HANDLING, Assignment.status == AssignmentStatus.PENDING,
        Assignment.deadline < clock.today()).order_by(Assignment.deadline, Assignment.id)))


# --- 督办 (scheduler) ----------------------------------------------------------------------------------------

def reminder_occasion(assignment_id: int, offset: int) -> str:
    return f"proposal-reminder:{assignment_id}:{offset}"


def reminder_due_at(assignment: Assignment, offset: int) -> datetime:
    hours, minutes = map(int, settings().reminder_time.split(":"))
    return datetime.combine(assignment.deadline + timedelta(days=offset), time(hours, minutes), clock.zone())


def send_reminders(now: datetime) -> int:
    """To the liaisons of each department still owing its part: at each offset from the round's deadline, once.
    After downtime only the latest offset passed is sent (one catch-up, not one per missed day), and an offset
    that fell before the 交办 is never sent. Each assignment's row is locked first, so two runs at once (two
    schedulers, or one without the leader lock) send each reminder exactly once."""
    offsets = settings().reminder_offsets
    last_day = clock.local(now).date() - timedelta(days=min(offsets))
    owing = db.session.scalars(select(Assignment.id).join(Proposal, Proposal.id == Assignment.proposal_id).where(
        Proposal.status == ProposalStatus.HANDLING, Assignment.status == AssignmentStatus.PENDING,
        Assignment.deadline <= last_day).order_by(Assignment.id)).all()
    return sum(_remind(assignment_id, offsets, now) for assignment_id in owing)


def _remind(assignment_id: int, offsets: list[int], now: datetime) -> int:
    assignment = db.session.scalar(select(Assignment).where(Assignment.id == assignment_id).options(lazyload("*"))
                                   .with_for_update().execution_options(populate_existing=True))
    if assignment.status is not AssignmentStatus.PENDING:
        return 0
    due = [o for o in offsets if assignment.assigned_at <= reminder_due_at(assignment, o) <= now]
    if not due:
        return 0
    latest = max(due)
    sent = db.session.scalar(select(Notice.id).where(Notice.occasion.in_(
        [reminder_occasion(assignment.id, o) for o in offsets if o >= latest])).with_for_update(read=True).limit(1))
    if sent is not None:
        return 0
    proposal = db.session.get(Proposal, assignment.proposal_id)
    part = "答复" if assignment.lead else "协办意见"
    when = "已超过办理期限" if latest > 0 else ("今天到期" if latest == 0 else f"将于 {-latest} 天后到期")
    notifications.notify_people(
        "service", reminder_occasion(assignment.id, latest), liaisons_of(assignment.department_id), "提案督办",
        f"提案 {proposal.number}《{proposal.title}》{when}（期限 {assignment.deadline:%Y-%m-%d}），请尽快提交{part}。",
        data={"summary": f"提案{when}", "proposal_id": proposal.id})
    return 1
