"""Retention: `condolences.retention_years` after a request reached a final state — closed, rejected, withdrawn —
its files and its sealed text are erased; the ledger row (who, type, amount, dates) stays for the union's records.
A scheduled job does it, and its log says how many, never whose."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from sqlalchemy import and_, or_, select

from app.extensions import db
from app.services import attachments
from app.services.condolences.records import SEALED_FIELDS
from models import CondolenceRequest, CondolenceStatus

log = logging.getLogger(__name__)
BATCH = 200
FINAL = {CondolenceStatus.CLOSED: CondolenceRequest.closed_at, CondolenceStatus.REJECTED: CondolenceRequest.rejected_at,
         CondolenceStatus.WITHDRAWN: CondolenceRequest.withdrawn_at}


def erase_expired_details(now: datetime) -> int:
    """Erases what is past its retention (a batch per run; the next run takes the rest); returns how many."""
    cutoff = _years_before(now, current_app.config["SU"].condolences.retention_years)
    due = list(db.session.scalars(select(CondolenceRequest).where(
        CondolenceRequest.details_erased_at.is_(None),
        or_(*(and_(CondolenceRequest.status == status, moment < cutoff) for status, moment in FINAL.items())))
        .order_by(CondolenceRequest.id).limit(BATCH)).unique())
    files = 0
    for request in due:
        for column in (f"{name}_sealed" for name in SEALED_FIELDS):
            setattr(request, column, None)
        for attachment in list(request.attachments):
            attachments.remove_after_commit(attachment)
            request.attachments.remove(attachment)
            files += 1
        request.details_erased_at = now
    if due:
        log.info("retention: erased the details of %d condolence requests and %d files", len(due), files)
    return len(due)


def _years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:             # 29 February
        return moment.replace(year=moment.year - years, day=28)
