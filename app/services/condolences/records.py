"""What every step of a condolence request shares: finding a request the caller may see, its sealed fields, its
history, and the notice that tells the people it concerns that something changed — and nothing more."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import lazyload
from sqlalchemy.sql.elements import ColumnElement

from app.errors import Conflict, NotFound
from app.extensions import db
from app.services import audit, notifications, policy, sealing
from app.services.state_changes import move_status
from models import CondolenceRequest, CondolenceStatus, CondolenceStep, Staff

SEALED_FIELDS = ("relative_name", "place", "description", "missing_material", "reject_reason", "amount_reason")
TABLE = "condolence_requests"
STATUS_LABELS = {
    CondolenceStatus.SUBMITTED: "待核实", CondolenceStatus.RETURNED: "退回补材料", CondolenceStatus.VERIFIED: "已核实，待审批",
    CondolenceStatus.APPROVED: "已批准，待发放", CondolenceStatus.REJECTED: "未批准", CondolenceStatus.WITHDRAWN: "已撤回",
    CondolenceStatus.CLOSED: "已发放",
}
PAGE = "pages/condolences/detail?id={request_id}"


def get_request(staff: Staff, request_id: int, *, locking: bool = False) -> CondolenceRequest:
    """A request the caller may see (404 otherwise, whether or not it exists)."""
    stmt = select(CondolenceRequest).where(CondolenceRequest.id == request_id)
    if locking:     # the request's row alone (MariaDB would lock every joined row too)
        stmt = stmt.options(lazyload("*")).with_for_update().execution_options(populate_existing=True)
    request = db.session.scalar(stmt)
    if request is None:
        raise NotFound(*policy.CONDOLENCE_NOT_FOUND)
    policy.ensure_sees_condolence(staff, request)
    return request


def read_request(staff: Staff, request_id: int) -> CondolenceRequest:
    """Opening a request's detail is audited: who, when, which."""
    request = get_request(staff, request_id)
    audit.record(staff, "condolence.read", TABLE, request.id)
    return request


def transition(request: CondolenceRequest, allowed: tuple[CondolenceStatus, ...], new: CondolenceStatus,
               action: str, *conditions: ColumnElement[bool], **values) -> None:
    """A conditional UPDATE from one of the allowed states (and `conditions`, which the caller checked on a read
    that may be stale): of two people acting at once, exactly one moves it, whatever the backend's isolation; the
    other, like anyone acting on a state that does not allow `action` (a verb: 核实, 批准 …), is told the state the
    request is in now."""
    now = move_status(request, allowed, new, *conditions, **values)
    if now is not None:
        raise not_allowed(now, action)


def not_allowed(status: CondolenceStatus, action: str) -> Conflict:
    return Conflict("transition_not_allowed", f"该申请当前状态为“{STATUS_LABELS[status]}”，不能{action}",
                    current_status=status.value)


# --- sealed fields ----------------------------------------------------------------------------------------------

def sealed(request: CondolenceRequest, **values: str | None) -> dict[str, bytes | None]:
    """Column values (`<name>_sealed`) for some of the request's sealed fields."""
    return {f"{name}_sealed": sealing.seal_text(value, sealing.associated_data(TABLE, request.id, name))
            for name, value in values.items()}


def seal_fields(request: CondolenceRequest, **values: str | None) -> None:
    for column, value in sealed(request, **values).items():
        setattr(request, column, value)


def opened(request: CondolenceRequest) -> dict[str, str | None]:
    return {name: sealing.open_text(getattr(request, f"{name}_sealed"),
                                    sealing.associated_data(TABLE, request.id, name)) for name in SEALED_FIELDS}


# --- history and notices --------------------------------------------------------------------------------------------

def record_step(request: CondolenceRequest, action: str, actor: Staff | None, **detail) -> None:
    """A step of the workflow: in the request's history, in the audit log, and told to the people it concerns."""
    step = CondolenceStep(request_id=request.id, action=action, actor_id=actor.id if actor else None, detail=detail)
    db.session.add(step)
    db.session.flush()
    audit.record(actor, f"condolence.{action}", TABLE, request.id, **detail)
    _tell_the_people_concerned(request, step)


def _tell_the_people_concerned(request: CondolenceRequest, step: CondolenceStep) -> None:
    """The applicant, and the member when someone else filed (the outbox skips anyone who has died or left). The
    notice says only that the request changed and where to look: never its type, a relative, a place or a text."""
    status = STATUS_LABELS[request.status]
    notifications.notify_people(
        "service", f"condolence:{request.id}:{step.id}", {request.applicant_id, request.staff_id}, "慰问申请有新进展",
        f"您的慰问申请（编号 {request.id}）状态：{status}。详情请在小程序“我的慰问申请”中查看。",
        data={"summary": f"状态：{status}", "request_id": request.id}, page=PAGE.format(request_id=request.id))
