"""Encryption at rest (AES-256-GCM, an AEAD from `cryptography`) of the most sensitive fields we hold.

A sealed value is `<key id>$<12-byte nonce><ciphertext and tag>`. The associated data names the row and the field
(`condolence_requests:17:description`), so a ciphertext copied to another row or field does not open, and a
changed byte fails the tag. `privacy.current_key` seals; every key in `privacy.keys` opens, so a rotation adds a
key, makes it current, runs `smart-union privacy rekey` (app.services.condolences.rekey) and then drops the old key.
A backup is readable only with the keys of its day.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app

from app.errors import Unreadable

log = logging.getLogger(__name__)
NONCE_BYTES = 12
SEPARATOR = b"$"


def _settings():
    return current_app.config["SU"].privacy


def _key(key_id: str) -> AESGCM:
    encoded = _settings().keys.get(key_id)
    if encoded is None:
        log.error("a sealed value names key %r, which is not configured", key_id)
        raise Unreadable("record_unreadable", "记录无法读取（加密密钥不匹配），请联系系统管理员")
    return AESGCM(base64.b64decode(encoded))


def associated_data(table: str, row_id: int, field: str) -> bytes:
    return f"{table}:{row_id}:{field}".encode()


def seal(plaintext: bytes, aad: bytes) -> bytes:
    key_id = current_key_id()
    nonce = os.urandom(NONCE_BYTES)
    return key_id.encode() + SEPARATOR + nonce + _key(key_id).encrypt(nonce, plaintext, aad)


def open_sealed(sealed: bytes, aad: bytes) -> bytes:
    key_id, separator, rest = bytes(sealed).partition(SEPARATOR)
    if not separator or len(rest) <= NONCE_BYTES:
        raise _damaged(aad)
    try:
        return _key(key_id.decode("ascii", "replace")).decrypt(rest[:NONCE_BYTES], rest[NONCE_BYTES:], aad)
    except InvalidTag:
        raise _damaged(aad) from None


def key_id_of(sealed: bytes) -> str:
    return bytes(sealed).partition(SEPARATOR)[0].decode("ascii", "replace")


def current_key_id() -> str:
    return _settings().current_key


def is_current(sealed: bytes) -> bool:
    return key_id_of(sealed) == current_key_id()


def seal_text(text: str | None, aad: bytes) -> bytes | None:
    return None if text is None else seal(text.encode("utf-8"), aad)


def open_text(sealed: bytes | None, aad: bytes) -> str | None:
    return None if sealed is None else open_sealed(sealed, aad).decode("utf-8")


def new_key() -> str:
    """A fresh key for `privacy.keys`, in the form the config takes."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def _damaged(aad: bytes) -> Unreadable:
    log.error("a sealed value failed its integrity check (%s)", aad.decode().rsplit(":", 1)[0])
    return Unreadable("record_unreadable", "记录已损坏或被篡改，无法读取，请联系系统管理员")
