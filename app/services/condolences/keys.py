"""Key rotation: re-seal every sealed field and file of condolences under `privacy.current_key`, so that the old
key can be dropped from the config. Safe to run again (what is current already is left alone) and while the
service runs (a file is replaced in one step)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.extensions import db
from app.services import attachments, sealing
from app.services.condolences.filing import FILES_TABLE
from app.services.condolences.records import SEALED_FIELDS, TABLE
from models import CondolenceAttachment, CondolenceRequest

BATCH = 500


@dataclass
class Rekeyed:
    fields: int = 0
    files: int = 0


def rekey() -> Rekeyed:
    done = Rekeyed()
    for request in _all(CondolenceRequest):
        for name in SEALED_FIELDS:
            done.fields += _reseal_column(request, f"{name}_sealed", sealing.associated_data(TABLE, request.id, name))
    for attachment in _all(CondolenceAttachment):
        done.fields += _reseal_column(attachment, "filename_sealed",
                                      sealing.associated_data(FILES_TABLE, attachment.id, "filename"))
        done.files += _reseal_file(attachment)
    db.session.flush()
    return done


def _all(model):
    last = 0
    while rows := list(db.session.scalars(select(model).where(model.id > last).order_by(model.id).limit(BATCH))
                       .unique()):
        yield from rows
        last = rows[-1].id


def _reseal_column(row, column: str, aad: bytes) -> int:
    sealed = getattr(row, column)
    if sealed is None or sealing.is_current(sealed):
        return 0
    setattr(row, column, sealing.seal(sealing.open_sealed(sealed, aad), aad))
    return 1


def _reseal_file(attachment: CondolenceAttachment) -> int:
    path = attachments.path_of(attachment)
    if not path.exists():       # written by a transaction not yet committed, or lost: nothing to re-seal here
        return 0
    sealed = path.read_bytes()
    if sealing.is_current(sealed):
        return 0
    aad = sealing.associated_data(FILES_TABLE, attachment.id, "file")
    attachments.replace_stored(attachment.storage_key, sealing.seal(sealing.open_sealed(sealed, aad), aad))
    return 1
