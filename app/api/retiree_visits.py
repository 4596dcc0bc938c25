"""Retiree visits (走访慰问) under /officer/visit-plans: the year's plan, each retiree assigned, visited or skipped,
and the progress per sub-union. Answers are `Cache-Control: no-store`; a visit's note appears only in its detail."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, g
from pydantic import AliasPath, BaseModel, Field, computed_field

from app.api.endpoint import READS_RECORDS, AuthLevel, Merged, endpoint, never_cached
from app.services.condolences import visits
from app.services.condolences.visits import AssignFields, PlanFields, SkipFields, VisitedFields
from app.validation import BeijingTime
from models import VisitStatus

bp = Blueprint("retiree_visits", __name__)
OFFICER = AuthLevel.OFFICER

never_cached(bp)


class VisitOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    employee_no: str = Field(validation_alias=AliasPath("retiree", "employee_no"))
    name: str = Field(validation_alias=AliasPath("retiree", "name"))
    sub_union: str | None = Field(default=None, validation_alias=AliasPath("retiree", "sub_union", "name"))
    officer: str | None = Field(default=None, validation_alias=AliasPath("officer", "name"), description="走访人")
    status: VisitStatus
    visited_on: date | None
    money_fen: int
    gift: str | None
    reimburse: bool
    skip_reason: str | None

    @computed_field
    @property
    def status_label(self) -> str:
        return visits.STATUS_LABELS[self.status]


class VisitDetail(VisitOut):
    note: str | None = Field(description="走访情况（查看会被记录）")
    recorded_at: BeijingTime | None


class ProgressOut(BaseModel):
    model_config = READS_RECORDS
    sub_union: str
    retirees: int
    visited: int
    skipped: int
    money_fen: int
    gifts: int


class PlanOut(BaseModel):
    year: int
    visits: list[VisitOut]
    progress: list[ProgressOut] = Field(description="按分工会的进度")


def _plan(year: int) -> PlanOut:
    plan = visits.get_plan(g.staff, year)
    rows = visits.visits_of(g.staff, plan)
    return PlanOut(year=plan.year, visits=[VisitOut.model_validate(v) for v in rows],
                   progress=[ProgressOut.model_validate(p) for p in visits.progress(rows)])


@bp.post("/officer/visit-plans")
@endpoint("制定某年的退休教职工走访计划（名册中全部健在的退休教职工；校工会；每年一次）", auth=OFFICER, body=PlanFields,
          response=PlanOut, status=201, tags=("officer",))
def create_plan(body: PlanFields):
    visits.create_plan(g.staff, body)
    return _plan(body.year)


@bp.get("/officer/visit-plans/<int:year>")
@endpoint("走访计划：我负责范围内的退休教职工与按分工会的进度", auth=OFFICER, response=PlanOut, tags=("officer",))
def plan(year: int):
    return _plan(year)


@bp.get("/officer/visit-plans/<int:year>/visits/<int:visit_id>")
@endpoint("一次走访的详情（含走访情况；查看会被记录）", auth=OFFICER, response=VisitDetail, tags=("officer",))
def visit_detail(year: int, visit_id: int):
    visit = visits.read_visit(g.staff, year, visit_id)
    return VisitDetail.model_validate(Merged(visit, note=visits.note_of(visit)))


@bp.post("/officer/visit-plans/<int:year>/visits/<int:visit_id>/assign")
@endpoint("指派走访人（该分工会的工会干部或校工会干部）", auth=OFFICER, body=AssignFields, response=VisitOut,
          tags=("officer",))
def assign(year: int, visit_id: int, body: AssignFields):
    return VisitOut.model_validate(visits.assign(g.staff, year, visit_id, body))


@bp.post("/officer/visit-plans/<int:year>/visits/<int:visit_id>/visited")
@endpoint("登记已走访：日期、慰问金、慰问品、情况；垫付的慰问金可随月度批次报销", auth=OFFICER, body=VisitedFields,
          response=VisitOut, tags=("officer",))
def visited(year: int, visit_id: int, body: VisitedFields):
    return VisitOut.model_validate(visits.record_visit(g.staff, year, visit_id, body))


@bp.post("/officer/visit-plans/<int:year>/visits/<int:visit_id>/skip")
@endpoint("不再走访（去世、迁居等，写明原因）", auth=OFFICER, body=SkipFields, response=VisitOut, tags=("officer",))
def skip(year: int, visit_id: int, body: SkipFields):
    return VisitOut.model_validate(visits.skip(g.staff, year, visit_id, body))
