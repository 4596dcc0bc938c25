"""Sealed files — a condolence request's attachments, a mutual-aid claim's documents: checked by content (images or
PDF) and size, stored sealed under a random key, each bound to its row and its owner (a row moved to another request
or claim does not open), its name sealed too. Whoever calls these has checked who may see the owner."""

from __future__ import annotations

from pathlib import Path

from flask import current_app

from app.errors import NotFound, TooLarge, Unreadable
from app.extensions import db
from app.services import attachments, sealing
from models import CondolenceAttachment, Staff

TABLE = "condolence_attachments"


def store(files: list[CondolenceAttachment], owner: dict[str, int], uploader: Staff, filename: str,
          data: bytes) -> CondolenceAttachment:
    """A new sealed file beside `files` (its owner's), owned by `owner` (request_id= or claim_id=)."""
    limit = current_app.config["SU"].condolences.max_attachments
    if len(files) >= limit:
        raise TooLarge("too_many_files", f"每份申请最多 {limit} 个附件")
    content_type, key = attachments.checked_upload(data)
    attachment = CondolenceAttachment(filename_sealed=b"", content_type=content_type, size=len(data), storage_key=key,
                                      uploaded_by_id=uploader.id, **owner)
    db.session.add(attachment)
    db.session.flush()
    name = Path(filename or "附件").name[:200] or "附件"
    attachment.filename_sealed = sealing.seal(name.encode(), file_aad(attachment, "filename"))
    attachments.write_after_commit(key, sealing.seal(data, file_aad(attachment, "file")))
    return attachment


def file_aad(attachment, field: str) -> bytes:
    """Bound to the attachment and to its owner (a request's id; a claim's, as claim<id>)."""
    owner = attachment.request_id if attachment.request_id is not None else f"claim{attachment.claim_id}"
    return sealing.associated_data(TABLE, attachment.id, f"{field}@{owner}")


def file_name(attachment: CondolenceAttachment) -> str:
    return sealing.open_sealed(attachment.filename_sealed, file_aad(attachment, "filename")).decode()


def one_of(files: list[CondolenceAttachment], file_id: int) -> CondolenceAttachment:
    found = next((a for a in files if a.id == file_id), None)
    if found is None:
        raise NotFound("找不到该附件", code="attachment_not_found")
    return found


def read(attachment: CondolenceAttachment) -> bytes:
    try:
        stored = attachments.path_of(attachment).read_bytes()
    except FileNotFoundError:
        raise Unreadable("file_missing", "附件文件缺失，请联系系统管理员") from None
    return sealing.open_sealed(stored, file_aad(attachment, "file"))
