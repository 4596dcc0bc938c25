"""Telling people things: notices written in the caller's transaction, each person's inbox, consents, and the
officers' delivery reports. Sending happens later, in the sender processes (app.services.delivery).

Every area calls `notify_audience` (one fan-out row, however large the audience) or `notify_people`.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from flask import current_app
from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import lazyload

from app import clock, logs
from app.errors import Conflict, Invalid, NotFound
from app.extensions import db
from app.services import audit, policy, rate_limits
from app.services.audiences import Audience, count_audience, includes
from models import (
    DeliveryStatus, Notice, NoticeStatus, Notification, Staff, StaffStatus, SubscriptionConsent,
)

READ_IN_APP = "已在小程序内阅读"


STATUS_LABELS = {NoticeStatus.FANNING_OUT: "正在分发", NoticeStatus.READY: "已分发（发送进程逐条送达）",
                 NoticeStatus.CANCELLED: "已撤回"}

def _check_kind(kind: str) -> None:
    if kind not in current_app.config["SU"].notifications.kinds:
        raise ValueError(f"unknown notice kind {kind!r}: add it to [notifications.kinds]")


def _existing_notice(occasion: str) -> Notice | None:
    return db.session.scalar(select(Notice).where(Notice.occasion == occasion))


def notice_id_of(occasion: str) -> int | None:
    """The notice written for an occasion (what an officer follows in the delivery report), if one was."""
    return db.session.scalar(select(Notice.id).where(Notice.occasion == occasion))


def _add_notice(notice: Notice) -> Notice:
    """Adds the notice, or returns the one already written for the same occasion (idempotent under races)."""
    notice.request_id = logs.current_request_id()
    existing = _existing_notice(notice.occasion)
    if existing is not None:
        return existing
    try:
        with db.session.begin_nested():
            db.session.add(notice)
    except IntegrityError:
        # a locking read: it sees the racing writer's committed row, where a plain one (MariaDB) keeps its snapshot
        return db.session.scalar(select(Notice).where(Notice.occasion == notice.occasion)
                                 .options(lazyload("*")).with_for_update(read=True))
    return notice


def notify_audience(kind: str, occasion: str, audience: Audience, title: str, body: str = "",
                    data: dict[str, Any] | None = None, page: str | None = None,
                    send_after: datetime | None = None) -> Notice:
    """One fan-out row for a whole audience: the request returns at once, senders expand it in batches."""
    _check_kind(kind)
    return _add_notice(Notice(kind=kind, occasion=occasion, title=title, body=body, data=data or {}, page=page,
                              audience=audience.model_dump(mode="json"), status=NoticeStatus.FANNING_OUT,
                              send_after=send_after or clock.now()))


def notify_people(kind: str, occasion: str, staff_ids: Iterable[int], title: str, body: str = "",
                  data: dict[str, Any] | None = None, page: str | None = None,
                  per_person: dict[int, dict[str, Any]] | None = None) -> Notice:
    """A notice for named people. Someone already notified for this occasion is not notified again."""
    _check_kind(kind)
    notice = _add_notice(Notice(kind=kind, occasion=occasion, title=title, body=body, data=data or {},
                                page=page, status=NoticeStatus.READY))
    wanted = set(staff_ids)
    if wanted and notice.status is not NoticeStatus.CANCELLED:
        _insert_missing(notice, wanted, per_person or {})
    return notice


def _insert_missing(notice: Notice, wanted: set[int], per_person: dict[int, dict[str, Any]]) -> None:
    db.session.flush()
    receiving = db.session.scalars(select(Staff.id).where(
        Staff.id.in_(wanted), Staff.status != StaffStatus.LEFT, Staff.died_on.is_(None))).all()
    have = set(db.session.scalars(select(Notification.staff_id).where(
        Notification.notice_id == notice.id, Notification.staff_id.in_(wanted))))
    rows = [{"notice_id": notice.id, "staff_id": sid, "data": per_person.get(sid), "status": DeliveryStatus.PENDING,
             "next_attempt_at": clock.now()} for sid in sorted(set(receiving) - have)]
    if rows:
        db.session.execute(insert(Notification), rows)


def cancel_notice(occasion: str) -> int:
    """Withdraws an occasion: no more fan-out, and what was not sent yet is cancelled. Returns rows cancelled."""
    notice = _existing_notice(occasion)
    if notice is None or notice.status is NoticeStatus.CANCELLED:
        return 0
    notice.status = NoticeStatus.CANCELLED
    notice.cancelled_at = clock.now()
    result = db.session.execute(
        update(Notification).where(Notification.notice_id == notice.id,
                                   Notification.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.CANCELLED).execution_options(synchronize_session=False))
    return result.rowcount


# --- the inbox -----------------------------------------------------------------------------------------------

@dataclass
class InboxItem:
    notice: Notice
    read: bool


def _my_rows_query(staff: Staff):
    return (select(Notification).join(Notification.notice)
            .where(Notification.staff_id == staff.id, Notice.status != NoticeStatus.CANCELLED,
                   Notice.send_after <= clock.now()))


def _pending_fanouts_for(staff: Staff) -> list[Notice]:
    """Fan-out notices that include this person but have not reached their row yet: shown as unread at once."""
    candidates = db.session.scalars(select(Notice).where(
        Notice.status == NoticeStatus.FANNING_OUT, Notice.fanout_cursor < staff.id,
        Notice.send_after <= clock.now())).all()
    if not candidates:
        return []
    have = set(db.session.scalars(select(Notification.notice_id).where(
        Notification.staff_id == staff.id, Notification.notice_id.in_([n.id for n in candidates]))))
    return [n for n in candidates if n.id not in have and includes(Audience.model_validate(n.audience), staff)]


def inbox_page(staff: Staff, before: int | None, limit: int) -> tuple[list[InboxItem], int | None]:
    """Newest first, `limit` items older than notice id `before`; returns (items, the next `before` or None)."""
    stmt = _my_rows_query(staff).order_by(Notification.notice_id.desc()).limit(limit + 1)
    if before is not None:
        stmt = stmt.where(Notification.notice_id < before)
    items = [InboxItem(row.notice, row.read_at is not None) for row in db.session.scalars(stmt)]
    items += [InboxItem(n, False) for n in _pending_fanouts_for(staff) if before is None or n.id < before]
    items.sort(key=lambda item: item.notice.id, reverse=True)
    page = items[:limit]
    return page, (page[-1].notice.id if len(items) > limit else None)


def unread_count(staff: Staff) -> int:
    stmt = _my_rows_query(staff).where(Notification.read_at.is_(None))
    rows = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    return rows + len(_pending_fanouts_for(staff))


def mark_read(staff: Staff, notice_id: int) -> None:
    if not _mark_read(staff, notice_id):
        raise NotFound("这条消息不存在", code="notification_not_found")


def _mark_read(staff: Staff, notice_id: int) -> bool:
    """Marks the notice read in this person's inbox; False when it is not in their inbox."""
    row = db.session.scalar(_my_rows_query(staff).where(Notification.notice_id == notice_id))
    if row is not None:
        row.read_at = row.read_at or clock.now()
        return True
    if not any(n.id == notice_id for n in _pending_fanouts_for(staff)):
        return False
    _insert_read_row(staff, notice_id)
    return True


def _insert_read_row(staff: Staff, notice_id: int) -> None:
    """Read before the fan-out reached this person: the row is written now, and WeChat need not tell them."""
    try:
        with db.session.begin_nested():
            db.session.add(Notification(notice_id=notice_id, staff_id=staff.id, read_at=clock.now(),
                                        status=DeliveryStatus.SKIPPED, last_error=READ_IN_APP))
    except IntegrityError:   # the fan-out wrote the row meanwhile
        db.session.execute(update(Notification).where(
            Notification.notice_id == notice_id, Notification.staff_id == staff.id,
            Notification.read_at.is_(None)).values(read_at=clock.now()))


def mark_all_read(staff: Staff) -> None:
    for notice in _pending_fanouts_for(staff):
        _insert_read_row(staff, notice.id)
    db.session.execute(update(Notification).where(
        Notification.staff_id == staff.id, Notification.read_at.is_(None)).values(read_at=clock.now())
        .execution_options(synchronize_session=False))


def mark_read_by_occasion(staff: Staff, occasion: str) -> None:
    """Areas call this when a person opens the thing itself (e.g. an announcement)."""
    notice = _existing_notice(occasion)
    if notice is not None:
        _mark_read(staff, notice.id)


# --- subscribe-message consents --------------------------------------------------------------------------------

SUBSCRIBE_RESULTS = {"accept", "reject", "ban", "filter"}


def known_subscribe_templates() -> set[str]:
    kinds = current_app.config["SU"].notifications.kinds.values()
    return {k.subscribe.template_id for k in kinds if k.subscribe is not None}


def record_subscribe_results(staff: Staff, results: dict[str, str]) -> dict[str, int]:
    """What wx.requestSubscribeMessage returned: each "accept" allows one more send; "ban" allows none."""
    unknown = set(results) - known_subscribe_templates()
    if unknown:
        raise Invalid("unknown_template", f"未知的订阅消息模板：{'、'.join(sorted(unknown))}")
    for template_id, result in sorted(results.items()):
        if result == "accept":
            _add_consent(staff.id, template_id)
        elif result == "ban":
            db.session.execute(update(SubscriptionConsent).where(
                SubscriptionConsent.staff_id == staff.id, SubscriptionConsent.template_id == template_id)
                .values(remaining=0))
    return remaining_consents(staff)


def _add_consent(staff_id: int, template_id: str) -> None:
    bump = (update(SubscriptionConsent)
            .where(SubscriptionConsent.staff_id == staff_id, SubscriptionConsent.template_id == template_id)
            .values(remaining=SubscriptionConsent.remaining + 1).execution_options(synchronize_session=False))
    if db.session.execute(bump).rowcount:
        return
    try:
        with db.session.begin_nested():
            db.session.add(SubscriptionConsent(staff_id=staff_id, template_id=template_id, remaining=1))
    except IntegrityError:   # a parallel tap created it first
        db.session.execute(bump)


def remaining_consents(staff: Staff) -> dict[str, int]:
    rows = db.session.execute(select(SubscriptionConsent.template_id, SubscriptionConsent.remaining)
                              .where(SubscriptionConsent.staff_id == staff.id))
    return {template_id: remaining for template_id, remaining in rows}


# --- officers --------------------------------------------------------------------------------------------------

def get_for_officer(officer: Staff, notice_id: int) -> Notice:
    """A notice whose delivery the officer follows (app.services.policy); any other is not found."""
    notice = db.session.get(Notice, notice_id)
    if notice is None:
        raise NotFound("找不到该通知", code="notice_not_found")
    policy.ensure_oversees_notice(officer, notice)
    return notice


def notices_for_officer(officer: Staff, page: int, page_size: int) -> tuple[list[Notice], int]:
    """The notices to an audience that an officer follows, newest first: what their delivery reports are for.
    Notices to one person (a voucher, a condolence step, a signup) are not listed."""
    policy.ensure_officer(officer)
    addressed = select(Notice).where(Notice.audience.is_not(None)).order_by(Notice.id.desc())
    if policy.officer_sub_unions(officer) is None:
        total = db.session.scalar(select(func.count()).select_from(Notice).where(Notice.audience.is_not(None)))
        return list(db.session.scalars(addressed.limit(page_size).offset((page - 1) * page_size))), total
    # A sub-union officer's: decided per notice on its audience (JSON); the ids first, two columns per notice.
    followed = [notice_id for notice_id, audience in db.session.execute(
        select(Notice.id, Notice.audience).where(Notice.audience.is_not(None)).order_by(Notice.id.desc()))
        if policy.oversees_notice(officer, Notice(audience=audience))]
    shown = followed[(page - 1) * page_size:page * page_size]
    return list(db.session.scalars(addressed.where(Notice.id.in_(shown)))) if shown else [], len(followed)


def delivery_report(officer: Staff, notice_id: int) -> tuple[Notice, dict[str, Any]]:
    """Counts per delivery state, and the reasons behind skipped / failed / unknown rows."""
    notice = get_for_officer(officer, notice_id)
    counts = dict(db.session.execute(select(Notification.status, func.count()).where(
        Notification.notice_id == notice.id).group_by(Notification.status)).all())
    reasons = db.session.execute(select(Notification.status, Notification.last_error, func.count()).where(
        Notification.notice_id == notice.id,
        Notification.status.in_([DeliveryStatus.SKIPPED, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN]))
        .group_by(Notification.status, Notification.last_error)).all()
    return notice, {
        "counts": {status.value: counts.get(status, 0) for status in DeliveryStatus},
        "reasons": [{"status": s.value, "reason": r or "", "count": c} for s, r, c in reasons],
        "fanout_done": notice.status is not NoticeStatus.FANNING_OUT,
    }


def requeue_failed(officer: Staff, notice_id: int) -> int:
    """Failed rows go back to the queue with a fresh set of attempts. Unknown rows stay: they may have arrived.
    A withdrawn occasion is never sent again."""
    notice = get_for_officer(officer, notice_id)
    if notice.status is NoticeStatus.CANCELLED:
        raise Conflict("notice_cancelled", "该通知已撤回或取消，不能重新发送")
    result = db.session.execute(
        update(Notification).where(Notification.notice_id == notice.id,
                                   Notification.status == DeliveryStatus.FAILED)
        .values(status=DeliveryStatus.PENDING, attempts=0, excluded_channels="", next_attempt_at=clock.now(),
                last_error=None).execution_options(synchronize_session=False))
    return result.rowcount


def preview_audience(officer: Staff, audience: Audience) -> tuple[int, str]:
    """How many people an officer's audience reaches, and its label (sub-union officers: their own only)."""
    audience = policy.restrict_audience(officer, audience)
    return count_audience(audience), audience.describe()


def send_officer_notice(officer: Staff, title: str, body: str, audience: Audience) -> Notice:
    """An officer's own service notice to an audience (e.g. 体检安排、材料提交提醒)."""
    policy.ensure_officer(officer)
    audience = policy.restrict_audience(officer, audience)
    rate_limits.hit("officer_notices_per_officer", officer.id)
    occasion = f"officer-notice:{clock.now():%Y%m%d%H%M%S}:{secrets.token_hex(4)}"
    notice = notify_audience("service", occasion, audience, title, body)
    audit.record(officer, "notice.send", "notice", occasion, title=title, audience=audience.model_dump(mode="json"))
    return notice
