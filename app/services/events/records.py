"""An event's record: what an officer fills in (fields, signup questions, places), its labels and phase, and how
the other event modules look it up and lock it.

Locking (the pretix way, in the database): every change to an event's seats first locks the event row
(`SELECT ... FOR UPDATE`, waiting at most LOCK_TIMEOUT_SECONDS, then a "event_busy" refusal), then its quota rows
(places per sub-union), then signup rows — always in that order, so two transactions never wait on each other in a
cycle. A person's first signup to an event without places per sub-union takes the lock with the conditional UPDATE
that counts its place (take_place), under the same timeout, and then writes only its own new row. SQLite (the
embedded demo, one process) has no row locks: an UPDATE of the event row holds the database's write lock.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from datetime import datetime
from dataclasses import dataclass
from typing import Iterator, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import JSON, Row, and_, bindparam, cast, func, insert, literal, null, select, text, true, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import aliased, joinedload

from app import clock, unit_of_work
from app.validation import Id, Moment, labelled, whole
from app.errors import Busy, Invalid, NotFound
from app.extensions import db
from app.services import policy
from app.services.audiences import Audience, built_per_kind, member_kind, visible_to_kind
from models import Event, EventCategory, EventQuota, EventStatus, Signup, SignupStatus, Staff

log = logging.getLogger(__name__)


CATEGORY_LABELS = {EventCategory.SPORTS: "体育", EventCategory.CULTURE: "文化", EventCategory.OUTDOOR: "户外",
                   EventCategory.OTHER: "其他"}


CategoryChoice = labelled(EventCategory, CATEGORY_LABELS)
STATUS_LABELS = {EventStatus.DRAFT: "草稿", EventStatus.OPEN: "已发布", EventStatus.CLOSED: "已截止报名",
                 EventStatus.CANCELLED: "已取消", EventStatus.FINISHED: "已结束"}


PHASE_LABELS = {"draft": "草稿", "upcoming": "未开始报名", "open": "报名中", "closed": "报名已截止",
                "started": "进行中", "finished": "已结束", "cancelled": "已取消"}


SIGNUP_LABELS = {SignupStatus.CONFIRMED: "报名成功", SignupStatus.WAITLISTED: "候补",
                 SignupStatus.CANCELLED: "已取消"}


PUBLISHED = (EventStatus.OPEN, EventStatus.CLOSED)


ACTIVE = (SignupStatus.CONFIRMED, SignupStatus.WAITLISTED)


LOCK_TIMEOUT_SECONDS = 5
LOCK_TIMEOUT = f"{LOCK_TIMEOUT_SECONDS}s"     # PostgreSQL's lock_timeout


ANSWER_MAX_LENGTH = 200


def event_page(event_id: int) -> str:
    return f"pages/events/detail?id={event_id}"


class Question(BaseModel):
    """An extra question on the signup form (e.g. T 恤尺码, 参赛队伍)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    key: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="英文标识，如 tshirt_size")
    label: str = Field(min_length=1, max_length=50, description="题目，如“T 恤尺码”")
    kind: Literal["text", "choice"] = Field(default="text", description="text 填空 / choice 单选")
    required: bool = False
    options: list[str] = Field(default_factory=list, max_length=30, description="单选题的选项")

    @model_validator(mode="after")
    def _options_fit_kind(self) -> "Question":
        if self.kind == "choice" and len(set(self.options)) < 2:
            raise ValueError("单选题至少需要两个不同的选项")
        if self.kind == "text" and self.options:
            raise ValueError("填空题不能设置选项")
        return self


class QuotaIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sub_union_id: Id
    places: whole(ge=1, le=10_000)


class EventFields(BaseModel):
    """What an officer fills in for an event."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [{
        "title": "教职工气排球赛", "category": "sports", "place": "体育馆", "capacity": 30,
        "starts_at": "2099-06-01T09:00:00+08:00", "ends_at": "2099-06-01T12:00:00+08:00",
        "signup_opens_at": "2099-05-01T09:00:00+08:00", "signup_closes_at": "2099-05-20T18:00:00+08:00"}]})
    title: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=5000)
    category: CategoryChoice = Field(default=EventCategory.OTHER, description="sports 体育 / culture 文化 / "
                                                                             "outdoor 户外 / other 其他")
    place: str = Field(default="", max_length=200)
    starts_at: Moment
    ends_at: Moment
    signup_opens_at: Moment
    signup_closes_at: Moment
    cancel_deadline: Moment | None = Field(default=None, description="取消报名截止时间（空：活动开始前均可取消）")
    capacity: whole(ge=1, le=100_000) | None = Field(
        default=None, description="名额（至少 1 人）；必填，除非按分工会分配名额（quotas），此时为各分工会名额之和")
    quotas: list[QuotaIn] = Field(default_factory=list, max_length=200, description="名额分配（按分工会），可空")
    waitlist_enabled: bool = True
    audience: Audience = Field(default_factory=Audience)
    questions: list[Question] = Field(default_factory=list, max_length=20)

    @field_validator("questions")
    @classmethod
    def _unique_keys(cls, value: list[Question]) -> list[Question]:
        if len({q.key for q in value}) != len(value):
            raise ValueError("报名题目的标识不能重复")
        return value

    @model_validator(mode="after")
    def _places_given(self):
        if self.quotas == [] and self.capacity is None:       # a PATCH leaves both out (None): nothing to check
            raise ValueError("缺少必填项 capacity（活动名额，至少 1 人），或按分工会分配名额 quotas")
        return self

    @field_validator("quotas")
    @classmethod
    def _one_quota_per_sub_union(cls, value: list[QuotaIn]) -> list[QuotaIn]:
        if len({q.sub_union_id for q in value}) != len(value):
            raise ValueError("同一分工会只能分配一次名额")
        return value


def clean_answers(questions: list[dict], answers: dict[str, str]) -> dict[str, str]:
    """The answers to keep, or a refusal naming the question (in Chinese)."""
    asked = [Question.model_validate(q) for q in questions]
    unknown = set(answers) - {q.key for q in asked}
    if unknown:
        raise Invalid("unknown_question", f"没有这道报名题目：{'、'.join(sorted(unknown))}")
    clean = {}
    for q in asked:
        value = (answers.get(q.key) or "").strip()
        if not value:
            if q.required:
                raise Invalid("answer_required", f"请填写“{q.label}”", question=q.key)
            continue
        if q.kind == "choice" and value not in q.options:
            raise Invalid("invalid_answer", f"“{q.label}”请从给定选项中选择", question=q.key)
        if len(value) > ANSWER_MAX_LENGTH:
            raise Invalid("answer_too_long", f"“{q.label}”不能超过 {ANSWER_MAX_LENGTH} 个字", question=q.key)
        clean[q.key] = value
    return clean


def get_event(event_id: int) -> Event:
    event = db.session.get(Event, event_id)
    if event is None:
        raise NotFound("找不到该活动", code="event_not_found")
    return event


def visible_event(staff: Staff, event_id: int, bounding_lock_waits: bool = False) -> tuple[Event, Signup | None]:
    """The event if this person may see it (app.services.policy), with its quotas and their signup: one query.
    `bounding_lock_waits`: on PostgreSQL the same query also bounds this transaction's lock waits, as
    `_lock_wait_bounded` does (a signup then saves that round trip; `take_place(..., already_bounded=True)`)."""
    bounding = bounding_lock_waits and _bounds_with_set_local()
    found = db.session.execute(_visible_event_statement(member_kind(staff), bounding),
                               {"event_id": event_id, "viewer_id": staff.id}).unique().first()
    if found is None:
        raise NotFound(*policy.NOT_FOUND[Event])
    return found[0], found[1]


@functools.lru_cache(maxsize=1024)
def _visible_event_statement(kind: tuple, bounding: bool):
    """Built once per kind of member (a signup's busiest query: building it cost more than running it)."""
    viewer = bindparam("viewer_id")
    my_signup = aliased(Signup, name="my_signup")    # not the Signup the visibility condition's EXISTS names
    bound = (func.set_config("lock_timeout", LOCK_TIMEOUT, True),) if bounding else ()   # SET LOCAL, as a function
    return (select(Event, my_signup, *bound)
            .outerjoin(my_signup, and_(my_signup.event_id == Event.id, my_signup.staff_id == viewer))
            .where(Event.id == bindparam("event_id"), policy.event_visible_to(kind, viewer))
            .options(joinedload(Event.quotas)))


class FirstSignupView(NamedTuple):
    """What a person's first signup reads of the event (the names of Event's columns, so check_may_sign_up and
    take_place read it as they read the event), and the status of any signup of theirs: plain columns, no objects."""

    id: int
    status: EventStatus
    signup_opens_at: datetime
    signup_closes_at: datetime
    audience: dict
    questions: list
    capacity: int
    confirmed_count: int
    waitlist_enabled: bool
    by_sub_union: bool
    earlier_status: SignupStatus | None


def first_signup_view(staff: Staff, event_id: int) -> FirstSignupView:
    """visible_event's read for the busy minute's case, bounding the transaction's lock waits as it does: the
    columns a first signup needs, without loading the event, its quotas and the person's signup as objects (which
    cost more than the query)."""
    bounding = _bounds_with_set_local()
    found = db.session.connection().execute(_first_signup_statement(member_kind(staff), bounding),
                                            {"event_id": event_id, "viewer_id": staff.id}).first()
    if found is None:
        raise NotFound(*policy.NOT_FOUND[Event])
    view = FirstSignupView(*found[:len(FirstSignupView._fields)])
    _remember(_KNOWN_QUESTIONS, event_id, view.questions)         # sign_up_committed's, when they changed
    return view


@functools.lru_cache(maxsize=1024)
def _first_signup_statement(kind: tuple, bounding: bool):
    viewer = bindparam("viewer_id")
    my_signup = aliased(Signup, name="my_signup")
    bound = (func.set_config("lock_timeout", LOCK_TIMEOUT, True),) if bounding else ()
    columns = [getattr(Event, name) for name in FirstSignupView._fields[:-1]]
    return built_per_kind(select(*columns, my_signup.status, *bound)
                          .outerjoin(my_signup, and_(my_signup.event_id == Event.id, my_signup.staff_id == viewer))
                          .where(Event.id == bindparam("event_id"), policy.event_visible_to(kind, viewer)))


def _bounds_with_set_local() -> bool:
    return db.engine.dialect.name == "postgresql"      # the engine's: asking the session would open one


def lock_event(event_id: int) -> Event:
    """The event row, locked until the end of the transaction, freshly read (never a stale identity-map copy)."""
    with _lock_wait_bounded(event_id):
        if db.session.get_bind().dialect.name == "sqlite":
            db.session.execute(text("UPDATE events SET last_sequence = last_sequence WHERE id = :id"), {"id": event_id})
        event = db.session.scalar(select(Event).where(Event.id == event_id).with_for_update()
                                  .execution_options(populate_existing=True))
    if event is None:
        raise NotFound("找不到该活动", code="event_not_found")
    return event


@dataclass(frozen=True)
class Place:
    """What take_place took: a queue number and, on the waiting list, the place in it (None: a seat)."""

    sequence: int
    waiting: int | None


def take_place(event: Event | FirstSignupView, staff: Staff, already_bounded: bool = False) -> Place | None:
    """A first signup's common case in one statement: while signup is open and the person is in the audience (an
    event without places per sub-union), a free seat, or else, with the waiting list on, the end of the queue;
    counted on the event row, which it holds until the commit like lock_event. `event` is the caller's unlocked
    read: it says which of the two to try. None when none of that holds (nothing changed): the caller then goes
    the locked way, which tells why. (MariaDB, which has no UPDATE ... RETURNING and takes the lock with a SELECT
    of its own, saves the ORM's work here but no round trip.) `already_bounded`: the caller's visible_event bounded
    the transaction's lock waits."""
    tries = [waiting for waiting, worth in ((False, event.confirmed_count < event.capacity),
                                            (True, event.waitlist_enabled)) if worth]
    kind, params = member_kind(staff), {"event_id": event.id, "now": clock.now()}
    returning = db.session.get_bind().dialect.update_returning
    with _lock_wait_bounded(event.id, already=already_bounded):
        for waiting in tries:
            taken = _take(_taking_statement(kind, waiting, returning), returning, event.id, params)
            if taken is not None:
                return Place(taken.last_sequence, taken.waitlisted_count if waiting else None)
    return None


def _take(statement, returning: bool, event_id: int, params: dict) -> Row | None:
    """The event's counters after the statement, or None when it matched no row."""
    if returning:
        return unit_of_work.write(statement, params).first()
    if not unit_of_work.write(statement, params).rowcount:
        return None
    # MariaDB (no UPDATE ... RETURNING): a transaction's reads see its own change, made on the latest row
    return db.session.execute(select(*COUNTERS).where(EVENTS.c.id == event_id)).first()


EVENTS = Event.__table__
COUNTERS = (EVENTS.c.last_sequence, EVENTS.c.waitlisted_count)


@functools.lru_cache(maxsize=2048)
def _taking_statement(kind: tuple, waiting: bool, returning: bool):
    """Built once per kind of member (app.services.audiences.member_kind), as their audience clause is, on the table
    itself: the ORM's bulk-update layer cost more than the UPDATE."""
    statement = _taking_update(kind, waiting)
    return built_per_kind(statement.returning(*COUNTERS) if returning else statement)


def _taking_update(kind: tuple, waiting: bool):
    now, events = bindparam("now"), EVENTS.c
    counted = {"waitlisted_count": events.waitlisted_count + 1} if waiting else \
        {"confirmed_count": events.confirmed_count + 1}
    room = and_(events.confirmed_count >= events.capacity, events.waitlist_enabled.is_(True)) if waiting else \
        events.confirmed_count < events.capacity
    return (update(EVENTS).where(
        events.id == bindparam("event_id"), events.status == EventStatus.OPEN, events.signup_opens_at <= now,
        events.signup_closes_at > now, events.by_sub_union.is_(False), room, visible_to_kind(EVENTS, kind))
        .values(last_sequence=events.last_sequence + 1, **counted))


@dataclass(frozen=True)
class DirectSignup:
    """What sign_up_directly wrote: the place taken, the event's questions and the id of the person's new row."""

    place: Place
    questions: list
    signup_id: int


def may_sign_up_committed(event_id: int) -> bool:
    """Whether sign_up_committed may run: on PostgreSQL, the event's questions known here, and no transaction begun
    by the request's session (which then has nothing written that the statement's own commit would leave out)."""
    scoped = db.scoped
    return event_id in _KNOWN_QUESTIONS and _bounds_with_set_local() and not (
        scoped.registry.has() and scoped().in_transaction())


def sign_up_committed(staff: Staff, event_id: int, clean: dict[str, str], now: datetime) -> DirectSignup | None:
    """sign_up_directly's statement as a transaction of its own, committed by PostgreSQL as it ends: the event row is
    held for the statement and its commit only, not also across the round trip back, the Python after it and the
    round trip of the request's COMMIT (a waitlisted signup takes that lock too, so the busy minute's signups queue
    on it one after another). For answers already cleaned against the event's questions as this process last saw
    them (known_questions): the statement also requires the questions to be those, and matches nothing otherwise.
    Only when may_sign_up_committed, and for a caller that writes nothing else in its unit of work (a person's own
    signup). None when it matched nothing."""
    params = {"event_id": event_id, "viewer_id": staff.id, "now": now, "answers": clean,
              "known_questions": _KNOWN_QUESTIONS[event_id]}
    return _take_directly(staff, event_id, params, committed=True)


def sign_up_directly(staff: Staff, event_id: int, answers: dict[str, str], now: datetime) -> DirectSignup | None:
    """PostgreSQL: a person's first signup in one statement, without reading the event first. Its UPDATE takes the
    place as take_place does, and itself checks everything first_signup_view and check_may_sign_up would (visible,
    open, within the window, in the audience, no places per sub-union, no signup of theirs yet); its INSERT writes
    the person's row from the place taken, with `answers` as sent. It returns the questions to check those answers
    against: a refusal then rolls both back. One statement, so the event row is held from it to the commit only,
    not across a second round trip. None when it matched nothing (nothing changed): the caller goes the usual way,
    which tells why. It tries a seat, or the waiting list first when the last signup to this event in this process
    was waitlisted. The lock wait is bounded by the statement itself (set_config in the UPDATE's WHERE, which
    PostgreSQL evaluates on the row before waiting for its lock). Elsewhere None at once: MariaDB has no UPDATE ...
    RETURNING, and SQLite, the one-process demo, gains nothing."""
    if not _bounds_with_set_local():
        return None
    params = {"event_id": event_id, "viewer_id": staff.id, "now": now, "answers": answers}
    return _take_directly(staff, event_id, params, committed=False)


def _take_directly(staff: Staff, event_id: int, params: dict, committed: bool) -> DirectSignup | None:
    kind = member_kind(staff)
    waiting_first = _WAITLISTED_LAST.get(event_id, False)
    with _lock_wait_bounded(event_id, already=True):
        for waiting in (waiting_first, not waiting_first):
            statement = _direct_statement(kind, waiting, questions_known=committed)   # committed: the answers checked
            taken = _run_direct(statement, params, committed)
            if taken is not None:
                _remember(_WAITLISTED_LAST, event_id, waiting)
                _remember(_KNOWN_QUESTIONS, event_id, taken.questions)
                return DirectSignup(Place(taken.last_sequence, taken.waitlisted_count if waiting else None),
                                    taken.questions, taken.signup_id)
    return None


def _run_direct(statement, params: dict, committed: bool) -> Row | None:
    if not committed:
        return unit_of_work.write(statement, params).first()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        return connection.execute(statement, params).first()


def known_questions(event_id: int) -> list | None:
    """The event's signup questions as this process's last direct signup to it found them (None: not known)."""
    return _KNOWN_QUESTIONS.get(event_id)


_WAITLISTED_LAST: dict[int, bool] = {}      # event id -> whether its last signup in this process was waitlisted
_KNOWN_QUESTIONS: dict[int, list] = {}      # event id -> its questions, as its last signup in this process read them


def _remember(kept: dict, event_id: int, value) -> None:
    if len(kept) >= 4096:
        kept.clear()
    kept[event_id] = value


SIGNUPS = Signup.__table__


@functools.lru_cache(maxsize=2048)
def _direct_statement(kind: tuple, waiting: bool, questions_known: bool):
    viewer, now = bindparam("viewer_id"), bindparam("now")
    bounded = func.set_config("lock_timeout", LOCK_TIMEOUT, True).is_not(None)
    no_signup_yet = ~select(Signup.id).where(Signup.event_id == EVENTS.c.id, Signup.staff_id == viewer).exists()
    taking = _taking_update(kind, waiting).where(bounded, no_signup_yet)
    if questions_known:          # the answers were cleaned against these: still the event's?
        taking = taking.where(cast(EVENTS.c.questions, JSONB) == cast(bindparam("known_questions", type_=JSON), JSONB))
    taken = taking.returning(EVENTS.c.id, *COUNTERS, EVENTS.c.questions).cte("taken")
    status = SignupStatus.WAITLISTED if waiting else SignupStatus.CONFIRMED
    row = select(taken.c.id, viewer, literal(status, SIGNUPS.c.status.type), taken.c.last_sequence, null(),
                 bindparam("answers", type_=SIGNUPS.c.answers.type), now, null() if waiting else now)
    written = (insert(SIGNUPS).from_select(["event_id", "staff_id", "status", "sequence", "pool_sub_union_id",
                                            "answers", "signed_up_at", "confirmed_at"], row)
               .returning(SIGNUPS.c.id).cte("written"))
    return built_per_kind(select(*(taken.c[c.key] for c in COUNTERS), taken.c.questions,
                                 written.c.id.label("signup_id")).select_from(taken).join(written, true()))


@contextlib.contextmanager
def _lock_wait_bounded(event_id: int, already: bool = False) -> Iterator[None]:
    """The event row's lock waited for at most LOCK_TIMEOUT_SECONDS, then an "event_busy" refusal. MariaDB takes
    it here, under its own timeout; PostgreSQL bounds every wait of the transaction from here on (`already`: the
    transaction's visible_event did, with `bounding_lock_waits`)."""
    dialect = db.engine.dialect
    try:
        if dialect.name == "postgresql" and not already:
            db.session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
        elif getattr(dialect, "is_mariadb", False):
            db.session.execute(text(f"SET STATEMENT innodb_lock_wait_timeout = {LOCK_TIMEOUT_SECONDS} FOR "
                                    "SELECT id FROM events WHERE id = :id FOR UPDATE"), {"id": event_id})
        yield
    except OperationalError as exc:
        if _is_lock_timeout(exc):
            log.warning("event %s: lock wait timed out", event_id)
            raise Busy("event_busy", "报名人数较多，请稍后重试") from None
        raise


def _is_lock_timeout(exc: OperationalError) -> bool:
    orig = exc.orig
    return getattr(orig, "sqlstate", None) == "55P03" or (bool(orig.args) and orig.args[0] == 1205)


def lock_quotas(event: Event) -> list[EventQuota]:
    """Every quota row of a locked event, in sub-union order."""
    return list(db.session.scalars(select(EventQuota).where(EventQuota.event_id == event.id)
                                   .order_by(EventQuota.sub_union_id).with_for_update()
                                   .execution_options(populate_existing=True)))


def find_signup(event_id: int, staff_id: int) -> Signup | None:
    return db.session.scalar(select(Signup).where(Signup.event_id == event_id, Signup.staff_id == staff_id))


def phase_of(event: Event, now: datetime) -> str:
    if event.status in (EventStatus.DRAFT, EventStatus.CANCELLED):
        return event.status.value
    if event.status is EventStatus.FINISHED or now >= event.ends_at:
        return "finished"
    if now >= event.starts_at:
        return "started"
    if event.status is EventStatus.CLOSED or now >= event.signup_closes_at:
        return "closed"
    return "upcoming" if now < event.signup_opens_at else "open"


def current_phase(event: Event) -> str:
    return phase_of(event, clock.now())
