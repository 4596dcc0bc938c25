"""The one clock every service and job reads: now (UTC), the union's local time, and how people read a time.

In production it is the system clock. Tests move it in process with time-machine; tests that start processes (the
scheduler, senders) set `app.clock_file`, a file holding an ISO time the test replaces (written aside and renamed
in, so a reader never meets it half-written: an empty file reads as the real clock). The file is read only when
it is configured, and config validation refuses it outside the test suite (`app.testing`) and the embedded demo.
Times are cut to whole seconds: what PostgreSQL, MariaDB and SQLite all store alike.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context

DEFAULT_ZONE = "Asia/Shanghai"      # outside an app (a validator run by a script): the built-in default


def now() -> datetime:
    """This moment, timezone-aware UTC, to the second."""
    injected = _from_clock_file()
    return (injected or datetime.now(timezone.utc)).replace(microsecond=0)


def _from_clock_file() -> datetime | None:
    # current_app's object itself, not the proxy (app.extensions.this_app): every request asks the time
    path = current_app._get_current_object().config["SU"].app.clock_file if has_app_context() else ""
    if not path or not Path(path).exists():
        return None
    text = Path(path).read_text(encoding="utf-8").strip()
    if not text:
        return None
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def zone() -> ZoneInfo:
    return _zone(current_app._get_current_object().config["SU"].app.timezone if has_app_context() else DEFAULT_ZONE)


@lru_cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local(moment: datetime | None = None) -> datetime:
    """A moment (default: now) in the union's time zone (Asia/Shanghai): every calendar decision is made here."""
    return (moment or now()).astimezone(zone())


def today() -> date:
    return local().date()


def local_text(moment: datetime) -> str:
    """How a message tells a person a time: "03月08日 14:30"."""
    return f"{local(moment):%m月%d日 %H:%M}"


def local_cell(moment: datetime | None) -> str | None:
    """How a spreadsheet shows a time: "2026-03-08 14:30"."""
    return f"{local(moment):%Y-%m-%d %H:%M}" if moment else None
