"""Moving a record's `status` so that, of two people acting at once, exactly one does — whatever the database's
isolation: a conditional UPDATE, and for the other, the state as the winner committed it."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.sql.elements import ColumnElement

from app.extensions import db


def move_status(row: Any, allowed: tuple[enum.Enum, ...], new: enum.Enum, *conditions: ColumnElement[bool],
                **values: Any) -> enum.Enum | None:
    """From one of `allowed` (and `conditions`, which the caller checked on a read that may be stale) to `new`,
    setting `values`. Returns None when it moved (the row refreshed), else the status it has now — read with a
    locking read, which sees what the other transaction committed (a plain one, on MariaDB, this one's snapshot)."""
    model = type(row)
    changed = db.session.execute(update(model).where(model.id == row.id, model.status.in_(allowed), *conditions)
                                 .values(status=new, **values).execution_options(synchronize_session=False))
    if changed.rowcount:
        db.session.refresh(row)
        return None
    return db.session.scalar(select(model.status).where(model.id == row.id).with_for_update(read=True))
