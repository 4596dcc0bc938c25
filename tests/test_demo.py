"""The embedded default: `smart-union demo` alone (SQLite, embedded Redis, fake WeChat, demo data) serves the
login and officer flows the README prints."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest
import requests

from tests.helpers import bearer, free_port, wait_ready

pytestmark = pytest.mark.backend_independent

SMART_UNION = str(Path(sys.executable).parent / "smart-union")


def _demo_env(home: Path) -> dict:
    """A newcomer's environment, with the demo's home (its SQLite file, Redis and uploads) in `home`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SMART_UNION")}, "PYTHONUNBUFFERED": "1",
            "SMART_UNION_HOME": str(home), "SMART_UNION__DEMO__FAKE_WECHAT_PORT": "0"}     # tests: any free port


@contextmanager
def _running_demo(cwd: Path, port: int, output: str = "demo.out", *options: str):
    proc = subprocess.Popen([SMART_UNION, "demo", "--port", str(port), *options], cwd=cwd, env=_demo_env(cwd),
                            stdout=open(cwd / output, "w"), stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/readyz", proc)
        yield url
    finally:
        proc.terminate()                               # what `kill <pid>` sends
        try:
            proc.wait(timeout=30)
        finally:
            with suppress(ProcessLookupError):         # the group is empty when the demo stopped everything
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def demo_server(tmp_path):
    with _running_demo(tmp_path, free_port()) as url:
        yield url


def _login_and_bind(url: str, employee_no: str, name: str, phone: str) -> str:
    first = requests.post(f"{url}/api/v1/auth/login", json={"code": f"code:demo-{employee_no}"}, timeout=10).json()
    if first["bound"]:
        return first["token"]
    bound = requests.post(f"{url}/api/v1/auth/bind", headers=bearer(first["token"]), timeout=10,
                          json={"employee_no": employee_no, "name": name, "phone_code": f"phone:{phone}"})
    assert bound.status_code == 200, bound.text
    return bound.json()["token"]


def test_demo_serves_staff_and_officer_flows(demo_server, tmp_path):
    from app.demo_data import DEMO_STAFF, LIAISONS, OFFICER

    staff_token = _login_and_bind(demo_server, **DEMO_STAFF)
    me = requests.get(f"{demo_server}/api/v1/me", headers=bearer(staff_token), timeout=10).json()
    assert me["name"] == DEMO_STAFF["name"]
    [voucher] = requests.get(f"{demo_server}/api/v1/vouchers", headers=bearer(staff_token), timeout=10).json()["items"]
    assert voucher["status"] == "valid"
    shown = requests.post(f"{demo_server}/api/v1/vouchers/{voucher['id']}/show", headers=bearer(staff_token),
                          timeout=10)
    assert shown.status_code == 200 and len(shown.json()["short_code"]) == 10
    printed = (tmp_path / "demo.out").read_text(encoding="utf-8")
    lines = printed[printed.index("# 蛋糕店收银员"):].split("\n\n")[0]          # the printed lines, run as printed
    bound = subprocess.run(["bash", "-euo", "pipefail", "-c", lines], capture_output=True, text=True, timeout=60)
    assert bound.returncode == 0, bound.stderr
    cashier = json.loads(bound.stdout)["token"]
    redeemed = requests.post(f"{demo_server}/api/v1/cashier/redeem", json={"code": shown.json()["short_code"]},
                             headers=bearer(cashier), timeout=10)
    assert redeemed.status_code == 200 and redeemed.json()["holder"] == "李*师"

    officer_token = _login_and_bind(demo_server, **OFFICER)
    roster = requests.get(f"{demo_server}/api/v1/officer/staff?page_size=100", headers=bearer(officer_token),
                          timeout=10).json()
    assert roster["total"] == 50 + len(LIAISONS)          # and the four departments' proposal liaisons
    stages = requests.get(f"{demo_server}/api/v1/officer/condolences", headers=bearer(officer_token), timeout=10)
    assert sorted(r["status"] for r in stages.json()["items"]) == \
        ["approved", "rejected", "returned", "submitted", "verified", "withdrawn"]
    verified = next(r for r in stages.json()["items"] if r["status"] == "verified")
    approved = requests.post(f"{demo_server}/api/v1/officer/condolences/{verified['id']}/approve",
                             json={"payment": "money"}, headers=bearer(officer_token), timeout=10)
    assert approved.status_code == 200, approved.text           # 张工会 approves what 陈主席 verified
    year = (datetime.now(timezone.utc) + timedelta(hours=8)).year          # Beijing's
    plan = requests.get(f"{demo_server}/api/v1/officer/visit-plans/{year}", headers=bearer(officer_token), timeout=10)
    assert plan.status_code == 200 and [v["status"] for v in plan.json()["visits"]].count("visited") == 1
    claims = requests.get(f"{demo_server}/api/v1/mutual-aid-claims", headers=bearer(staff_token), timeout=10).json()
    assert [c["status"] for c in claims["items"]] == ["submitted"]
    mine = requests.get(f"{demo_server}/api/v1/proposals?mine=true", headers=bearer(staff_token), timeout=10).json()
    assert (mine["items"][0]["status"], mine["items"][0]["seconds"]) == ("submitted", 2)   # 李老师 is a representative
    assert "closed" in {p["status"] for p in mine["items"]}
    public = requests.get(f"{demo_server}/api/v1/proposals", headers=bearer(staff_token), timeout=10).json()
    assert {p["status"] for p in public["items"]} >= {"accepted", "handling", "answered", "closed"}
    report = requests.get(f"{demo_server}/api/v1/officer/proposals/sessions/1/report.html",
                          headers=bearer(officer_token), timeout=10)
    assert "共立案6项，满意1项" in report.text
    assert (tmp_path / "instance" / "smart-union.db").exists()   # the embedded SQLite file


def _printed_walkthrough(printed: str) -> str:
    """The two five-minute walk-throughs the demo prints: one shell script, commands and comments."""
    script = printed[printed.index("=== 教职工"):printed.index("# ⑩")]
    return "\n".join(line for line in script.splitlines() if not line.startswith("==="))


def test_the_printed_walkthroughs_work_on_every_start(tmp_path):
    """A newcomer runs every printed line (login, announcements, signups, the waiting list, the inbox, vouchers,
    condolences, the roster, notices and their delivery report, an approval, the official account), stops the demo,
    starts it again on the same data, and the lines printed then work too."""
    port = free_port()
    for start, output in enumerate(("first.out", "second.out")):
        with _running_demo(tmp_path, port, output):
            printed = (tmp_path / output).read_text(encoding="utf-8")
            script = _printed_walkthrough(printed)
            assert script.count("curl ") >= 14 and "mp say" in script, f"start {start}: walk-through missing"
            ran = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True,
                                 timeout=180, env=_demo_env(tmp_path))
            assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
            assert '"name":"李老师"' in ran.stdout.replace(" ", "") and "waitlisted" in ran.stdout
            assert "公众号可以为您" in ran.stdout                        # mp say's reply
            assert "/approve" in script                           # a request is verified afresh for every start
            assert "共立案6项" in ran.stdout                        # the proposals' handling report
            fake = re.search(r"模拟微信（微信会送达的消息，按人分组）：(\S+)", printed).group(1)
            page = requests.get(fake, timeout=10).text
            if start == 0:       # (a restarted demo has a fresh fake WeChat, and its notices went out the first time)
                assert "mp-000002" in page and "公众号模板消息" in page   # what WeChat would have delivered to 李老师


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_stopping_the_demo_stops_everything_it_started(tmp_path, stop):
    """The demo and the redis-server it starts for itself (detached, in a session of its own) both end."""
    port = free_port()
    proc = subprocess.Popen([SMART_UNION, "demo", "--port", str(port)], cwd=tmp_path, env=_demo_env(tmp_path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        settings = json.loads((tmp_path / "instance" / "redis.db.settings").read_text())
        redis_pid = int(Path(settings["pidfile"]).read_text())
        assert _alive(redis_pid)
        proc.send_signal(stop)
        proc.wait(timeout=30)
        for _ in range(100):
            if not _alive(redis_pid):
                break
            time.sleep(0.1)
        assert not _alive(redis_pid), "the embedded redis-server outlived the demo"
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_the_banner_lists_the_demo_accounts(tmp_path):
    from app.demo_data import ACCOUNTS_TABLE

    with _running_demo(tmp_path, free_port(), "banner.out"):
        printed = (tmp_path / "banner.out").read_text(encoding="utf-8")
    for who, role in ACCOUNTS_TABLE:
        row = next(line for line in printed.splitlines() if line.strip().startswith(who["employee_no"]))
        assert who["name"] in row and who["phone"] in row and role in row


def test_a_busy_port_stops_the_demo_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = subprocess.run([SMART_UNION, "demo", "--port", str(port)], cwd=tmp_path, env=_demo_env(tmp_path),
                             capture_output=True, text=True, timeout=60)
    assert ran.returncode != 0
    assert f"端口 {port} 已被占用" in ran.stderr
    assert not (tmp_path / "instance").exists()          # no database created, nothing seeded


def test_reset_starts_the_demo_over_but_never_touches_a_database_server(tmp_path):
    stale = tmp_path / "instance" / "smart-union.db"
    stale.parent.mkdir()
    stale.write_bytes(b"not a database")                  # a broken leftover that would stop a normal start
    with _running_demo(tmp_path, free_port(), "reset.out", "--reset") as url:
        assert requests.get(f"{url}/readyz", timeout=10).status_code == 200

    server = subprocess.run([SMART_UNION, "demo", "--reset", "--port", str(free_port())], cwd=tmp_path,
                            env={**_demo_env(tmp_path), "SMART_UNION__DATABASE__URL": "postgresql+psycopg://127.0.0.1/test",
                                 "SMART_UNION__APP__SECRET_KEY": "k" * 40,
                                 "SMART_UNION__PRIVACY__KEYS__K1": "a2V5LWZvci1hLWRhdGFiYXNlLXNlcnZlci0wMTIzNDU=", "SMART_UNION__PRIVACY__CURRENT_KEY": "k1"},
                            capture_output=True, text=True, timeout=60)
    assert server.returncode != 0
    assert "只能清空内置的 SQLite 演示数据库" in server.stderr



def _processes_working_in(directory: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter():
        try:
            # a zombie has exited; only its (detached) parent can reap it
            if process.status() != psutil.STATUS_ZOMBIE and Path(process.cwd()).is_relative_to(directory):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def test_kill_stops_the_demo_and_its_embedded_redis(tmp_path):
    """`kill <pid>` (SIGTERM) leaves no redis-server behind: the embedded one runs detached, in instance/."""
    with _running_demo(tmp_path, free_port()):
        assert [p.name() for p in _processes_working_in(tmp_path / "instance")] == ["redis-server"]
    _, leftovers = psutil.wait_procs(_processes_working_in(tmp_path), timeout=15)   # a stopping redis may still be exiting
    leftovers = [p for p in leftovers if p.status() != psutil.STATUS_ZOMBIE]
    for process in leftovers:
        process.kill()
    assert leftovers == []
