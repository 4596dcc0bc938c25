"""What the engineer who runs the service sees: a request id that follows a notice from the request to its
delivery, logs with no openid, phone or token, metrics summed over gunicorn workers and the sender, /metrics kept
internal, and /readyz telling of a stuck outbox."""

from __future__ import annotations

import io
import logging
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from app import clock, logs
from app.extensions import db
from app.unit_of_work import unit_of_work
from jobs.sender import Sender
from models import DeliveryStatus, Notice, Notification
from tests.conftest import REPO_ROOT
from tests.events_support import create_event
from tests.helpers import bearer, free_port, linked_follower, wait_ready

BIN = Path(sys.executable).parent
OPENID = "oWx9Zq3LmN7pT2vR5sK8yB4hD6fA"        # shaped like a real WeChat openid (28 characters)
PHONE = "13912345678"


@pytest.fixture
def log_lines():
    """What the service's own handler writes (format, request id, masking), captured."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.addFilter(logs._RequestId())
    handler.setFormatter(logs.MaskedText(logs.TEXT_FORMAT))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lambda: buffer.getvalue().splitlines()
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def officer(make_staff, grant, token_for):
    staff_id = make_staff("U1", name="工会干事")
    grant(staff_id, "union_officer")
    return token_for(staff_id)


def test_a_request_id_follows_a_notice_from_the_request_to_the_sender(app, client, officer, make_staff, log_lines,
                                                                       fake_wechat):
    linked_follower(app, make_staff("T1", name="张老师"))
    response = client.post("/api/v1/officer/notices", json={"title": "体检安排"}, headers=bearer(officer))
    request_id = response.headers["X-Request-ID"]
    assert response.status_code == 201 and re.fullmatch(r"[0-9a-f]{16}", request_id)
    assert any(f"[{request_id}] POST /api/v1/officer/notices 201" in line for line in log_lines())
    with app.app_context():
        assert db.session.get(Notice, response.json["notice_id"]).request_id == request_id
    Sender(app).drain()
    sender_lines = [line for line in log_lines() if "jobs.sender" in line and "sent" in line]
    assert sender_lines and all(f"[{request_id}]" in line for line in sender_lines)


def test_a_proxys_request_id_is_kept_only_when_proxies_are_trusted(make_app):
    trusted = make_app(**{"app.trusted_proxy_hops": 1}).test_client()
    assert trusted.get("/healthz", headers={"X-Request-ID": "lb-42"}).headers["X-Request-ID"] == "lb-42"
    direct = make_app().test_client()
    assert direct.get("/healthz", headers={"X-Request-ID": "lb-42"}).headers["X-Request-ID"] != "lb-42"


def test_a_request_id_carrying_a_phone_number_is_replaced_and_odd_methods_are_logged_as_other(make_app, log_lines):
    """The request log's line is written unmasked, so nothing a caller chose may carry personal data into it."""
    trusted = make_app(**{"app.trusted_proxy_hops": 1, "app.log_level": "INFO"}).test_client()
    assert trusted.get("/healthz", headers={"X-Request-ID": "13812345678"}).headers["X-Request-ID"] != "13812345678"
    trusted.open("/healthz", method="13912345678")
    assert not any("13812345678" in line or "13912345678" in line for line in log_lines())
    assert any("OTHER /healthz" in line or "OTHER (no route)" in line for line in log_lines())


def test_no_openid_phone_or_token_reaches_a_log_line(make_app, make_staff, fake_wechat, log_lines):
    from tests.test_auth import bind, login
    from tests.conftest import LiveServer
    from tests.wechat_client import WeChatPusher

    make_staff("000123", name="王老师", phone=PHONE)
    server = LiveServer(make_app(**{"app.log_level": "DEBUG"})).start()
    try:
        first = login(server, OPENID).json()["token"]
        bound = bind(server, first)
        token = bound.json()["token"]
        logging.getLogger("tests").info("bound %s with %s using %s (touser=%s)", OPENID, PHONE, token, OPENID)
        wechat = WeChatPusher(server.url)
        wechat.push(wechat.text(OPENID, "帮助"))
    finally:
        server.stop()
    text = "\n".join(log_lines())
    assert "POST /api/v1/auth/bind 200" in text and "bound" in text and "POST /wechat/mp 200" in text
    for secret in (OPENID, PHONE, first, token):
        assert secret not in text
    assert not re.search(r"signature=[0-9a-f]{40}", text)       # no signed query of /wechat/mp


def test_metrics_are_only_for_the_configured_networks_or_token(make_app):
    client = make_app(**{"metrics.token": "scrape-token-0123"}).test_client()
    assert client.get("/metrics").status_code == 200                       # loopback
    outside = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/metrics", environ_base=outside).status_code == 404
    assert client.get("/metrics", environ_base=outside, headers=bearer("wrong")).status_code == 404
    allowed = client.get("/metrics", environ_base=outside, headers=bearer("scrape-token-0123"))
    assert allowed.status_code == 200 and "smart_union_outbox_rows" in allowed.get_data(as_text=True)


def test_readyz_reports_a_stuck_outbox_but_stays_ready(app, client, make_staff):
    staff_id = make_staff("T1")
    assert client.get("/readyz").json["outbox"] == "ok"
    with app.app_context(), unit_of_work():
        notice = Notice(kind="service", occasion="stuck:1", title="通知")
        db.session.add(notice)
        db.session.flush()
        db.session.add(Notification(notice_id=notice.id, staff_id=staff_id, status=DeliveryStatus.PENDING,
                                    next_attempt_at=clock.now() - timedelta(hours=1)))
    response = client.get("/readyz")
    assert (response.status_code, response.json["outbox"]) == (200, "stuck")


def _metric(text: str, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}(?:\{{(.*)\}})? ([0-9.e+]+)", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


def test_one_scrape_sums_gunicorn_workers_and_the_sender(app, subprocess_env, make_staff, grant, token_for,
                                                          fake_wechat, tmp_path):
    officer = make_staff("U1", name="工会干事")
    grant(officer, "union_officer")
    people = [make_staff(f"T{n}", name=f"老师{n}") for n in range(6)]
    for staff_id in people:
        linked_follower(app, staff_id)
    tokens = [token_for(s) for s in people]
    env = {**subprocess_env, "SMART_UNION_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
           "SMART_UNION__NOTIFICATIONS__POLL_SECONDS": "0.2"}
    port = free_port()
    web = subprocess.Popen([str(BIN / "gunicorn"), "-c", str(REPO_ROOT / "gunicorn.conf.py")], cwd=REPO_ROOT,
                           env={**env, "SMART_UNION_BIND": f"127.0.0.1:{port}"}, stdout=subprocess.DEVNULL,
                           stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    sender = None
    try:
        wait_ready(f"{url}/healthz", web)
        event_id = create_event(_Http(url), token_for(officer))
        for token in tokens:
            assert requests.post(f"{url}/api/v1/events/{event_id}/signup", json={}, headers=bearer(token),
                                 timeout=10).status_code == 200
        draft = requests.post(f"{url}/api/v1/officer/announcements", json={"title": "通知", "body": "正文"},
                              headers=bearer(token_for(officer)), timeout=10).json()
        assert requests.post(f"{url}/api/v1/officer/announcements/{draft['id']}/publish",
                             headers=bearer(token_for(officer)), timeout=10).status_code == 200
        sender = subprocess.Popen([str(BIN / "smart-union"), "sender"], cwd=REPO_ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        scrape = ""
        for _ in range(100):
            scrape = requests.get(f"{url}/metrics", timeout=10).text
            if _metric(scrape, "smart_union_sends_total", outcome="sent") >= len(people):
                break
            time.sleep(0.2)
    finally:
        for proc in (sender, web):
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=20)
    signups = _metric(scrape, "smart_union_http_requests_total", route="/api/v1/events/<int:event_id>/signup",
                      status="200")
    assert signups == len(people)                         # summed over both workers
    assert _metric(scrape, "smart_union_sends_total", channel="template", outcome="sent") >= len(people)
    with app.app_context():
        assert db.session.scalars(select(Notification.status)).all()       # the fan-out reached the outbox


def test_workers_recycled_by_gunicorn_are_forked_from_the_loaded_app_and_serve_at_once(app, subprocess_env,
                                                                                        make_staff, token_for,
                                                                                        tmp_path):
    token = token_for(make_staff("R1", name="老师"))
    env = {**subprocess_env, "SMART_UNION_WORKERS": "1", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
           "GUNICORN_CMD_ARGS": "--max-requests 3 --max-requests-jitter 0"}
    port = free_port()
    log_path = tmp_path / "gunicorn.log"
    with log_path.open("w") as log_file:
        web = subprocess.Popen([str(BIN / "gunicorn"), "-c", str(REPO_ROOT / "gunicorn.conf.py")], cwd=REPO_ROOT,
                               env={**env, "SMART_UNION_BIND": f"127.0.0.1:{port}"}, stdout=log_file,
                               stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_ready(f"{url}/healthz", web)
            answers = [requests.get(f"{url}/api/v1/me", headers=bearer(token), timeout=10) for _ in range(7)]
            scrape = requests.get(f"{url}/metrics", timeout=10).text
        finally:
            os.killpg(web.pid, signal.SIGTERM)
            web.wait(timeout=20)
    assert [a.status_code for a in answers] == [200] * 7
    assert {a.json()["employee_no"] for a in answers} == {"R1"}        # each new worker reads the database at once
    assert len({a.headers["X-Request-ID"] for a in answers}) == 7      # no two forked workers name requests alike
    log = log_path.read_text()
    assert log.count("Autorestarting worker") >= 2 and "Traceback" not in log, log
    assert _metric(scrape, "smart_union_http_requests_total", route="/api/v1/me", status="200") == 7


class _Http:
    """The two calls tests.events_support.create_event makes, over real HTTP."""

    def __init__(self, url: str):
        self.url = url

    def post(self, path: str, json=None, headers=None):
        response = requests.post(self.url + path, json=json, headers=headers, timeout=10)
        response.json = response.json()
        return response


def test_a_job_runs_notices_and_lines_carry_its_run_id_and_the_scrape_shows_it(make_app, make_staff, log_lines):
    import time_machine

    from jobs.schedule import schedule
    from jobs.scheduler import JobRunner

    today = clock.local().date()
    staff_id = make_staff("B1", name="寿星", birthday=today.replace(year=1980) if (today.month, today.day) != (2, 29)
                          else today.replace(year=1980, day=28))
    app = make_app(**{"app.log_level": "INFO"})
    runner = JobRunner(app)
    runner.heartbeat()
    [spec] = [s for s in schedule() if s.id == "greetings.birthdays"]
    with time_machine.travel(clock.local().replace(hour=10)):
        assert runner.run_job(spec) == 1
    with app.app_context():
        notice = db.session.scalar(select(Notice).join(Notification).where(Notification.staff_id == staff_id))
    assert notice.request_id.startswith("job:greetings.birthdays:")
    assert any(f"[{notice.request_id}] job greetings.birthdays did 1" in line for line in log_lines())
    scrape = app.test_client().get("/metrics").get_data(as_text=True)
    runner.leader.release()
    assert _metric(scrape, "smart_union_scheduler_leader") == 1
    assert _metric(scrape, "smart_union_job_last_success_timestamp_seconds", job="greetings.birthdays") > 0


def test_gunicorn_freezes_the_loaded_app_before_each_fork_so_no_worker_walks_it(monkeypatch, tmp_path):
    """A worker's full collection never walks the app it was forked with (90 ms of its time per walk, and every page
    of the master's memory copied into it)."""
    import gc
    import runpy

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))     # the config's setdefault changes nothing here
    hooks = runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))
    gc.unfreeze()
    try:
        hooks["pre_fork"](None, None)
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
