"""One unit of work for every edge — an API request, a WeChat push, a scheduler job, a sender round, a CLI command.

Services only flush. The edge opens `unit_of_work()`: it commits once at the end and rolls back on any exception,
refusals included, so nothing flushed before a refusal is ever committed. Refusals are raised, never caught and
committed; the edge maps them to its answer only after the rollback (an HTTP status in app.errors, a reply text in
wechat_handlers.push, an exit code in app.cli). A failed commit is an exception like any other: the API answers
`internal_error`.

Where each edge opens it: API operations in the `endpoint` decorator (app.api.endpoint); pushes in
wechat_handlers.push; jobs in jobs.scheduler; sender rounds in jobs.sender; commands in app.commands and app.demo_data.

A unit of work that wrote nothing — no flush with changes, no statement other than a SELECT — ends with a rollback,
not a commit: one round trip less for every read-only request (the same locks released, nothing to keep).

A unit of work the database chose as a deadlock's victim is worth running again: `retrying_lost_races` does so once
(InnoDB's own advice, and PostgreSQL's: the other transaction went on, so the second attempt meets its result), and
so it does for a service that raised RunAgain (a race it lost and can settle by reading what the winner wrote).

The cached cards of signed-in staff (app.services.principals) follow the unit of work through session events: a
flush that changes a staff row, a role or a sub-union marks their cards before the commit, and the end of the
transaction releases the marks; the announcement list's kept pages (app.services.announcement_pages) are
forgotten when a transaction that changed announcements ends. Both are imported here so that every edge, CLI and
scheduler included, has them.

What must outlast a refusal is written outside the unit of work on purpose, in Redis, which no rollback touches:
failed bind attempts (app.services.auth, app.services.followers) and rate limits. Nothing else is.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator, TypeVar

from sqlalchemy import event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import ORMExecuteState, Session, scoped_session

from app.extensions import db
from app.services import announcement_pages, principals  # noqa: F401  (their session events keep their caches right)

WROTE = "unit_of_work.wrote"      # session.info: something was (or may have been) written
ATTEMPTS = 2                      # a deadlock's victim or a lost race runs once more
log = logging.getLogger(__name__)
T = TypeVar("T")


@contextlib.contextmanager
def unit_of_work() -> Iterator[scoped_session]:
    """Commit at the end when anything was written (roll back when nothing was), roll back on any exception; the
    session is discarded either way, so the next unit of work in the same process starts from what the database
    holds. The session itself is opened only when first used: a request answered from the cache alone (a cached
    card's /me) never builds one."""
    scoped = db.scoped
    try:
        yield scoped
        if scoped.registry.has():
            _finish(scoped())
    except BaseException:
        if scoped.registry.has():
            scoped().rollback()
        raise
    finally:
        if scoped.registry.has():
            scoped().info.pop(WROTE, None)
        scoped.remove()


def _finish(session: Session) -> None:
    if session.info.pop(WROTE, False) or session.new or session.dirty or session.deleted:
        session.commit()
    else:
        session.rollback()


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    """Any statement but a SELECT — an UPDATE, an INSERT, raw SQL — counts as a write (raw SQL conservatively)."""
    if not state.is_select:
        state.session.info[WROTE] = True


@event.listens_for(Session, "before_flush")
def _note_flush(session: Session, _context, _instances) -> None:
    if session.new or session.dirty or session.deleted:
        session.info[WROTE] = True


def write(statement, params: dict | None = None):
    """A Core INSERT or UPDATE on the unit of work's connection, counted as a write like any other. For the busiest
    statements: through the session, the ORM's DML layer annotates a statement that names mapped columns afresh on
    every execution, and SQLAlchemy then computes its cache key anew (a tenth of a signup's CPU)."""
    session = db.session
    result = session.connection().execute(statement, params)
    session.info[WROTE] = True
    return result


class RunAgain(Exception):
    """Raised by a service that lost a race which a second run settles, e.g. a signup whose INSERT met the row a
    second tap of the same person committed first: run again, it finds that row."""


def retrying_lost_races(work: Callable[[], T]) -> T:
    """Runs `work` (which opens its own unit of work) once more when the database broke a deadlock by rolling it
    back, or when a service raised RunAgain. Everything it did was rolled back with it, so running it again is safe;
    a race lost twice is an error like any other."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return work()
        except RunAgain as exc:
            if attempt == ATTEMPTS:
                raise RuntimeError("lost the same race twice") from exc
            log.info("lost a race (%s); running the unit of work again", exc)
        except DBAPIError as exc:
            if attempt == ATTEMPTS or not is_deadlock(exc):
                raise
            log.warning("deadlock: the database rolled this unit of work back; running it again")
    raise AssertionError("unreachable")


def is_deadlock(exc: DBAPIError) -> bool:
    """PostgreSQL's SQLSTATE 40P01; MariaDB's error 1213 (ER_LOCK_DEADLOCK)."""
    original = exc.orig
    return getattr(original, "sqlstate", None) == "40P01" or \
        (bool(getattr(original, "args", None)) and original.args[0] == 1213)
