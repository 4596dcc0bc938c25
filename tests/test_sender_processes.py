"""Several real `smart-union sender` processes on one database: row locks decide who sends what.

The senders are subprocesses (the same database, Redis and in-process fake WeChat server as the test, through
`subprocess_env`); the test seeds the roster in bulk, writes notices, starts the senders, polls the database until
the outbox is settled (bounded) and then reads what the fake server delivered (`/_fake/sent`). The last test
stays in one process, to move the clock past WeChat's 10-minute client_msg_id window.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pytest
import requests
import time_machine
from sqlalchemy import func, insert, select

from app.extensions import db
from app.unit_of_work import unit_of_work
from app.services import channels, delivery, notifications
from app.services.audiences import Audience
from jobs.sender import Sender
from models import (
    Channel, DeliveryStatus, Notice, NoticeStatus, Notification, Staff, SubscriptionConsent, WeChatApp,
    WeChatIdentity,
)

pytestmark = pytest.mark.row_locks

SMART_UNION = str(Path(sys.executable).parent / "smart-union")
TEMPLATE_SEND = "cgi-bin/message/template/send"
SUBSCRIBE_SEND = "cgi-bin/message/subscribe/send"
SERVICE_SUB_TPL = "TPL-MINI-SERVICE"
GREETING_TPL = "TPL-MINI-GREETING"
UNSETTLED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING)


# --- seeding in bulk -------------------------------------------------------------------------------------------

def seed_people(app, kinds: list[str], consents: dict[str, int] | None = None) -> dict[str, list[int]]:
    """One staff member per entry of `kinds`, in id order: "follower" follows the official account (and has a
    mini-program openid but no consent); "subscriber" has only a mini-program openid and `consents`.
    Bulk inserts (no roster service), so 10,000 people take a second. Returns {kind: [staff ids]}."""
    with app.app_context(), unit_of_work():
        db.session.execute(insert(Staff), [{"employee_no": f"S{n:06d}", "name": "会员"} for n in range(len(kinds))])
        ids = db.session.scalars(select(Staff.id).where(Staff.employee_no.like("S%")).order_by(Staff.employee_no))
        people: dict[str, list[int]] = {"follower": [], "subscriber": []}
        for staff_id, kind in zip(ids.all(), kinds, strict=True):
            people[kind].append(staff_id)
        identities = [{"app": WeChatApp.MINI_PROGRAM, "openid": f"mini-{sid}", "staff_id": sid}
                      for sid in people["follower"] + people["subscriber"]]
        identities += [{"app": WeChatApp.OFFICIAL_ACCOUNT, "openid": f"mp-{sid}", "staff_id": sid, "following": True}
                       for sid in people["follower"]]
        db.session.execute(insert(WeChatIdentity), identities)
        rows = [{"staff_id": sid, "template_id": tpl, "remaining": n}
                for sid in people["subscriber"] for tpl, n in (consents or {}).items()]
        if rows:
            db.session.execute(insert(SubscriptionConsent), rows)
    return people


def alternating(n: int) -> list[str]:
    return ["follower" if i % 2 == 0 else "subscriber" for i in range(n)]


# --- the fake WeChat server --------------------------------------------------------------------------------------

def sent(fake_wechat) -> list[dict]:
    return requests.get(f"{fake_wechat.url}_fake/sent", timeout=30).json()


def calls(fake_wechat) -> dict[str, int]:
    return requests.get(f"{fake_wechat.url}_fake/calls", timeout=30).json()


def add_latency(fake_wechat, latency_ms: int) -> None:
    for endpoint in (TEMPLATE_SEND, SUBSCRIBE_SEND):
        requests.post(f"{fake_wechat.url}_fake/inject", timeout=10,
                      json={"endpoint": endpoint, "latency_ms": latency_ms, "times": -1}).raise_for_status()


def recipients(messages: list[dict], endpoint: str) -> Counter:
    return Counter(m["touser"] for m in messages if m["endpoint"] == endpoint)


# --- sender processes ----------------------------------------------------------------------------------------

class Senders:
    """`smart-union sender` subprocesses with their own logs; always stopped at the end of the test."""

    def __init__(self, env: dict[str, str], log_dir: Path):
        self.env = env
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self, count: int = 1) -> list[subprocess.Popen]:
        started = []
        for _ in range(count):
            log = self.log_dir / f"sender-{len(self.procs)}.log"
            with log.open("w") as fh:
                proc = subprocess.Popen([SMART_UNION, "sender"], env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                                        start_new_session=True)
            self.procs.append(proc)
            self.logs.append(log)
            started.append(proc)
        return started

    def running(self) -> list[subprocess.Popen]:
        return [p for p in self.procs if p.poll() is None]

    def check_alive(self, procs: list[subprocess.Popen]) -> None:
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"sender {proc.pid} exited with {proc.returncode}:\n{self.output()}")

    def kill(self, proc: subprocess.Popen) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def stop(self, timeout: float = 30) -> list[int]:
        """SIGTERM every running sender and wait (bounded); returns their exit codes."""
        live = self.running()
        for proc in live:
            proc.send_signal(signal.SIGTERM)
        codes = []
        deadline = time.monotonic() + timeout
        for proc in live:
            try:
                codes.append(proc.wait(max(0.1, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                codes.append(proc.wait(10))
        return codes

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)


@pytest.fixture
def senders(subprocess_env, tmp_path):
    def _make(**notifications_settings) -> Senders:
        env = dict(subprocess_env)
        for key, value in {"poll_seconds": 0.2, **notifications_settings}.items():
            env[f"SMART_UNION__NOTIFICATIONS__{key.upper()}"] = str(value)
        made.append(Senders(env, tmp_path))
        return made[-1]

    made: list[Senders] = []
    yield _make
    for group in made:
        group.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_idle(procs: list[subprocess.Popen], group: Senders, timeout: float = 60) -> None:
    """Until every sender has started (imports done, first polls made): their CPU time stops growing fast."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        group.check_alive(procs)
        now = [cpu_seconds(p.pid) for p in procs]
        if last is not None and all(b - a < 0.05 for a, b in zip(last, now)):
            return
        last = now
        time.sleep(0.5)
    pytest.fail(f"senders did not settle within {timeout}s:\n{group.output()}")


# --- polling the database ------------------------------------------------------------------------------------

def status_counts(app) -> Counter:
    with app.app_context():
        return Counter(dict(db.session.execute(select(Notification.status, func.count())
                                               .group_by(Notification.status)).all()))


def fanouts_open(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Notice).where(
            Notice.status == NoticeStatus.FANNING_OUT))


def wait_for(app, condition: Callable[[], bool], timeout: float, group: Senders, procs: list[subprocess.Popen],
             what: str, interval: float = 0.25) -> None:
    """Polls `condition` until it holds (bounded); fails at once if a sender died, with its log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        group.check_alive(procs)
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}; rows by status {dict(status_counts(app))}\n"
                f"{group.output()}")


def settled(app, expected_rows: int) -> Callable[[], bool]:
    """The outbox is done: every per-person row exists, no fan-out is open, nothing pending or sending."""
    def _check() -> bool:
        counts = status_counts(app)
        return (sum(counts.values()) == expected_rows and not any(counts[s] for s in UNSETTLED)
                and fanouts_open(app) == 0)
    return _check


def rows_by_staff(app) -> dict[int, list[Notification]]:
    with app.app_context():
        found: dict[int, list[Notification]] = {}
        for row in db.session.scalars(select(Notification).order_by(Notification.id)):
            found.setdefault(row.staff_id, []).append(row)
        return found


# --- tests ---------------------------------------------------------------------------------------------------

@pytest.mark.soak
def test_three_senders_drain_a_fanout_of_10000_each_person_once(app, fake_wechat, senders):
    people = seed_people(app, alternating(10_000), consents={SERVICE_SUB_TPL: 1})
    group = senders(in_flight=8, claim_batch=40, fanout_batch=2000)
    procs = group.start(3)
    wait_until_idle(procs, group)
    cpu_before = [cpu_seconds(p.pid) for p in procs]

    with app.app_context(), unit_of_work():
        notifications.notify_audience("service", "campaign:10000", Audience(), "工会会员信息核对",
                                      body="请于本周内在小程序中核对个人信息")
    wait_for(app, settled(app, 10_000), timeout=180, group=group, procs=procs, what="10,000 rows sent",
             interval=0.5)
    work = [cpu_seconds(p.pid) - before for p, before in zip(procs, cpu_before)]
    assert group.stop() == [0, 0, 0], group.output()      # SIGTERM: each finishes its round and exits cleanly

    assert status_counts(app) == Counter({DeliveryStatus.SENT: 10_000})
    messages = sent(fake_wechat)
    assert len(messages) == 10_000
    assert recipients(messages, TEMPLATE_SEND) == Counter({f"mp-{sid}": 1 for sid in people["follower"]})
    assert recipients(messages, SUBSCRIBE_SEND) == Counter({f"mini-{sid}": 1 for sid in people["subscriber"]})
    counted = calls(fake_wechat)
    assert counted[TEMPLATE_SEND] + counted[SUBSCRIBE_SEND] == 10_000       # nothing sent twice, nothing retried
    with app.app_context():
        client_msg_ids = {m["client_msg_id"] for m in messages if m["endpoint"] == TEMPLATE_SEND}
        template_rows = db.session.scalars(select(Notification.id).where(
            Notification.channel == Channel.TEMPLATE)).all()
        assert client_msg_ids == {f"su-{rid}" for rid in template_rows}
        assert db.session.scalar(select(func.sum(SubscriptionConsent.remaining))) == 0
    # More than one process did the work: each sender that sent spent far more CPU than an idle one polling.
    busy = [w for w in work if w >= 0.2 * max(work)]
    assert len(busy) >= 2, f"CPU seconds per sender during the drain: {work}"


def test_sender_killed_mid_fanout_and_restarted(app, fake_wechat, senders):
    people = seed_people(app, alternating(300), consents={SERVICE_SUB_TPL: 1})
    followers, subscribers = set(people["follower"]), set(people["subscriber"])
    settings = dict(in_flight=8, claim_batch=16, fanout_batch=20, lease_seconds=5)
    add_latency(fake_wechat, 1000)           # every send takes a second: a kill finds 8 of them under way
    with app.app_context(), unit_of_work():
        notifications.notify_audience("service", "campaign:kill", Audience(), "中秋慰问品领取",
                                      body="请到分工会领取")
    first = senders(**settings)
    [victim] = first.start(1)

    def mid_send() -> bool:
        """Some template sends have reached WeChat and are not recorded yet (on a loaded machine a claimed row may
        not have left the process: killing then would test nothing)."""
        counts = status_counts(app)
        if counts[DeliveryStatus.SENT] < 16 or not counts[DeliveryStatus.SENDING]:
            return False
        with app.app_context():
            recorded = db.session.scalar(select(func.count()).select_from(Notification).where(
                Notification.status == DeliveryStatus.SENT, Notification.channel == Channel.TEMPLATE))
        return calls(fake_wechat).get(TEMPLATE_SEND, 0) > recorded
    wait_for(app, mid_send, timeout=60, group=first, procs=[victim], what="a sender mid-send", interval=0.05)
    first.kill(victim)

    with app.app_context():
        orphaned = db.session.scalars(select(Notification).where(
            Notification.status == DeliveryStatus.SENDING)).all()
        assert fanouts_open(app) == 1                   # killed in the middle of the fan-out
    assert {r.channel for r in orphaned} == {Channel.TEMPLATE, Channel.SUBSCRIBE}
    # The sends under way at the kill still reach the fake server (within a second); the restarted sender takes
    # their rows back only when the lease ends, 5 s after the claim: the repeats arrive after the originals.
    add_latency(fake_wechat, 20)
    second = senders(**settings)
    procs = second.start(1)
    wait_for(app, settled(app, 300), timeout=120, group=second, procs=procs, what="the restarted sender to finish")
    assert second.stop() == [0]

    rows = {sid: r for sid, [r] in rows_by_staff(app).items()}      # one row per person
    assert set(rows) == followers | subscribers
    messages = sent(fake_wechat)
    # template messages: resent after the lease with the same client_msg_id, and WeChat dropped the repeats
    assert recipients(messages, TEMPLATE_SEND) == Counter({f"mp-{sid}": 1 for sid in followers})
    assert calls(fake_wechat)[TEMPLATE_SEND] > len(followers), "no template send was repeated after the kill"
    assert all(rows[sid].status is DeliveryStatus.SENT and rows[sid].channel is Channel.TEMPLATE
               for sid in followers)
    # subscribe messages: at most once each; the ones caught mid-send are `unknown`, never resent
    delivered = recipients(messages, SUBSCRIBE_SEND)
    assert set(delivered.values()) <= {1}
    assert set(delivered) <= {f"mini-{sid}" for sid in subscribers}
    statuses = Counter(rows[sid].status for sid in subscribers)
    assert set(statuses) <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}
    assert statuses[DeliveryStatus.UNKNOWN] == sum(r.channel is Channel.SUBSCRIBE for r in orphaned) > 0
    assert statuses[DeliveryStatus.UNKNOWN] + statuses[DeliveryStatus.SENT] == len(subscribers)
    for sid in subscribers:
        if rows[sid].status is DeliveryStatus.SENT:
            assert delivered[f"mini-{sid}"] == 1
        else:
            assert rows[sid].last_error
    with app.app_context():             # each consent spent once: by the send, or by the send that may have arrived
        assert db.session.scalar(select(func.sum(SubscriptionConsent.remaining))) == 0


def test_two_senders_never_spend_one_consent_twice(app, fake_wechat, senders):
    consents, notices = 2, 4
    people = seed_people(app, ["subscriber"] * 30, consents={GREETING_TPL: consents})["subscriber"]
    add_latency(fake_wechat, 20)
    group = senders(in_flight=4, claim_batch=3)
    procs = group.start(2)
    wait_until_idle(procs, group)        # both polling before the first row exists
    # Person by person, in one transaction, so each person's rows are next to each other in the queue: the two
    # senders' small claims keep catching rows of the same person at the same time and race for the same consents.
    with app.app_context(), unit_of_work():
        for sid in people:
            for n in range(notices):     # greetings go by subscribe message only
                notifications.notify_people("greeting", f"greeting:{n}:{sid}", [sid], "生日快乐", body="工会祝您生日快乐")
    wait_for(app, settled(app, len(people) * notices), timeout=120, group=group, procs=procs, what="the greetings")
    assert group.stop() == [0, 0]

    delivered = recipients(sent(fake_wechat), SUBSCRIBE_SEND)
    rows = rows_by_staff(app)
    with app.app_context():
        left = dict(db.session.execute(select(SubscriptionConsent.staff_id, SubscriptionConsent.remaining)).all())
    for sid in people:
        got = delivered[f"mini-{sid}"]
        statuses = Counter(r.status for r in rows[sid])
        assert got <= consents
        assert statuses[DeliveryStatus.SENT] == got
        assert left[sid] == consents - got                   # every consent spent is one message delivered
        assert set(statuses) <= {DeliveryStatus.SENT, DeliveryStatus.INBOX_ONLY}
        assert got == consents                               # and none was left unused while a notice went unsent


def test_a_template_send_lost_longer_than_the_dedup_window_is_not_resent(app, fake_wechat):
    """The only sender dies right after its send reached WeChat and comes back 11 minutes later: WeChat's
    client_msg_id window (10 minutes from the first send) is over, so a resend would be a second message."""
    [staff] = seed_people(app, ["follower"])["follower"]
    with app.app_context(), unit_of_work():
        notifications.notify_people("service", "late:1", [staff], "体检通知")
    with app.app_context():
        with unit_of_work():
            [claimed], _ = delivery.claim_due(10)
        assert channels.send(claimed.channel, claimed.id, claimed.openid, claimed.message).kind == "sent"
    # ... and the sender is gone before recording the outcome; the next one starts 11 minutes after the send
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(minutes=11)):
        Sender(app).drain()
    assert recipients(sent(fake_wechat), TEMPLATE_SEND) == Counter({f"mp-{staff}": 1})
    with app.app_context():
        assert db.session.scalar(select(Notification.status)) is DeliveryStatus.UNKNOWN
