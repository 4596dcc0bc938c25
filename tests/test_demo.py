"""The embedded default: `smart-union demo` alone (SQLite, embedded Redis, fake WeChat, demo data) serves the
login and officer flows the README prints."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers import bearer, free_port, wait_ready

pytestmark = pytest.mark.backend_independent

SMART_UNION = str(Path(sys.executable).parent / "smart-union")


@pytest.fixture
def demo_server(tmp_path):
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("SMART_UNION")}, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([SMART_UNION, "demo", "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=open(tmp_path / "demo.out", "w"), stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/readyz", proc)
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
    [voucher] = requests.get(f"{demo_server}/api/v1/vouchers", headers=bearer(staff_token), timeout=10).json()["items"]
    assert voucher["status"] == "valid"
    shown = requests.post(f"{demo_server}/api/v1/vouchers/{voucher['id']}/show", headers=bearer(staff_token),
                          timeout=10)
    assert shown.status_code == 200 and len(shown.json()["short_code"]) == 10
    printed = (tmp_path / "demo.out").read_text(encoding="utf-8")
    code = re.search(r'cashier/bind -d \'\{"code": "([^"]+)"\}', printed).group(1)
    first = requests.post(f"{demo_server}/api/v1/auth/login", json={"code": "code:demo-cashier"}, timeout=10).json()
    cashier = requests.post(f"{demo_server}/api/v1/cashier/bind", json={"code": code}, headers=bearer(first["token"]),
                            timeout=10).json()["token"]
    redeemed = requests.post(f"{demo_server}/api/v1/cashier/redeem", json={"code": shown.json()["short_code"]},
                             headers=bearer(cashier), timeout=10)
    assert redeemed.status_code == 200 and redeemed.json()["holder"] == "李*师"

    officer_token = _login_and_bind(demo_server, **OFFICER)
    roster = requests.get(f"{demo_server}/api/v1/officer/staff?page_size=100", headers=bearer(officer_token),
                          timeout=10).json()
    assert roster["total"] == 50
    assert (tmp_path / "instance" / "smart-union.db").exists()   # the embedded SQLite file
