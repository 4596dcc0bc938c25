"""Retiree visits (走访慰问): before Spring Festival officers visit every retiree. A union officer makes the year's plan
from the roster; each retiree is assigned to an officer, then marked visited — the day, the money and gift given, a
note (sealed: it is about their health and family as often as not) — or skipped with the reason (died, moved).
Money handed over is paid there and then; what an officer advanced and marks for reimbursement goes into the next
month's batch (app.services.condolences.payments). Officers see the retirees of their sub-unions, union officers
all; progress is counted per sub-union.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.extensions import db
from app.services import audit, policy, roster, sealing
from app.services.state_changes import move_status
from app.validation import whole
from models import RetireeVisit, Staff, StaffStatus, VisitPlan, VisitStatus

STATUS_LABELS = {VisitStatus.PLANNED: "待走访", VisitStatus.VISITED: "已走访", VisitStatus.SKIPPED: "不再走访"}
VISIT_NOT_FOUND = ("找不到该走访记录", "visit_not_found")
TABLE = "retiree_visits"


class PlanFields(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"year": 2027}]})
    year: whole(ge=2000, le=2099) = Field(description="年度")


class AssignFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"employee_no": "000003"}]})
    employee_no: str = Field(min_length=1, max_length=32, description="负责走访的工会干部的工号")


class VisitedFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"visited_on": "2027-01-20", "money_fen": 50000, "gift": "米、油各一份", "note": "身体尚好，子女在外地",
         "reimburse": True}]})
    visited_on: date = Field(description="走访日期")
    money_fen: whole(le=10_000_000) = Field(default=0, description="当面送出的慰问金（分）")
    gift: str | None = Field(default=None, min_length=1, max_length=100, description="送出的慰问品")
    note: str | None = Field(default=None, min_length=1, max_length=1000, description="走访情况（加密保存）")
    reimburse: bool = Field(default=False, description="慰问金由走访人垫付，需随月度批次报销")

    @model_validator(mode="after")
    def _reimburse_money(self):
        if self.reimburse and not self.money_fen:
            raise ValueError("没有慰问金，不需要报销")
        return self


class SkipFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"reason": "已迁居外地，由子女代为致谢"}]})
    reason: str = Field(min_length=1, max_length=100, description="不再走访的原因（去世、迁居等）")


def _ensure_plans(officer: Staff) -> None:
    if not policy.reviews_all_condolences(officer):
        raise Forbidden("仅校工会工作人员可以制定走访计划", code="union_officer_only")


def create_plan(officer: Staff, fields: PlanFields) -> VisitPlan:
    """The year's plan: every retiree of the roster (living), each to be visited; made once a year."""
    _ensure_plans(officer)
    plan = VisitPlan(year=fields.year, created_by_id=officer.id)
    try:
        with db.session.begin_nested():
            db.session.add(plan)
    except IntegrityError:
        raise Conflict("plan_exists", f"{fields.year} 年的走访计划已经制定") from None
    retirees = db.session.scalars(select(Staff.id).where(Staff.status == StaffStatus.RETIRED,
                                                         Staff.died_on.is_(None)).order_by(Staff.id)).all()
    if retirees:
        db.session.execute(insert(RetireeVisit), [{"plan_id": plan.id, "staff_id": staff_id,
                                                   "status": VisitStatus.PLANNED} for staff_id in retirees])
    audit.record(officer, "visit.plan", "visit_plan", plan.id, year=fields.year, retirees=len(retirees))
    return plan


def get_plan(officer: Staff, year: int) -> VisitPlan:
    if not policy.is_officer(officer) or policy.condolence_scope(officer) == set():
        raise Forbidden("走访计划只由分工会和校工会的工会干部查看", code="condolence_reviewers_only")
    plan = db.session.scalar(select(VisitPlan).where(VisitPlan.year == year))
    if plan is None:
        raise NotFound(f"{year} 年还没有走访计划", code="plan_not_found")
    return plan


def visits_of(officer: Staff, plan: VisitPlan) -> list[RetireeVisit]:
    """The plan's retirees an officer looks after: their sub-unions' (all, for union officers)."""
    scope = policy.condolence_scope(officer)
    stmt = select(RetireeVisit).where(RetireeVisit.plan_id == plan.id)
    if scope is not None:
        stmt = stmt.where(RetireeVisit.staff_id.in_(select(Staff.id).where(Staff.sub_union_id.in_(scope))))
    return list(db.session.scalars(stmt.order_by(RetireeVisit.id)).unique())


def get_visit(officer: Staff, year: int, visit_id: int) -> RetireeVisit:
    plan = get_plan(officer, year)
    visit = db.session.get(RetireeVisit, visit_id)
    scope = policy.condolence_scope(officer)
    if visit is None or visit.plan_id != plan.id or (scope is not None and visit.retiree.sub_union_id not in scope):
        raise NotFound(*VISIT_NOT_FOUND)
    return visit


def read_visit(officer: Staff, year: int, visit_id: int) -> RetireeVisit:
    """Opening a visit's detail (its note) is audited, as a condolence request's is."""
    visit = get_visit(officer, year, visit_id)
    audit.record(officer, "visit.read", TABLE, visit.id)
    return visit


def assign(officer: Staff, year: int, visit_id: int, fields: AssignFields) -> RetireeVisit:
    """To an officer who looks after the retiree's sub-union (or a union officer)."""
    visit = get_visit(officer, year, visit_id)
    visitor = roster.get_staff(fields.employee_no)
    scope = policy.condolence_scope(visitor) if policy.is_officer(visitor) else set()
    if scope is not None and visit.retiree.sub_union_id not in scope:
        raise Invalid("not_their_officer", "只能指派该退休教职工所在分工会的工会干部或校工会干部")
    visit.officer = visitor
    audit.record(officer, "visit.assign", TABLE, visit.id, officer=visitor.employee_no)
    return visit


def record_visit(officer: Staff, year: int, visit_id: int, fields: VisitedFields) -> RetireeVisit:
    visit = get_visit(officer, year, visit_id)
    _ensure_planned(visit, "登记走访")
    if fields.visited_on > clock.today():
        raise Invalid("visited_in_the_future", "走访日期不能晚于今天")
    note = sealing.seal_text(fields.note, sealing.associated_data(TABLE, visit.id, "note"))
    _move(visit, VisitStatus.VISITED, "登记走访", visited_on=fields.visited_on, money_fen=fields.money_fen,
          gift=fields.gift, note_sealed=note, reimburse=fields.reimburse, recorded_by_id=officer.id,
          recorded_at=clock.now(), officer_id=visit.officer_id or officer.id)
    audit.record(officer, "visit.visited", TABLE, visit.id, money_fen=fields.money_fen, reimburse=fields.reimburse)
    return visit


def skip(officer: Staff, year: int, visit_id: int, fields: SkipFields) -> RetireeVisit:
    visit = get_visit(officer, year, visit_id)
    _move(visit, VisitStatus.SKIPPED, "标记不再走访", skip_reason=fields.reason, recorded_by_id=officer.id,
          recorded_at=clock.now())
    audit.record(officer, "visit.skip", TABLE, visit.id)
    return visit


def _move(visit: RetireeVisit, new: VisitStatus, action: str, **values) -> None:
    """From planned only, once: of two officers recording at once, one does."""
    now = move_status(visit, (VisitStatus.PLANNED,), new, **values)
    if now is not None:
        raise Conflict("visit_recorded", f"该走访已是“{STATUS_LABELS[now]}”，不能再{action}")


def _ensure_planned(visit: RetireeVisit, action: str) -> None:
    if visit.status is not VisitStatus.PLANNED:
        raise Conflict("visit_recorded", f"该走访已是“{STATUS_LABELS[visit.status]}”，不能再{action}")


def note_of(visit: RetireeVisit) -> str | None:
    return sealing.open_text(visit.note_sealed, sealing.associated_data(TABLE, visit.id, "note"))


@dataclass
class Progress:
    sub_union: str
    retirees: int = 0
    visited: int = 0
    skipped: int = 0
    money_fen: int = 0
    gifts: int = 0


def progress(visits: list[RetireeVisit]) -> list[Progress]:
    found: dict[str, Progress] = {}
    for visit in visits:
        name = visit.retiree.sub_union.name if visit.retiree.sub_union else "（未分配分工会）"
        row = found.setdefault(name, Progress(name))
        row.retirees += 1
        row.visited += visit.status is VisitStatus.VISITED
        row.skipped += visit.status is VisitStatus.SKIPPED
        row.money_fen += visit.money_fen if visit.status is VisitStatus.VISITED else 0
        row.gifts += bool(visit.gift) and visit.status is VisitStatus.VISITED
    return list(found.values())


@dataclass
class VisitFigures:
    visited: int
    money_fen: int
    gifts: dict[str, int]


def figures(start: date, end: date) -> VisitFigures:
    """For the work report: retirees visited in [start, end] (by the day of the visit) and what they were given."""
    visits = list(db.session.scalars(select(RetireeVisit).where(
        RetireeVisit.status == VisitStatus.VISITED, RetireeVisit.visited_on >= start,
        RetireeVisit.visited_on <= end)).unique())
    gifts: dict[str, int] = {}
    for visit in visits:
        if visit.gift:
            gifts[visit.gift] = gifts.get(visit.gift, 0) + 1
    return VisitFigures(len(visits), sum(v.money_fen for v in visits), gifts)
