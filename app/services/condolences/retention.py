"""Retention: `condolences.retention_years` after a request reached a final state — closed, rejected, withdrawn —
or a mutual-aid claim was paid or refused, its files and its sealed text are erased; the ledger row (who, type,
amount, dates) stays for the union's records. A scheduled job does it, and its log says how many, never whose."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from sqlalchemy import and_, or_, select

from app.extensions import db
from app.services import attachments
from app.services.condolences import claims as claim_records
from app.services.condolences.records import SEALED_FIELDS
from models import CondolenceRequest, CondolenceStatus, MutualAidClaim

log = logging.getLogger(__name__)
BATCH = 200
FINAL = {CondolenceStatus.CLOSED: CondolenceRequest.closed_at, CondolenceStatus.REJECTED: CondolenceRequest.rejected_at,
         CondolenceStatus.WITHDRAWN: CondolenceRequest.withdrawn_at}


def erase_expired_details(now: datetime) -> int:
    """Erases what is past its retention (a batch of each per run; the next run takes the rest); returns how many
    requests and claims it erased."""
    cutoff = _years_before(now, current_app.config["SU"].condolences.retention_years)
    requests = list(db.session.scalars(select(CondolenceRequest).where(
        CondolenceRequest.details_erased_at.is_(None),
        or_(*(and_(CondolenceRequest.status == status, moment < cutoff) for status, moment in FINAL.items())))
        .order_by(CondolenceRequest.id).limit(BATCH)).unique())
    claims = list(db.session.scalars(select(MutualAidClaim).where(
        MutualAidClaim.details_erased_at.is_(None), MutualAidClaim.closed_at < cutoff)
        .order_by(MutualAidClaim.id).limit(BATCH)).unique())
    erased_files = sum(_erase(request, request.attachments, SEALED_FIELDS, now) for request in requests)
    erased_files += sum(_erase(claim, claim.documents, claim_records.SEALED, now) for claim in claims)
    if requests or claims:
        log.info("retention: erased the details of %d condolence requests, %d mutual-aid claims and %d files",
                 len(requests), len(claims), erased_files)
    return len(requests) + len(claims)


def _erase(row, stored: list, sealed: tuple[str, ...], now: datetime) -> int:
    """Its sealed columns emptied, its files removed (once the unit of work commits); returns how many files."""
    for name in sealed:
        setattr(row, f"{name}_sealed", None)
    removed = list(stored)
    for attachment in removed:
        attachments.remove_after_commit(attachment)
        stored.remove(attachment)
    row.details_erased_at = now
    return len(removed)


def _years_before(moment: datetime, years: int) -> datetime:
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:             # 29 February
        return moment.replace(year=moment.year - years, day=28)
