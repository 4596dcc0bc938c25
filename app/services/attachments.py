"""Files attached to announcements: checked by content (not by name), kept under the storage directory with a
random key, and read back only through an access-checked endpoint."""

from __future__ import annotations

import secrets
from pathlib import Path

from flask import current_app

from app.errors import Refusal, TooLarge
from app.extensions import db
from models import Announcement, AnnouncementAttachment

# What the first bytes of a file say it is: only these types are accepted.
SIGNATURES = {
    b"\xff\xd8\xff": ("image/jpeg", ".jpg"),
    b"\x89PNG\r\n\x1a\n": ("image/png", ".png"),
    b"GIF87a": ("image/gif", ".gif"),
    b"GIF89a": ("image/gif", ".gif"),
    b"%PDF-": ("application/pdf", ".pdf"),
}


def _storage_dir() -> Path:
    path = Path(current_app.config["SU"].storage.path).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def sniff(data: bytes) -> tuple[str, str]:
    for magic, kind in SIGNATURES.items():
        if data.startswith(magic):
            return kind
    raise Refusal("unsupported_file", "只支持 JPG、PNG、GIF 图片和 PDF 文件")


def attach(announcement: Announcement, filename: str, data: bytes) -> AnnouncementAttachment:
    if len(data) > current_app.config["SU"].storage.max_attachment_bytes:
        raise TooLarge("file_too_large", "文件过大")
    content_type, extension = sniff(data)
    key = secrets.token_hex(16) + extension
    (_storage_dir() / key).write_bytes(data)
    attachment = AnnouncementAttachment(filename=Path(filename or "附件").name[:200] or key,
                                        content_type=content_type, size=len(data), storage_key=key)
    announcement.attachments.append(attachment)
    db.session.flush()
    return attachment


def path_of(attachment: AnnouncementAttachment) -> Path:
    return _storage_dir() / attachment.storage_key
