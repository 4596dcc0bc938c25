"""Stored files — announcements' and proposals' attachments, and condolence requests' (sealed: app.services.condolences): checked
by content (not by name), kept under the storage directory with a random key, and read back only through an
access-checked endpoint.

A file becomes visible only once its row commits: it is written under `pending/` and moved into place after the
commit (a rollback deletes it). A scheduled job removes files that no row references (a discarded draft's, a
crash's leftovers) once they are older than `storage.orphan_grace_seconds`. Every web host must share
`storage.path`.
"""

from __future__ import annotations

import logging
import os
import secrets
from datetime import datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.errors import Conflict, Refusal, TooLarge
from app.extensions import db
from models import (
    Announcement, AnnouncementAttachment, AnnouncementStatus, CondolenceAttachment, ProposalAttachment,
)

log = logging.getLogger(__name__)
PENDING = "pending"
SESSION_KEY = "files_after_commit"     # session.info: [(pending path, final path)] of this unit of work
DOOMED_KEY = "files_to_remove"          # session.info: [path] to delete once this unit of work commits

# What the first bytes of a file say it is: only these types are accepted.
SIGNATURES = {
    b"\xff\xd8\xff": ("image/jpeg", ".jpg"),
    b"\x89PNG\r\n\x1a\n": ("image/png", ".png"),
    b"GIF87a": ("image/gif", ".gif"),
    b"GIF89a": ("image/gif", ".gif"),
    b"%PDF-": ("application/pdf", ".pdf"),
}


def extension_of(attachment) -> str:
    """The extension of what the content was found to be (never the one typed in the name)."""
    return next(ext for kind, ext in SIGNATURES.values() if kind == attachment.content_type)


def _storage_dir() -> Path:
    path = Path(current_app.config["SU"].storage.path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sniff(data: bytes) -> tuple[str, str]:
    for magic, kind in SIGNATURES.items():
        if data.startswith(magic):
            return kind
    raise Refusal("unsupported_file", "只支持 JPG、PNG、GIF 图片和 PDF 文件")


def checked_upload(data: bytes) -> tuple[str, str]:
    """An upload within the size limit whose content is an accepted type: (content type, a new storage key)."""
    if len(data) > current_app.config["SU"].storage.max_attachment_bytes:
        raise TooLarge("file_too_large", "文件过大")
    content_type, extension = sniff(data)
    return content_type, secrets.token_hex(16) + extension


def attach(announcement: Announcement, filename: str, data: bytes) -> AnnouncementAttachment:
    """Files are attached to drafts: what staff were told when it was published does not change under them."""
    if announcement.status is not AnnouncementStatus.DRAFT:
        raise Conflict("not_a_draft", "公告发布后不能再添加附件")
    content_type, key = checked_upload(data)
    write_after_commit(key, data)
    attachment = AnnouncementAttachment(filename=Path(filename or "附件").name[:200] or key,
                                        content_type=content_type, size=len(data), storage_key=key)
    announcement.attachments.append(attachment)
    db.session.flush()
    return attachment


def path_of(attachment) -> Path:
    return _storage_dir() / attachment.storage_key


def replace_stored(key: str, data: bytes) -> None:
    """Rewrites a stored file in one step (a reader sees the old bytes or the new, never half)."""
    aside = _storage_dir() / PENDING / f"{key}.rewrite"
    aside.parent.mkdir(exist_ok=True)
    aside.write_bytes(data)
    os.replace(aside, _storage_dir() / key)


# --- files after commit ---------------------------------------------------------------------------------------

def write_after_commit(key: str, data: bytes) -> None:
    pending_dir = _storage_dir() / PENDING
    pending_dir.mkdir(exist_ok=True)
    pending = pending_dir / key
    pending.write_bytes(data)
    db.session.info.setdefault(SESSION_KEY, []).append((pending, _storage_dir() / key))


def remove_after_commit(attachment: AnnouncementAttachment | CondolenceAttachment) -> None:
    """The file goes when the deletion of its row commits (a rollback keeps both)."""
    db.session.info.setdefault(DOOMED_KEY, []).append(path_of(attachment))


@event.listens_for(Session, "after_commit")
def _publish_files(session: Session) -> None:
    for pending, final in session.info.pop(SESSION_KEY, []):
        os.replace(pending, final)
    for doomed in session.info.pop(DOOMED_KEY, []):
        doomed.unlink(missing_ok=True)


@event.listens_for(Session, "after_rollback")
def _drop_files(session: Session) -> None:
    for pending, _final in session.info.pop(SESSION_KEY, []):
        pending.unlink(missing_ok=True)
    session.info.pop(DOOMED_KEY, None)


STORED_BY = (AnnouncementAttachment, CondolenceAttachment, ProposalAttachment)    # every model whose rows name a stored file


def remove_orphan_files(now: datetime) -> int:
    """Deletes stored files that no row references and that are older than the grace period (a file of a
    transaction still running is younger). Returns how many it removed."""
    root = _storage_dir()
    cutoff = now.timestamp() - current_app.config["SU"].storage.orphan_grace_seconds
    candidates = [p for p in (*root.iterdir(), *_pending_files(root)) if p.is_file() and p.stat().st_mtime < cutoff]
    if not candidates:
        return 0
    names = [p.name for p in candidates]
    referenced = {key for model in STORED_BY for key in db.session.scalars(
        select(model.storage_key).where(model.storage_key.in_(names)))}
    orphans = [p for p in candidates if p.parent.name == PENDING or p.name not in referenced]
    for path in orphans:
        path.unlink(missing_ok=True)
    if orphans:
        log.info("removed %d stored files no record references", len(orphans))
    return len(orphans)


def _pending_files(root: Path) -> list[Path]:
    pending = root / PENDING
    return list(pending.iterdir()) if pending.is_dir() else []
