"""The officers' view of an event's signups: counts, the list with answers, its export to Excel (XLSX), and signing
members up or cancelling for them (代报名 / 代取消) for those who don't use WeChat."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app import clock
from app.extensions import db
from app.services import audit, policy, roster, spreadsheets
from app.services.events import seats
from app.services.events.records import SIGNUP_LABELS
from models import Event, Signup, SignupStatus, Staff


STATUS_ORDER = {SignupStatus.CONFIRMED: 0, SignupStatus.WAITLISTED: 1, SignupStatus.CANCELLED: 2}


BASE_HEADERS = ["序号", "工号", "姓名", "分工会", "部门", "报名状态", "候补顺位", "报名时间", "签到时间", "代报名人"]


@dataclass
class SignupCounts:
    confirmed: int = 0
    waitlisted: int = 0
    cancelled: int = 0
    attended: int = 0


def signup_counts(event_ids: list[int]) -> dict[int, SignupCounts]:
    """Counts per event in one query: confirmed / waitlisted / cancelled, and attended (checked in)."""
    counts = {event_id: SignupCounts() for event_id in event_ids}
    if not event_ids:
        return counts
    rows = db.session.execute(select(Signup.event_id, Signup.status, func.count(), func.count(Signup.checked_in_at))
                              .where(Signup.event_id.in_(event_ids)).group_by(Signup.event_id, Signup.status))
    for event_id, status, n, attended in rows:
        setattr(counts[event_id], status.value, n)
        if status is SignupStatus.CONFIRMED:
            counts[event_id].attended = attended
    return counts


@dataclass
class SignupRow:
    signup: Signup
    position: int | None             # place in the waiting list of its pool
    proxy: Staff | None = None       # the officer who signed them up, if any
    answers: dict[str, str] = field(default_factory=dict)


def signup_rows(event: Event, status: SignupStatus | None = None) -> list[SignupRow]:
    """The signups of an event, confirmed first then the waiting list then cancellations, each in queue order;
    two queries whatever their number."""
    stmt = (select(Signup).where(Signup.event_id == event.id)
            .options(joinedload(Signup.staff)).order_by(Signup.sequence))
    signups = list(db.session.scalars(stmt).unique())
    proxies = _proxies(signups)
    waiting: dict[int | None, int] = {}
    rows = []
    for s in signups:
        position = None
        if s.status is SignupStatus.WAITLISTED:
            position = waiting[s.pool_sub_union_id] = waiting.get(s.pool_sub_union_id, 0) + 1
        if status is None or s.status is status:
            rows.append(SignupRow(s, position, proxies.get(s.signed_up_by_id), s.answers or {}))
    rows.sort(key=lambda r: (STATUS_ORDER[r.signup.status], r.signup.sequence))
    return rows


def _proxies(signups: list[Signup]) -> dict[int, Staff]:
    ids = {s.signed_up_by_id for s in signups if s.signed_up_by_id and s.signed_up_by_id != s.staff_id}
    if not ids:
        return {}
    return {s.id: s for s in db.session.scalars(select(Staff).where(Staff.id.in_(ids))).unique()}


def export_xlsx(officer: Staff, event: Event) -> bytes:
    """The signup list as an XLSX workbook with Chinese headers, one column per question; blanks are empty cells
    and times are local ("YYYY-MM-DD HH:MM"), 工号 stays text (leading zeros kept)."""
    questions = event.questions or []
    rows = []
    for n, row in enumerate(signup_rows(event), start=1):
        s, staff = row.signup, row.signup.staff
        rows.append([n, staff.employee_no, staff.name, staff.sub_union.name if staff.sub_union else None,
                     staff.department or None, SIGNUP_LABELS[s.status], row.position, clock.local_cell(s.signed_up_at),
                     clock.local_cell(s.checked_in_at), row.proxy.name if row.proxy else None]
                    + [row.answers.get(q["key"]) for q in questions])
    data = spreadsheets.workbook("报名名单", BASE_HEADERS + [q["label"] for q in questions], rows,
                                 [6, 12, 10, 16, 16, 10, 10, 18, 18, 10] + [16] * len(questions))
    audit.record(officer, "event.export", "event", event.id, rows=len(rows))
    return data


def _managed_member(officer: Staff, employee_no: str) -> Staff:
    """A member of the officer's sub-unions, whom they may sign up for any event that addresses the member."""
    policy.ensure_officer(officer)
    staff = roster.get_staff(employee_no)
    policy.ensure_sees_staff(officer, staff)
    return staff


def sign_up_for(officer: Staff, event_id: int, employee_no: str, answers: dict[str, str]) -> seats.Placed:
    """An officer signs a member of their scope up, under the same rules as the member would."""
    return seats.sign_up(event_id, _managed_member(officer, employee_no), answers, actor=officer)


def cancel_for(officer: Staff, event_id: int, employee_no: str) -> Signup:
    """An officer cancels a member's signup; after the cancellation deadline (until the event starts) only an
    officer who manages the event."""
    return seats.cancel_signup(event_id, _managed_member(officer, employee_no), actor=officer)
