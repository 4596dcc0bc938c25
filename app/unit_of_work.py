"""One unit of work for every edge — an API request, a WeChat push, a scheduler job, a sender round, a CLI command.

Services only flush. The edge opens `unit_of_work()`: it commits once at the end and rolls back on any exception,
refusals included, so nothing flushed before a refusal is ever committed. Refusals are raised, never caught and
committed; the edge maps them to its answer only after the rollback (an HTTP status in app.errors, a reply text in
wechat_handlers.push, an exit code in app.cli). A failed commit is an exception like any other: the API answers
`internal_error`.

Where each edge opens it: API operations in the `endpoint` decorator (app.api.endpoint); pushes in
wechat_handlers.push; jobs in jobs.scheduler; sender rounds in jobs.sender; commands in app.commands and app.demo_data.

What must outlast a refusal is written outside the unit of work on purpose, in Redis, which no rollback touches:
failed bind attempts (app.services.auth, app.services.followers) and rate limits. Nothing else is.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from sqlalchemy.orm import Session

from app.extensions import db


@contextlib.contextmanager
def unit_of_work() -> Iterator[Session]:
    """Commit at the end, roll back on any exception; the session is discarded either way, so the next unit of
    work in the same process starts from what the database holds."""
    session = db.session
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        db.remove_session()
