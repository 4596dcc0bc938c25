"""The congress's frame: terms (届) and their yearly sessions (年会) with the collection window (征集期), the
representatives of a term, the proposal committee, and each department's liaisons."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from app import clock
from app.errors import Conflict, Invalid, NotFound
from app.extensions import db
from app.services import audit, departments, policy, roster
from app.services.proposals.records import lock_session
from app.validation import Day, Id, Moment, line
from models import CongressSession, CongressTerm, Role, RoleAssignment, Staff

COLLECTION_DAYS_BEFORE_MEETING = 15


class TermFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"name": "第二届", "starts_on": "2024-03-01", "ends_on": "2029-02-28"}]})
    name: line(1, 32) = Field(description="届次，如 第二届")
    starts_on: Day
    ends_on: Day

    @model_validator(mode="after")
    def _ordered(self):
        if self.ends_on <= self.starts_on:
            raise ValueError("届期结束日期必须晚于开始日期")
        return self


class SessionFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"term_id": 1, "year": 2027, "name": "第二届教代会第四次会议", "meeting_on": "2027-03-20",
         "opens_at": "2027-02-20T08:00:00+08:00", "closes_at": "2027-03-05T18:00:00+08:00"}]})
    term_id: Id
    year: int = Field(ge=2000, le=2100)
    name: line(1, 64) = Field(description="如 第二届教代会第四次会议")
    meeting_on: Day
    opens_at: Moment | None = Field(default=None, description="征集开始；不填为现在")
    closes_at: Moment | None = Field(default=None, description="征集截止；不填为会议前 15 天")

    @model_validator(mode="after")
    def _window(self):
        if self.meeting_on.year != self.year:
            raise ValueError("会议日期须在该年度内")
        if self.opens_at and self.closes_at and self.closes_at <= self.opens_at:
            raise ValueError("征集截止时间必须晚于开始时间")
        return self


class SessionEditFields(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"closes_at": "2027-03-08T18:00:00+08:00"}]})
    name: line(1, 64) | None = None
    meeting_on: Day | None = None
    opens_at: Moment | None = None
    closes_at: Moment | None = None

    @model_validator(mode="after")
    def _something(self):
        if not self.model_fields_set or any(getattr(self, n) is None for n in self.model_fields_set):
            raise ValueError("请填写要修改的内容")
        return self


class PeopleFields(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"employee_nos": ["T001", "T002"]}]})
    employee_nos: list[str] = Field(min_length=1, max_length=2000, description="代表名单（工号）")


def all_terms(officer: Staff) -> list[CongressTerm]:
    policy.ensure_manages_congress(officer)
    return list(db.session.scalars(select(CongressTerm).order_by(CongressTerm.starts_on.desc())))


def get_term(term_id: int) -> CongressTerm:
    term = db.session.get(CongressTerm, term_id)
    if term is None:
        raise NotFound("找不到该届次", code="term_not_found")
    return term


def create_term(officer: Staff, fields: TermFields) -> CongressTerm:
    policy.ensure_manages_congress(officer)
    if db.session.scalar(select(CongressTerm.id).where(CongressTerm.name == fields.name)):
        raise Conflict("term_exists", f"已有“{fields.name}”")
    term = CongressTerm(**fields.model_dump())
    db.session.add(term)
    db.session.flush()
    audit.record(officer, "congress.term_create", "congress_term", term.id, name=term.name)
    return term


def all_sessions() -> list[CongressSession]:
    return list(db.session.scalars(select(CongressSession).order_by(CongressSession.meeting_on.desc())))


def get_session(session_id: int) -> CongressSession:
    session = db.session.get(CongressSession, session_id)
    if session is None:
        raise NotFound("找不到该次会议", code="session_not_found")
    return session


def create_session(officer: Staff, fields: SessionFields) -> CongressSession:
    """A session and its window: by default open from now until 15 days before the meeting."""
    policy.ensure_manages_congress(officer)
    get_term(fields.term_id)
    if db.session.scalar(select(CongressSession.id).where(CongressSession.term_id == fields.term_id,
                                                          CongressSession.year == fields.year)):
        raise Conflict("session_exists", f"本届 {fields.year} 年的会议已存在")
    opens_at = fields.opens_at or clock.now()
    closes_at = fields.closes_at or datetime.combine(
        fields.meeting_on - timedelta(days=COLLECTION_DAYS_BEFORE_MEETING), time(), clock.zone())
    session = CongressSession(term_id=fields.term_id, year=fields.year, name=fields.name,
                              meeting_on=fields.meeting_on, opens_at=opens_at, closes_at=closes_at)
    _check_dates(session)
    db.session.add(session)
    db.session.flush()
    audit.record(officer, "congress.session_create", "congress_session", session.id, name=session.name)
    return session


def edit_session(officer: Staff, session_id: int, fields: SessionEditFields) -> CongressSession:
    """Its name, meeting day or window, until the window has closed (then its seconds are final)."""
    policy.ensure_manages_congress(officer)
    session = lock_session(get_session(session_id).id)
    if session.window_closed_at is not None:
        raise Conflict("window_closed", "提案征集已结束，不能再修改会议和征集期")
    for name, value in fields.model_dump(exclude_unset=True).items():
        setattr(session, name, value)
    _check_dates(session)
    audit.record(officer, "congress.session_edit", "congress_session", session.id, fields=sorted(fields.model_fields_set))
    return session


def _check_dates(session: CongressSession) -> None:
    """The meeting falls in its year and its term; the window closes after it opens and before the meeting."""
    term = get_term(session.term_id)
    if session.meeting_on.year != session.year or not term.starts_on <= session.meeting_on <= term.ends_on:
        raise Invalid("outside_term", f"会议日期须在 {session.year} 年内，并在{term.name}届期"
                                      f"（{term.starts_on} 至 {term.ends_on}）之内")
    if not session.opens_at < session.closes_at <= datetime.combine(session.meeting_on, time(), clock.zone()):
        raise Invalid("invalid_window", "征集期须先开始后截止，并在会议日之前截止（默认为会议前 15 天）")


def window_open(session: CongressSession, now: datetime | None = None) -> bool:
    now = now or clock.now()
    return session.window_closed_at is None and session.opens_at <= now < session.closes_at


def ensure_window_open(session: CongressSession, action: str) -> None:
    if not window_open(session):
        raise Conflict("window_closed", f"不在提案征集期内（{clock.local_text(session.opens_at)} 至 "
                                        f"{clock.local_text(session.closes_at)}），不能{action}")


# --- people -----------------------------------------------------------------------------------------------------

def representatives(officer: Staff, term_id: int) -> list[Staff]:
    policy.ensure_manages_congress(officer)
    get_term(term_id)
    return list(db.session.scalars(select(Staff).join(RoleAssignment).where(
        RoleAssignment.role == Role.REPRESENTATIVE, RoleAssignment.term_id == term_id).order_by(Staff.employee_no)))


def add_representatives(officer: Staff, term_id: int, fields: PeopleFields) -> int:
    """A list of representatives (工号): every number must be on the roster, or nothing is granted."""
    policy.ensure_manages_congress(officer)
    get_term(term_id)
    wanted = list(dict.fromkeys(no.strip() for no in fields.employee_nos))
    found = {s.employee_no: s for s in db.session.scalars(select(Staff).where(Staff.employee_no.in_(wanted)))}
    missing = [no for no in wanted if no not in found]
    if missing:
        raise Invalid("unknown_staff", f"找不到这些工号：{'、'.join(missing[:20])}")
    return sum(roster.grant_role(found[no], Role.REPRESENTATIVE, actor=officer, term_id=term_id) for no in wanted)


def remove_representative(officer: Staff, term_id: int, employee_no: str) -> None:
    policy.ensure_manages_congress(officer)
    get_term(term_id)
    if not roster.revoke_role(roster.get_staff(employee_no), Role.REPRESENTATIVE, actor=officer, term_id=term_id):
        raise NotFound("该教职工不是本届代表", code="not_a_representative")


def set_committee_member(officer: Staff, employee_no: str, member: bool) -> None:
    """The proposal committee is named by the union's officers."""
    policy.ensure_union_officer(officer)
    change = roster.grant_role if member else roster.revoke_role
    change(roster.get_staff(employee_no), Role.PROPOSAL_COMMITTEE, actor=officer)


def committee(officer: Staff) -> list[Staff]:
    policy.ensure_manages_congress(officer)
    return list(db.session.scalars(select(Staff).join(RoleAssignment).where(
        RoleAssignment.role == Role.PROPOSAL_COMMITTEE).order_by(Staff.employee_no)))


def set_liaison(officer: Staff, department_id: int, employee_no: str, liaison: bool) -> None:
    """Liaisons answer for their department: named by the union's officers, not by the committee they answer to."""
    policy.ensure_union_officer(officer)
    departments.get_department(department_id)
    change = roster.grant_role if liaison else roster.revoke_role
    change(roster.get_staff(employee_no), Role.DEPARTMENT_LIAISON, actor=officer, department_id=department_id)


def departments_for(officer: Staff) -> list:
    policy.ensure_manages_congress(officer)
    return departments.all_departments()


def liaisons_by_department() -> dict[int, list[Staff]]:
    found: dict[int, list[Staff]] = {}
    for assignment, staff in db.session.execute(select(RoleAssignment, Staff).join(Staff).where(
            RoleAssignment.role == Role.DEPARTMENT_LIAISON).order_by(Staff.employee_no)):
        found.setdefault(assignment.department_id, []).append(staff)
    return found
