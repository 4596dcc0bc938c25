"""The sender's side of the outbox: expand fan-outs, claim due rows, pick a channel per person, send through
WeChat and record the outcome. Each step is its own short transaction, so any number of senders can run:
row locks (SELECT ... FOR UPDATE SKIP LOCKED) decide who handles what, and nothing is sent twice.

- Template messages carry client_msg_id = "su-<row id>": WeChat drops a repeat within 10 minutes, so a row whose
  sender died mid-send is simply sent again after its lease.
- A subscribe message cannot be deduplicated by WeChat: a row whose sender died while it was "sending" becomes
  `unknown`, is shown to officers and is never resent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_, func, insert, literal, select, update
from sqlalchemy.orm import lazyload

from app import clock
from app.extensions import db
from app.services import channels
from app.services.audiences import Audience, audience_condition
from models import Channel, DeliveryStatus, Notice, NoticeStatus, Notification, Staff
from models.base import UTCDateTime

log = logging.getLogger(__name__)


def _settings():
    return current_app.config["SU"].notifications


# --- fan-out -----------------------------------------------------------------------------------------------------

def expand_one_fanout_batch() -> int:
    """Writes the next batch of per-person rows of one fan-out notice, as one INSERT ... SELECT over the staff
    table (nothing per person passes through Python); returns how many people the batch covered."""
    notice = db.session.scalar(
        select(Notice).where(Notice.status == NoticeStatus.FANNING_OUT, Notice.send_after <= clock.now())
        .order_by(Notice.id).limit(1).with_for_update(skip_locked=True))
    if notice is None:
        return 0
    in_audience = and_(audience_condition(Audience.model_validate(notice.audience)),
                       Staff.id > notice.fanout_cursor)
    batch = select(Staff.id).where(in_audience).order_by(Staff.id).limit(_settings().fanout_batch).subquery()
    size, upper = db.session.execute(select(func.count(), func.max(batch.c.id))).one()
    if upper is None:
        notice.status = NoticeStatus.READY
        return 0
    now = clock.now()
    # Someone who opened the notice early has their row already: looked up once for the batch's range (as a
    # correlated EXISTS, with statistics from before the notice, PostgreSQL compared each person with every row of
    # the notice written so far: the last batch of a large fan-out read the whole notice a thousand times).
    read_already = select(Notification.staff_id).where(
        Notification.notice_id == notice.id, Notification.staff_id > notice.fanout_cursor,
        Notification.staff_id <= upper)
    rows = select(literal(notice.id), Staff.id, literal(DeliveryStatus.PENDING.value), literal(now, UTCDateTime()),
                  literal(0), literal(""), literal(now, UTCDateTime())) \
        .where(in_audience, Staff.id <= upper, Staff.id.not_in(read_already))
    db.session.execute(insert(Notification).from_select(
        ["notice_id", "staff_id", "status", "next_attempt_at", "attempts", "excluded_channels", "created_at"], rows))
    notice.fanout_cursor = upper
    return size


# --- claiming ------------------------------------------------------------------------------------------------

@dataclass
class Claimed:
    """What a sending thread needs, detached from the session that claimed it."""

    id: int
    channel: Channel
    openid: str
    message: channels.Message
    request_id: str | None = None      # of the request or job run that wrote the notice (app.logs)


def claim_due(limit: int) -> tuple[list[Claimed], int]:
    """Locks due rows and picks each one's channel: rows to send are marked `sending` until their lease ends and
    returned; the others are settled (inbox only) or postponed. Returns (to send, rows handled)."""
    ids = db.session.scalars(
        select(Notification.id).where(Notification.status == DeliveryStatus.PENDING,
                                      Notification.next_attempt_at <= clock.now())
        .order_by(Notification.next_attempt_at, Notification.id).limit(limit)
        .with_for_update(skip_locked=True)).all()
    if not ids:
        return [], 0
    rows = db.session.scalars(select(Notification).where(Notification.id.in_(ids))).unique().all()
    route = channels.Router(rows)
    claimed = []
    for row in rows:
        if _past_dedup_window(row):
            _finish(row, DeliveryStatus.UNKNOWN, "可能已送达，且已超过微信去重时限，不再重发")
            continue
        decision = route.decide(row)
        if decision.postpone_until is not None:
            row.next_attempt_at = decision.postpone_until
        elif decision.channel is Channel.INBOX:
            _finish(row, DeliveryStatus.INBOX_ONLY, decision.reason)
        else:
            claimed.append(Claimed(row.id, decision.channel, decision.openid, decision.message,
                                   row.notice.request_id))
    route.settle()
    _start_sending(claimed)
    return claimed, len(rows)


# WeChat drops a template message repeated with the same client_msg_id within 10 minutes; keep a margin.
DEDUP_WINDOW = timedelta(minutes=9)


def _past_dedup_window(row: Notification) -> bool:
    return row.uncertain_since is not None and clock.now() - row.uncertain_since > DEDUP_WINDOW


_ROWS = Notification.__table__
_COLUMNS = _ROWS.c


def _start_sending(claimed: list[Claimed]) -> None:
    """The claimed rows marked `sending` until their lease ends: one UPDATE per channel on the table itself (the
    rows' objects are not used again in this unit of work; writing them one by one cost more than the sends' SQL)."""
    lease_until = clock.now() + timedelta(seconds=_settings().lease_seconds)
    for channel in {c.channel for c in claimed}:
        db.session.execute(update(_ROWS).where(_COLUMNS.id.in_([c.id for c in claimed if c.channel is channel]))
                           .values(status=DeliveryStatus.SENDING, channel=channel, attempts=_COLUMNS.attempts + 1,
                                   lease_until=lease_until))


def _finish(row: Notification, status: DeliveryStatus, reason: str | None = None) -> None:
    row.status = status
    row.last_error = reason
    row.lease_until = None
    if status is DeliveryStatus.SENT:
        row.sent_at = clock.now()


# --- outcomes ------------------------------------------------------------------------------------------------

def record_outcomes(results: list[tuple[Claimed, channels.Outcome]]) -> None:
    """Applies a batch of sends' results in one transaction, the rows locked in id order (their side effects on
    consents and followers may still meet another transaction's: the sender retries a deadlock's victim once). A
    row whose lease ran out meanwhile was taken back, perhaps for another channel, and is left alone. The common
    answer, sent with nothing more to learn, is written for the whole batch at once; the others row by row."""
    by_id = {claimed.id: (claimed, outcome) for claimed, outcome in results}
    locked = db.session.execute(select(_COLUMNS.id, _COLUMNS.channel).where(
        _COLUMNS.id.in_(by_id), _COLUMNS.status == DeliveryStatus.SENDING)
        .order_by(_COLUMNS.id).with_for_update()).all()
    ours = [row_id for row_id, channel in locked if channel is by_id[row_id][0].channel]
    plain = [row_id for row_id in ours if _plainly_sent(by_id[row_id][1])]
    if plain:
        db.session.execute(update(_ROWS).where(_COLUMNS.id.in_(plain)).values(
            status=DeliveryStatus.SENT, sent_at=clock.now(), last_error=None, lease_until=None))
    others = sorted(set(ours) - set(plain))
    if others:
        rows = db.session.scalars(select(Notification).where(Notification.id.in_(others))   # consents in claim order
                                  .options(lazyload(Notification.notice))
                                  .order_by(Notification.staff_id, Notification.id)).all()
        for row in rows:
            _apply_outcome(row, *by_id[row.id])
    for row_id in by_id.keys() - set(ours):
        claimed, outcome = by_id[row_id]
        log.warning("notification %s finished after its lease; outcome %s dropped", claimed.id, outcome.kind)


def _plainly_sent(outcome: channels.Outcome) -> bool:
    return outcome.kind == "sent" and not outcome.maybe_delivered and not outcome.refund_consent \
        and outcome.errcode is None


def _apply_outcome(row: Notification, claimed: Claimed, outcome: channels.Outcome) -> None:
    settings = _settings()
    if outcome.kind == "sent":
        _finish(row, DeliveryStatus.SENT)
    elif outcome.kind == "unknown":
        _finish(row, DeliveryStatus.UNKNOWN, outcome.reason)
    elif outcome.kind == "not_allowed":
        _exclude_channel(row, claimed.channel, outcome.reason)
    elif outcome.kind == "quota":
        _requeue(row, channels.next_day_start(), outcome.reason, count_attempt=False)
    elif outcome.kind == "retry" and row.attempts < settings.max_attempts:
        delay = settings.backoff_seconds * 2 ** (row.attempts - 1)
        _requeue(row, clock.now() + timedelta(seconds=delay), outcome.reason)
    else:
        _finish(row, DeliveryStatus.FAILED, outcome.reason)
    if outcome.maybe_delivered and row.uncertain_since is None:
        row.uncertain_since = clock.now()
    channels.apply_side_effects(row, claimed.channel, claimed.message, outcome)


def _exclude_channel(row: Notification, channel: Channel, reason: str | None) -> None:
    excluded = set(filter(None, row.excluded_channels.split(","))) | {channel.value}
    row.excluded_channels = ",".join(sorted(excluded))
    _requeue(row, clock.now(), reason, count_attempt=False)


def _requeue(row: Notification, when: datetime, reason: str | None, count_attempt: bool = True) -> None:
    row.status = DeliveryStatus.PENDING
    row.next_attempt_at = when
    row.lease_until = None
    row.last_error = reason
    if not count_attempt:
        row.attempts -= 1


def reap_expired_leases(limit: int = 500) -> int:
    """Rows whose sender vanished mid-send: template messages go back to the queue (WeChat drops the repeat by
    client_msg_id within its window, counted from the lost send); subscribe messages become `unknown` and are
    never resent. Rows are locked with SKIP LOCKED, so reaping never waits on a sender recording an outcome."""
    now = clock.now()
    lease = timedelta(seconds=_settings().lease_seconds)
    expired = db.session.scalars(
        select(Notification).where(Notification.status == DeliveryStatus.SENDING, Notification.lease_until < now)
        .options(lazyload(Notification.notice)).order_by(Notification.id).limit(limit)
        .with_for_update(skip_locked=True)).all()
    for row in expired:
        if row.channel is Channel.TEMPLATE:
            row.uncertain_since = row.uncertain_since or row.lease_until - lease   # when it was claimed
            _requeue(row, now, row.last_error)          # the lost send counts as an attempt
        else:
            _finish(row, DeliveryStatus.UNKNOWN, "发送过程中断，可能已送达，不再重发")
    if expired:
        log.warning("took back %s rows after their lease", len(expired))
    return len(expired)


# --- the outbox at a glance (metrics, /readyz) -------------------------------------------------------------------

def outbox_state(bound: int) -> tuple[dict[str, int], float]:
    """Rows per status, each counted up to `bound` (an index scan that stops, however large the table), and the age
    in seconds of the oldest row due to be sent (0 when none waits)."""
    counts = {status.value: db.session.scalar(select(func.count()).select_from(
        select(Notification.id).where(Notification.status == status).limit(bound).subquery()))
        for status in DeliveryStatus}
    return counts, oldest_due_age()


def oldest_due_age() -> float:
    oldest = db.session.scalar(select(func.min(Notification.next_attempt_at)).where(
        Notification.status == DeliveryStatus.PENDING, Notification.next_attempt_at <= clock.now()))
    return max(0.0, (clock.now() - oldest).total_seconds()) if oldest else 0.0
