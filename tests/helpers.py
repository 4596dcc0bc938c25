"""Small helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path

import requests


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_code(response) -> str:
    body = response.json() if callable(getattr(response, "json", None)) else response.json
    return body["error"]["code"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, proc: subprocess.Popen, attempts: int = 300) -> None:
    """Waits until a server started as `proc` answers `url` with 200."""
    for _ in range(attempts):
        if proc.poll() is not None:
            raise AssertionError(f"the server exited early: {proc.stdout.read() if proc.stdout else ''}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):   # not listening yet, or workers still booting
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


def set_clock_file(path: Path, moment: datetime) -> None:
    """Moves the clock of running processes (app.clock_file). Written aside and renamed in: a process reading
    while a plain write_text has only truncated the file would see no time and fall back to the real clock."""
    aside = path.with_name(path.name + ".new")
    aside.write_text(moment.isoformat(), encoding="utf-8")
    os.replace(aside, path)


def linked_follower(app, staff_id: int) -> str:
    """An official-account follower (openid mp-<staff id>) linked to the staff member, as 绑定 would leave it."""
    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from models import WeChatApp, WeChatIdentity

    openid = f"mp-{staff_id}"
    with app.app_context(), unit_of_work():
        db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid=openid, staff_id=staff_id,
                                      following=True))
    return openid


def wait_for_lock_waiters(app, count: int = 1) -> None:
    """Until `count` sessions of the test database wait on a row lock (polled: PostgreSQL tells no one)."""
    from sqlalchemy import text

    from app.extensions import db

    sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    with app.app_context():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with db.engine.connect() as conn:
                if conn.execute(text(sql)).scalar() >= count:
                    return
            time.sleep(0.05)
    raise AssertionError(f"{count} sessions never waited on a row lock")
