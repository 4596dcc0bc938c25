"""Seats: signing up, cancelling, the waiting list and changes of places, one short transaction each.

Holding the event's lock (records.lock_event), a signup reads the seat counters from the locked rows, takes the
next queue number, writes its row and moves the counters; the unit of work's one commit releases the lock, so
queue order is commit order. Everything that can be refused without the lock (window, audience, answers, a
repeated tap) is settled before it, and the waiting-list place comes from a counter, so the locked part is O(1).
The busy minute's case — a person's first signup, no places per sub-union — is shorter still: one conditional
UPDATE of the counters (records.take_place) and one INSERT; whenever its conditions do not hold, the locked way
above answers. On PostgreSQL both go in one statement, which, once this process knows the event's questions,
commits itself (records.sign_up_committed): the lock is then held for the statement and its commit only.

The source of truth stays in the database: CHECK constraints refuse any write that would hand out more seats than
there are, unique (event_id, staff_id) keeps one row per person (re-used on a new signup), unique
(event_id, sequence) one place per queue number. Reads under the lock are locking reads, because MariaDB's default
REPEATABLE READ would otherwise show rows as of the transaction's first read (the token check).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import aliased

from app import clock, unit_of_work
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.extensions import db
from app.services import audit, notifications, policy
from app.services.audiences import Audience, includes
from app.unit_of_work import RunAgain
from app.services.events.records import (
    ACTIVE, SIGNUPS, DirectSignup, FirstSignupView, Place, clean_answers, first_signup_view, known_questions,
    lock_event, lock_quotas, may_sign_up_committed, sign_up_committed, sign_up_directly, take_place,
    visible_event,
)
from models import Event, EventQuota, EventStatus, Signup, SignupStatus, Staff


def _lock_quota(event: Event, sub_union_id: int | None) -> EventQuota | None:
    """The seat pool of a sub-union, locked after the event (places per sub-union only)."""
    if not event.by_sub_union:
        return None
    quota = db.session.scalar(select(EventQuota).where(EventQuota.event_id == event.id,
                                                       EventQuota.sub_union_id == sub_union_id)
                              .with_for_update().execution_options(populate_existing=True))
    if quota is None:
        raise Forbidden("本活动的名额按分工会分配，您所在的分工会没有名额", code="no_places_for_sub_union")
    return quota


def _locked_signup(event_id: int, staff_id: int) -> Signup | None:
    return db.session.scalar(select(Signup).where(Signup.event_id == event_id, Signup.staff_id == staff_id)
                             .with_for_update().execution_options(populate_existing=True))


def check_may_sign_up(event: Event | FirstSignupView, staff: Staff) -> None:
    """Refusals that need no lock: status, the window, the audience."""
    now = clock.now()
    if event.status is EventStatus.CANCELLED:
        raise Conflict("event_cancelled", "活动已取消")
    if event.status is EventStatus.DRAFT:
        raise NotFound("找不到该活动", code="event_not_found")
    if event.status is not EventStatus.OPEN or now >= event.signup_closes_at:
        raise Conflict("signup_closed", "报名已截止")
    if now < event.signup_opens_at:
        raise Conflict("signup_not_started", f"报名尚未开始，开始时间：{clock.local_text(event.signup_opens_at)}")
    if not includes(Audience.model_validate(event.audience), staff):
        raise Forbidden("本活动仅面向指定范围的会员，您不在报名范围内", code="not_in_audience")


@dataclass
class Placed:
    """A signup as its person is told about it: the row and, while waiting, the place in its pool's queue.
    `plain`: the row is a plain object holding every value it was written with, readable after the commit."""

    signup: Signup
    position: int | None
    plain: bool = False


def sign_up(event_id: int, staff: Staff, answers: dict[str, str], actor: Staff | None = None) -> Placed:
    """Signs a person up: confirmed while seats are left, else waitlisted (or refused when the waiting list is
    off). Signing up again while signed up returns the same signup; after a cancellation it rejoins the queue
    at its end. `actor` is the officer signing up on the person's behalf (代报名)."""
    if actor is None:                          # by the person: a first signup is the busy minute's case
        placed = _signed_up_directly(staff, event_id, answers)
        if placed is not None:
            return placed
        view = first_signup_view(staff, event_id)
        check_may_sign_up(view, staff)
        if view.earlier_status is None and not view.by_sub_union:
            clean = clean_answers(view.questions, answers)
            place = take_place(view, staff, already_bounded=True)
            if place is not None:
                return Placed(_insert_signup(event_id, staff.id, place, clean), place.waiting, plain=True)
    event, earlier = visible_event(staff, event_id, bounding_lock_waits=True)
    check_may_sign_up(event, staff)
    clean = clean_answers(event.questions, answers)
    if earlier is not None and earlier.status in ACTIVE:      # a repeated tap: no need to queue for the lock
        return Placed(earlier, waitlist_positions([earlier]).get(earlier.id))
    event = lock_event(event_id)
    check_may_sign_up(event, staff)            # an officer may have closed or cancelled it meanwhile
    # A row seen before the lock (a cancelled signup, re-used) is read again under it. With none, no query: a second
    # tap racing this one meets the unique (event, person) key at the INSERT, and its request runs again.
    signup = _locked_signup(event.id, staff.id) if earlier is not None else None
    if signup is not None and signup.status in ACTIVE:
        return Placed(signup, position_of(signup))
    quota = _lock_quota(event, staff.sub_union_id)
    confirmed = _has_seat(event, quota)
    if not confirmed and not event.waitlist_enabled:
        raise Conflict("event_full", "活动名额已满")
    if signup is None:
        signup = Signup(event_id=event.id, staff_id=staff.id)
        db.session.add(signup)
    event.last_sequence += 1
    _activate(signup, SignupStatus.CONFIRMED if confirmed else SignupStatus.WAITLISTED, event.last_sequence,
              quota, clean, actor)
    _count(event, quota, confirmed=int(confirmed), waitlisted=int(not confirmed))
    _flush_signup()
    if actor is not None:
        audit.record(actor, "event.signup_for", "event", event.id, staff=staff.employee_no,
                     status=signup.status.value)
    return Placed(signup, None if confirmed else (quota or event).waitlisted_count)   # the newest waits last


def _insert_signup(event_id: int, staff_id: int, place: Place, answers: dict[str, str]) -> Signup:
    """The row of the place take_place took, written with one INSERT while the event row is held. The answer is
    shaped from the returned object, which the session does not track (its row is written already)."""
    values = _signup_values(event_id, staff_id, place, answers, clock.now())
    with _lost_race_runs_again():
        inserted = unit_of_work.write(INSERT_SIGNUP, values)
    return Signup(id=inserted.inserted_primary_key[0], **values)


def _signed_up_directly(staff: Staff, event_id: int, answers: dict[str, str]) -> Placed | None:
    """A first signup in one statement, on PostgreSQL: committed by that statement itself when the answers pass the
    event's questions as this process knows them (sign_up_committed), else in the request's transaction and checked
    against the questions it returns (sign_up_directly). None when neither matched: the caller goes the usual way."""
    now = clock.now()
    clean = _cleaned_for_known_questions(event_id, answers) if may_sign_up_committed(event_id) else None
    with _lost_race_runs_again():
        if clean is not None:
            direct = sign_up_committed(staff, event_id, clean, now)
            if direct is None:       # the usual way tells why (a repeated tap, no seat, changed questions ...)
                return None
            values = _signup_values(event_id, staff.id, direct.place, clean, now)
            return Placed(Signup(id=direct.signup_id, **values), direct.place.waiting, plain=True)
        direct = sign_up_directly(staff, event_id, answers, now)
    return _placed_directly(direct, event_id, staff.id, answers, now) if direct is not None else None


def _cleaned_for_known_questions(event_id: int, answers: dict[str, str]) -> dict[str, str] | None:
    """The answers cleaned against the event's questions as last seen here; None when those are not known, or refuse
    the answers: the questions as they are now judge them, the usual way (an officer may have changed them)."""
    questions = known_questions(event_id)
    if questions is None:
        return None
    try:
        return clean_answers(questions, answers)
    except Invalid:
        return None


def _placed_directly(direct: DirectSignup, event_id: int, staff_id: int, answers: dict[str, str],
                     now: datetime) -> Placed:
    """The signup sign_up_directly wrote with the answers as sent, once they pass its event's questions (a refusal
    rolls it back); answers that cleaning changed (spaces trimmed, an empty optional one dropped) are written again."""
    clean = clean_answers(direct.questions, answers)
    if clean != answers:
        unit_of_work.write(update(SIGNUPS).where(SIGNUPS.c.id == direct.signup_id).values(answers=clean))
    values = _signup_values(event_id, staff_id, direct.place, clean, now)
    return Placed(Signup(id=direct.signup_id, **values), direct.place.waiting, plain=True)


def _signup_values(event_id: int, staff_id: int, place: Place, answers: dict[str, str], now: datetime) -> dict:
    confirmed = place.waiting is None
    return dict(event_id=event_id, staff_id=staff_id, sequence=place.sequence, pool_sub_union_id=None,
                status=SignupStatus.CONFIRMED if confirmed else SignupStatus.WAITLISTED, answers=answers,
                signed_up_at=now, confirmed_at=now if confirmed else None)


INSERT_SIGNUP = insert(SIGNUPS)      # the table's, not the mapped class's: no ORM bulk-insert layer


ONE_SIGNUP_PER_PERSON = ("uq_event_signups_event_id_staff_id",                  # PostgreSQL, MariaDB
                         "event_signups.event_id, event_signups.staff_id")      # SQLite


def _flush_signup() -> None:
    with _lost_race_runs_again():
        db.session.flush()


@contextlib.contextmanager
def _lost_race_runs_again() -> Iterator[None]:
    """A second tap's lost race (its INSERT met the first tap's row) told apart from any other constraint, which
    stays an error."""
    try:
        yield
    except IntegrityError as exc:
        if any(name in str(exc.orig) for name in ONE_SIGNUP_PER_PERSON):
            raise RunAgain("the same person's other signup committed first") from exc
        raise


def _activate(signup: Signup, status: SignupStatus, sequence: int, quota: EventQuota | None,
              answers: dict[str, str], actor: Staff | None) -> None:
    signup.status = status
    signup.sequence = sequence
    signup.pool_sub_union_id = quota.sub_union_id if quota else None
    signup.answers = answers
    signup.signed_up_at = clock.now()
    signup.confirmed_at = clock.now() if status is SignupStatus.CONFIRMED else None
    signup.signed_up_by_id = actor.id if actor else None
    signup.cancelled_at = signup.cancelled_by_id = signup.checked_in_at = signup.checked_in_by_id = None


def _has_seat(event: Event, quota: EventQuota | None) -> bool:
    if quota is not None:
        return quota.confirmed_count < quota.places
    return event.confirmed_count < event.capacity


def _free_places(event: Event, quota: EventQuota | None) -> int:
    return (quota.places - quota.confirmed_count) if quota else (event.capacity - event.confirmed_count)


def _count(event: Event, quota: EventQuota | None, confirmed: int = 0, waitlisted: int = 0) -> None:
    """Moves the seat counters of the locked event (and pool) along with a signup's change of status."""
    for row in (event, quota) if quota is not None else (event,):
        row.confirmed_count += confirmed
        row.waitlisted_count += waitlisted


def cancel_signup(event_id: int, staff: Staff, actor: Staff | None = None) -> Signup:
    """Cancels a person's signup; a freed seat goes at once to the first person waiting in the same pool.
    Cancelling twice is harmless. Officers (`actor`) who manage the event may cancel after the deadline, until the
    event starts."""
    policy.ensure_sees_event(staff, event_id)
    event = lock_event(event_id)
    signup = _locked_signup(event.id, staff.id)
    if signup is None:
        raise NotFound("您没有报名该活动", code="not_signed_up")
    if signup.status is SignupStatus.CANCELLED:
        return signup
    _check_may_cancel(event, signup, by_manager=actor is not None and policy.manages(Event, actor, event.id))
    was_confirmed = signup.status is SignupStatus.CONFIRMED
    quota = _lock_quota(event, signup.pool_sub_union_id)
    signup.status = SignupStatus.CANCELLED
    signup.cancelled_at = clock.now()
    signup.cancelled_by_id = actor.id if actor else staff.id
    _count(event, quota, confirmed=-int(was_confirmed), waitlisted=-int(not was_confirmed))
    if was_confirmed:
        promote_waitlisted(event, quota)
    db.session.flush()
    if actor is not None:
        audit.record(actor, "event.cancel_for", "event", event.id, staff=staff.employee_no)
    return signup


def _check_may_cancel(event: Event, signup: Signup, by_manager: bool) -> None:
    now = clock.now()
    if event.status in (EventStatus.CANCELLED, EventStatus.FINISHED) or now >= event.starts_at:
        raise Conflict("event_started", "活动已开始或已结束，不能取消报名")
    if signup.checked_in_at is not None:
        raise Conflict("already_checked_in", "已签到，不能取消报名")
    deadline = event.cancel_deadline
    if not by_manager and deadline is not None and now >= deadline:
        raise Conflict("cancel_deadline_passed", f"已过取消报名截止时间（{clock.local_text(deadline)}），如需取消请联系工会")


def promote_waitlisted(event: Event, quota: EventQuota | None) -> list[Signup]:
    """Fills the pool's free seats from its waiting list, first in the queue first; notifies each promoted
    person once (the occasion names the queue number, which a new signup never reuses)."""
    free = _free_places(event, quota)
    if free <= 0:
        return []
    pool = quota.sub_union_id if quota else None
    waiting = list(db.session.scalars(
        select(Signup).where(Signup.event_id == event.id, Signup.status == SignupStatus.WAITLISTED,
                             Signup.pool_sub_union_id.is_not_distinct_from(pool))
        .order_by(Signup.sequence).limit(free).with_for_update().execution_options(populate_existing=True)))
    for signup in waiting:
        signup.status = SignupStatus.CONFIRMED
        signup.confirmed_at = clock.now()
        _count(event, quota, confirmed=1, waitlisted=-1)
        _notify_promoted(event, signup)
    return waiting


def _notify_promoted(event: Event, signup: Signup) -> None:
    notifications.notify_people(
        "service", f"event-promoted:{event.id}:{signup.sequence}", [signup.staff_id],
        f"候补成功：{event.title}", f"有人取消了报名，您已由候补转为报名成功。活动时间：{clock.local_text(event.starts_at)}，"
        f"地点：{event.place or '见活动详情'}。", data={"summary": "候补转为报名成功", "event_id": event.id},
        page=f"pages/events/detail?id={event.id}")


def set_places(event: Event, capacity: int, quotas: dict[int, int]) -> list[Signup]:
    """Sets the event's places under its lock: `capacity` for the whole event, or `quotas` (sub-union id ->
    places) each a pool of its own, the capacity being their sum. Fewer places than already confirmed are
    refused; more places promote from the waiting list at once. Returns the promoted signups."""
    event = lock_event(event.id)
    by_sub_union = bool(quotas)
    if by_sub_union != event.by_sub_union and _has_active_signups(event):
        raise Conflict("places_mode_locked", "已有人报名，不能再更改名额是否按分工会分配")
    event.by_sub_union = by_sub_union
    if by_sub_union:
        return _set_quotas(event, quotas)
    if capacity < event.confirmed_count:
        raise Conflict("capacity_below_confirmed",
                       f"已有 {event.confirmed_count} 人报名成功，名额不能少于 {event.confirmed_count}")
    for quota in lock_quotas(event):
        event.quotas.remove(quota)
    event.capacity = capacity
    db.session.flush()
    return promote_waitlisted(event, None)


def _set_quotas(event: Event, quotas: dict[int, int]) -> list[Signup]:
    current = {q.sub_union_id: q for q in lock_quotas(event)}
    for sub_union_id, quota in current.items():
        if sub_union_id not in quotas:
            if _has_active_signups(event, sub_union_id):
                raise Conflict("quota_in_use", f"{quota.sub_union.name}已有人报名，不能取消其名额")
            event.quotas.remove(quota)
    for sub_union_id, places in sorted(quotas.items()):
        quota = current.get(sub_union_id)
        if quota is None:
            event.quotas.append(EventQuota(sub_union_id=sub_union_id, places=places, confirmed_count=0))
        elif places < quota.confirmed_count:
            raise Conflict("capacity_below_confirmed", f"{quota.sub_union.name}已有 {quota.confirmed_count} 人"
                                                       f"报名成功，名额不能少于 {quota.confirmed_count}")
        else:
            quota.places = places
    event.capacity = sum(quotas.values())
    db.session.flush()
    return [s for quota in event.quotas for s in promote_waitlisted(event, quota)]


def _has_active_signups(event: Event, pool: int | None = None) -> bool:
    stmt = select(Signup.id).where(Signup.event_id == event.id, Signup.status.in_(ACTIVE)).limit(1).with_for_update()
    if pool is not None:
        stmt = stmt.where(Signup.pool_sub_union_id == pool)
    return db.session.scalar(stmt) is not None


def position_of(signup: Signup) -> int | None:
    """The place of a waitlisted signup in its pool's queue, right after a change in this transaction: a locking
    read on MariaDB, whose plain reads would still show the queue as of the transaction's first read."""
    if signup.status is not SignupStatus.WAITLISTED:
        return None
    stmt = select(func.count()).select_from(Signup).where(
        Signup.event_id == signup.event_id, Signup.status == SignupStatus.WAITLISTED,
        Signup.sequence <= signup.sequence, Signup.pool_sub_union_id.is_not_distinct_from(signup.pool_sub_union_id))
    if db.session.get_bind().dialect.name == "mysql":
        stmt = stmt.with_for_update(read=True)
    return db.session.scalar(stmt)


def waitlist_positions(signups: list[Signup]) -> dict[int, int]:
    """Each waitlisted signup's place in its pool's waiting list (1 = next to be promoted), in one query."""
    ids = [s.id for s in signups if s.status is SignupStatus.WAITLISTED]
    if not ids:
        return {}
    ahead = aliased(Signup)
    position = (select(func.count()).where(
        ahead.event_id == Signup.event_id, ahead.status == SignupStatus.WAITLISTED,
        ahead.sequence <= Signup.sequence, ahead.pool_sub_union_id.is_not_distinct_from(Signup.pool_sub_union_id))
        .correlate(Signup).scalar_subquery())
    return dict(db.session.execute(select(Signup.id, position).where(Signup.id.in_(ids))).all())
