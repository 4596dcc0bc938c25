"""The embedded default: `smart-union demo` alone (SQLite, embedded Redis, fake WeChat, demo data) serves the
login and officer flows the README prints."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import bearer

pytestmark = pytest.mark.backend_independent

SMART_UNION = str(Path(sys.executable).parent / "smart-union")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, attempts: int = 300) -> None:
    for _ in range(attempts):
        if proc.poll() is not None:
            raise AssertionError(f"demo exited early: {proc.stdout.read()}")
        try:
            if requests.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.1)
    raise AssertionError("demo did not become ready")


@pytest.fixture
def demo_server(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_UNION")}
    proc = subprocess.Popen([SMART_UNION, "demo", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def _login_and_bind(url: str, employee_no: str, name: str, phone: str) -> str:
    first = requests.post(f"{url}/api/v1/auth/login", json={"code": f"code:demo-{employee_no}"}, timeout=10)
    bound = requests.post(f"{url}/api/v1/auth/bind", headers=bearer(first.json()["token"]), timeout=10,
                          json={"employee_no": employee_no, "name": name, "phone_code": f"phone:{phone}"})
    assert bound.status_code == 200, bound.text
    return bound.json()["token"]


def test_demo_serves_staff_and_officer_flows(demo_server, tmp_path):
    from app.demo_data import DEMO_STAFF, OFFICER

    staff_token = _login_and_bind(demo_server, **DEMO_STAFF)
    me = requests.get(f"{demo_server}/api/v1/me", headers=bearer(staff_token), timeout=10).json()
    assert me["name"] == DEMO_STAFF["name"]

    officer_token = _login_and_bind(demo_server, **OFFICER)
    roster = requests.get(f"{demo_server}/api/v1/officer/staff?page_size=100", headers=bearer(officer_token),
                          timeout=10).json()
    assert roster["total"] == 50
    assert (tmp_path / "instance" / "smart-union.db").exists()   # the embedded SQLite file
