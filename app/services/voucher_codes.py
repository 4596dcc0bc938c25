"""What a voucher's holder shows the cashier, derived from the voucher's secret and the time: nothing here is stored.

- The short code to type: 10 characters from an alphabet without 0/O and 1/I/L (case-insensitive): 5 name the
  voucher, 4 are a MAC of the current window, the last is a check character. The check is a weighted sum modulo 31
  (a prime, the alphabet's size): any one mistyped character changes it, so `parse_short_code` refuses the typo
  before any database or Redis lookup.
- The QR's content: a token `V1.<serial>.<window>.<mac>`.

Both are valid for the window they were made in and the next one (`vouchers.show_window_seconds`, at most two
minutes in all); a screenshot passed on soon stops working. Redemption (part 2) checks them with `matches`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"        # 31 characters: no 0/O, 1/I/L
BASE = len(ALPHABET)
ID_CHARS, MAC_CHARS = 5, 4
SHORT_CODE_LENGTH = ID_CHARS + MAC_CHARS + 1
MAX_VOUCHER_ID = BASE ** ID_CHARS - 1
TOKEN_PREFIX = "V1"


def window_of(moment: datetime, window_seconds: int) -> int:
    return int(moment.timestamp()) // window_seconds


def _mac(secret: str, voucher_id: int, window: int) -> bytes:
    return hmac.new(secret.encode(), f"{voucher_id}:{window}".encode(), hashlib.sha256).digest()


def _encode(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, digit = divmod(number, BASE)
        chars.append(ALPHABET[digit])
    return "".join(reversed(chars))


def check_character(payload: str) -> str:
    return ALPHABET[sum((i + 1) * ALPHABET.index(c) for i, c in enumerate(payload)) % BASE]


def short_code(voucher_id: int, secret: str, window: int) -> str:
    if not 1 <= voucher_id <= MAX_VOUCHER_ID:
        raise ValueError("voucher id out of the short code's range")
    mac = int.from_bytes(_mac(secret, voucher_id, window)[:8], "big") % BASE ** MAC_CHARS
    payload = _encode(voucher_id, ID_CHARS) + _encode(mac, MAC_CHARS)
    return payload + check_character(payload)


@dataclass(frozen=True)
class TypedCode:
    voucher_id: int
    code: str          # normalised: upper case, no spaces


def parse_short_code(typed: str) -> TypedCode | None:
    """The voucher a typed code names, or None when it cannot be one of ours (a typo, a wrong length, a character
    outside the alphabet). Pure: no database, no Redis."""
    code = typed.replace(" ", "").replace("-", "").upper()
    if len(code) != SHORT_CODE_LENGTH or any(c not in ALPHABET for c in code):
        return None
    if check_character(code[:-1]) != code[-1]:
        return None
    voucher_id = voucher_id_of(code)
    return TypedCode(voucher_id, code) if voucher_id else None


PRINTED_RANDOM_CHARS = 10
PRINTED_CODE_LENGTH = ID_CHARS + PRINTED_RANDOM_CHARS + 1


def voucher_id_of(code: str) -> int:
    """The voucher a code (short or printed) names: its first ID_CHARS characters."""
    voucher_id = 0
    for c in code[:ID_CHARS]:
        voucher_id = voucher_id * BASE + ALPHABET.index(c)
    return voucher_id


def printed_code(voucher_id: int) -> str:
    """The one-time code of a printed voucher (for members without WeChat): longer, random, with a check character,
    and not tied to a time window."""
    payload = _encode(voucher_id, ID_CHARS) + "".join(secrets.choice(ALPHABET) for _ in range(PRINTED_RANDOM_CHARS))
    return payload + check_character(payload)


def qr_token(serial: str, voucher_id: int, secret: str, window: int) -> str:
    return f"{TOKEN_PREFIX}.{serial}.{window}.{_mac(secret, voucher_id, window).hex()[:20]}"


def matches(code_or_token: str, voucher_id: int, serial: str, secret: str, now_window: int) -> bool:
    """Whether a short code or QR token was made for this voucher in the current window or the one before."""
    for window in (now_window, now_window - 1):
        if hmac.compare_digest(code_or_token, short_code(voucher_id, secret, window)) or \
                hmac.compare_digest(code_or_token, qr_token(serial, voucher_id, secret, window)):
            return True
    return False
