"""Key rotation: re-seal every sealed field and file of condolences (requests, claims, visits' notes) under `privacy.current_key`, so that the old
key can be dropped from the config. Safe to run again (what is current already is left alone) and while the
service runs: a column is rewritten only if it still holds what was read (a request changed meanwhile was sealed
under the current key anyway), and a file is replaced in one step. A value no configured key opens is counted and
left as it is: the old key must stay until the report says none is left."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select, update

from app.errors import Unreadable
from app.extensions import db
from app.services import attachments, audit, sealing
from app.services.condolences import claims, visits
from app.services.condolences.files import file_aad
from app.services.condolences.records import SEALED_FIELDS, TABLE
from models import CondolenceAttachment, CondolenceRequest, MutualAidClaim, RetireeVisit

BATCH = 500


@dataclass
class Rekeyed:
    fields: int = 0
    files: int = 0
    unreadable: int = 0


def rekey() -> Rekeyed:
    done = Rekeyed()
    columns = [f"{name}_sealed" for name in SEALED_FIELDS]
    for row in _rows(CondolenceRequest, columns):
        for name, column in zip(SEALED_FIELDS, columns):
            _reseal_column(done, CondolenceRequest, row, column, sealing.associated_data(TABLE, row.id, name))
    claim_columns = [f"{name}_sealed" for name in claims.SEALED]
    for row in _rows(MutualAidClaim, claim_columns):
        for name, column in zip(claims.SEALED, claim_columns):
            _reseal_column(done, MutualAidClaim, row, column, sealing.associated_data(claims.TABLE, row.id, name))
    for row in _rows(RetireeVisit, ["note_sealed"]):
        _reseal_column(done, RetireeVisit, row, "note_sealed", sealing.associated_data(visits.TABLE, row.id, "note"))
    for row in _rows(CondolenceAttachment, ["filename_sealed", "request_id", "claim_id", "storage_key"]):
        _reseal_column(done, CondolenceAttachment, row, "filename_sealed", file_aad(row, "filename"))
        _reseal_file(done, row)
    audit.record(None, "privacy.rekey", "privacy", sealing.current_key_id(), fields=done.fields, files=done.files,
                 unreadable=done.unreadable)
    return done


def _rows(model, columns: list[str]):
    """Plain rows (id and the named columns), in batches: no ORM object to flush back over a newer value."""
    last = 0
    while rows := db.session.execute(select(model.id, *(getattr(model, c) for c in columns))
                                     .where(model.id > last).order_by(model.id).limit(BATCH)).all():
        yield from rows
        last = rows[-1].id


def _reseal_column(done: Rekeyed, model, row, column: str, aad: bytes) -> None:
    value = getattr(row, column)
    if value is None or sealing.is_current(value):
        return
    try:
        fresh = sealing.seal(sealing.open_sealed(value, aad), aad)
    except Unreadable:
        done.unreadable += 1
        return
    changed = db.session.execute(update(model).where(model.id == row.id, getattr(model, column) == value)
                                 .values({column: fresh}).execution_options(synchronize_session=False))
    done.fields += changed.rowcount


def _reseal_file(done: Rekeyed, row) -> None:
    path = attachments.path_of(row)
    if not path.exists():       # written by a transaction not yet committed, or lost: nothing to re-seal here
        return
    stored = path.read_bytes()
    if sealing.is_current(stored):
        return
    aad = file_aad(row, "file")
    try:
        attachments.replace_stored(row.storage_key, sealing.seal(sealing.open_sealed(stored, aad), aad))
    except Unreadable:
        done.unreadable += 1
        return
    done.files += 1
