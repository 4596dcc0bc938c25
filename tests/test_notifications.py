"""Notifications: channel choice per person, WeChat's answers, retries, quotas, the inbox and officer reports.
Sends go through wechatpy to the fake WeChat server; `/_fake/sent` shows what was delivered."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import requests
import time_machine
from sqlalchemy import func, select

from app.extensions import db
from app.unit_of_work import unit_of_work
from app.services import notifications
from app.services.audiences import Audience
from jobs.sender import Sender
from models import (
    Channel, DeliveryStatus, Notification, Staff, SubscriptionConsent, WeChatApp, WeChatIdentity,
)
from tests.conftest import clear_run_keys
from tests.helpers import bearer

GREETING_TPL = "TPL-MINI-GREETING"
SERVICE_SUB_TPL = "TPL-MINI-SERVICE"


@pytest.fixture
def wechat_user(app):
    """Gives a staff member WeChat identities: `follows` the official account, a mini-program openid, consents."""
    def _make(staff_id: int, follows: bool = False, mini: bool = True, consents: dict[str, int] | None = None):
        with app.app_context(), unit_of_work():
            if follows:
                db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid=f"mp-{staff_id}",
                                              staff_id=staff_id, following=True))
            if mini:
                db.session.add(WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"mini-{staff_id}",
                                              staff_id=staff_id))
            for template_id, remaining in (consents or {}).items():
                db.session.add(SubscriptionConsent(staff_id=staff_id, template_id=template_id, remaining=remaining))
    return _make


def notify(app, kind: str, staff_ids: list[int], occasion: str = "test:1", **kwargs):
    with app.app_context(), unit_of_work():
        notifications.notify_people(kind, occasion, staff_ids, kwargs.pop("title", "您报名的活动已确认"), **kwargs)


def drain(app) -> None:
    Sender(app).drain()


def sent(fake_wechat) -> list[dict]:
    return requests.get(f"{fake_wechat.url}_fake/sent", timeout=10).json()


def inject(fake_wechat, endpoint: str, errcode: int, times: int = 1) -> None:
    requests.post(f"{fake_wechat.url}_fake/inject", json={"endpoint": endpoint, "errcode": errcode, "times": times},
                  timeout=10).raise_for_status()


def row_of(app, staff_id: int) -> Notification:
    with app.app_context():
        return db.session.scalar(select(Notification).where(Notification.staff_id == staff_id))


def consent_left(app, staff_id: int, template_id: str) -> int:
    with app.app_context():
        return db.session.scalar(select(SubscriptionConsent.remaining).where(
            SubscriptionConsent.staff_id == staff_id, SubscriptionConsent.template_id == template_id))


TEMPLATE_SEND = "cgi-bin/message/template/send"
SUBSCRIBE_SEND = "cgi-bin/message/subscribe/send"


def test_follower_gets_a_template_message_with_client_msg_id(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, follows=True, consents={SERVICE_SUB_TPL: 1})
    notify(app, "service", [staff])
    drain(app)
    [message] = sent(fake_wechat)
    assert message["endpoint"] == TEMPLATE_SEND
    assert message["touser"] == f"mp-{staff}"
    row = row_of(app, staff)
    assert (row.status, row.channel) == (DeliveryStatus.SENT, Channel.TEMPLATE)
    assert message["client_msg_id"] == f"su-{row.id}"
    assert consent_left(app, staff, SERVICE_SUB_TPL) == 1     # the template channel spends no consent


def test_non_follower_with_consent_gets_subscribe_message_and_uses_it_up(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, consents={SERVICE_SUB_TPL: 1})
    notify(app, "service", [staff], occasion="test:1")
    notify(app, "service", [staff], occasion="test:2")
    drain(app)
    [message] = sent(fake_wechat)
    assert (message["endpoint"], message["touser"]) == (SUBSCRIBE_SEND, f"mini-{staff}")
    assert consent_left(app, staff, SERVICE_SUB_TPL) == 0
    with app.app_context():
        statuses = sorted(s.value for s in db.session.scalars(select(Notification.status)))
    assert statuses == ["inbox_only", "sent"]      # the second notice found no consent left


def test_a_claimed_batch_spending_consents_writes_its_rows_and_its_consents_in_one_statement_each(
        app, make_staff, wechat_user, count_queries):
    from app.services import delivery

    people = [make_staff(f"C{n:03d}") for n in range(6)]
    for staff in people:
        wechat_user(staff, consents={SERVICE_SUB_TPL: 1})
    notify(app, "service", people)
    with app.app_context(), unit_of_work():
        delivery.expand_one_fanout_batch()
    with count_queries() as queries, app.app_context(), unit_of_work():      # the commit's flush counted too
        claimed, _ = delivery.claim_due(50)
    assert len(claimed) == 6
    statements = [" ".join(s.split()).upper() for s in queries.statements]
    assert sum(s.startswith("UPDATE SUBSCRIPTION_CONSENTS") for s in statements) == 1     # all six spent at once
    assert sum(s.startswith("UPDATE NOTIFICATIONS") for s in statements) == 1             # the batch, once
    assert all(consent_left(app, staff, SERVICE_SUB_TPL) == 0 for staff in people)


def test_no_consent_means_inbox_only(app, fake_wechat, make_staff, wechat_user, client, token_for):
    staff = make_staff()
    wechat_user(staff, mini=False)
    notify(app, "service", [staff], title="体检通知")
    drain(app)
    assert sent(fake_wechat) == []
    assert row_of(app, staff).status is DeliveryStatus.INBOX_ONLY
    inbox = client.get("/api/v1/inbox", headers=bearer(token_for(staff))).json
    assert [i["title"] for i in inbox["items"]] == ["体检通知"]
    assert inbox["unread"] == 1


def test_greetings_never_use_template_messages(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, follows=True)           # a follower, but no consent for the greeting template
    notify(app, "greeting", [staff], title="生日快乐")
    drain(app)
    assert sent(fake_wechat) == []
    assert row_of(app, staff).status is DeliveryStatus.INBOX_ONLY


def test_43101_zeroes_the_consent_and_tries_the_next_channel(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, consents={GREETING_TPL: 3})
    inject(fake_wechat, SUBSCRIBE_SEND, 43101)
    notify(app, "greeting", [staff])
    drain(app)
    assert sent(fake_wechat) == []
    assert row_of(app, staff).status is DeliveryStatus.INBOX_ONLY
    assert consent_left(app, staff, GREETING_TPL) == 0


def test_43004_unfollowed_falls_back_to_subscribe(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, follows=True, consents={SERVICE_SUB_TPL: 1})
    inject(fake_wechat, TEMPLATE_SEND, 43004)
    notify(app, "service", [staff])
    drain(app)
    assert [m["endpoint"] for m in sent(fake_wechat)] == [SUBSCRIBE_SEND]
    with app.app_context():
        following = db.session.scalar(select(WeChatIdentity.following).where(
            WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.staff_id == staff))
    assert following is False


def three_followers_meet_a_45009(make_app, fake_wechat, make_staff, wechat_user, claim_batch: int):
    """Three followers notified, the first template send answered 45009, one send at a time; the sender drained.
    Returns (app, people) once it is asserted that nobody else tried that channel today."""
    app = make_app(**{"notifications.in_flight": 1, "notifications.claim_batch": claim_batch})
    people = [make_staff() for _ in range(3)]
    for staff in people:
        wechat_user(staff, follows=True)
    inject(fake_wechat, TEMPLATE_SEND, 45009)
    notify(app, "service", people)
    drain(app)
    calls = requests.get(f"{fake_wechat.url}_fake/calls", timeout=10).json()
    assert calls[TEMPLATE_SEND] == 1 and sent(fake_wechat) == []
    return app, people


def test_45009_pauses_the_channel_until_the_next_day(make_app, fake_wechat, make_staff, wechat_user):
    app, _people = three_followers_meet_a_45009(make_app, fake_wechat, make_staff, wechat_user, claim_batch=1)
    with app.app_context():
        rows = db.session.scalars(select(Notification)).all()
        assert {r.status for r in rows} == {DeliveryStatus.PENDING}
        assert all(r.next_attempt_at > datetime.now(timezone.utc) + timedelta(minutes=1) for r in rows)
    # the next day the quota is back: everyone gets their message
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(days=1, hours=1)):
        clear_run_keys(app.extensions["redis"])      # the pause key expires at midnight; the moved clock can't expire it
        drain(app)
    assert len(sent(fake_wechat)) == 3


def test_after_a_45009_the_sends_this_sender_already_claimed_do_not_call_wechat(make_app, fake_wechat, make_staff,
                                                                               wechat_user):
    """Rows claimed before the 45009 came back (the rest of its round, or the next round claimed meanwhile) learn of
    the pause before they are sent: they wait for tomorrow without one more call on the exhausted channel."""
    app, people = three_followers_meet_a_45009(make_app, fake_wechat, make_staff, wechat_user, claim_batch=3)
    tomorrow = datetime.now(timezone.utc) + timedelta(minutes=1)
    assert all(row_of(app, s).status is DeliveryStatus.PENDING and row_of(app, s).next_attempt_at > tomorrow
               for s in people)


def test_a_round_returns_with_its_last_wave_out_and_the_next_claims_meanwhile(make_app, fake_wechat, make_staff,
                                                                              wechat_user):
    """The sends never stop for a claim: a round hands over its rows and returns while the last in_flight sends are
    still with WeChat; the next round claims the following rows at once, and every row is sent once."""
    app = make_app(**{"notifications.in_flight": 2, "notifications.claim_batch": 2})
    people = [make_staff() for _ in range(4)]
    for staff in people:
        wechat_user(staff, follows=True)
    notify(app, "service", people)
    requests.post(f"{fake_wechat.url}_fake/inject", timeout=10,
                  json={"endpoint": TEMPLATE_SEND, "latency_ms": 1500, "times": -1}).raise_for_status()
    sender = Sender(app)
    assert sender.run_once() == 2                    # two claimed, and back at once: both still with WeChat
    assert sender.out == 2 and sent(fake_wechat) == []
    assert [row_of(app, s).status for s in people].count(DeliveryStatus.SENDING) == 2
    assert sender.run_once() == 4                    # two more claimed meanwhile; back once only they are out
    assert sender.out == 2
    assert sorted(row_of(app, s).status.value for s in people) == ["sending", "sending", "sent", "sent"]
    sender.drain()
    assert sender.out == 0
    assert {row_of(app, s).status for s in people} == {DeliveryStatus.SENT}
    assert sorted(m["touser"] for m in sent(fake_wechat)) == sorted(f"mp-{s}" for s in people)


def test_daily_quota_lets_a_large_fanout_continue_the_next_day(make_app, fake_wechat, make_staff, wechat_user):
    app = make_app(**{"notifications.template.daily_quota": 2})
    people = [make_staff() for _ in range(5)]
    for staff in people:
        wechat_user(staff, follows=True)
    notify(app, "service", people)
    drain(app)
    assert len(sent(fake_wechat)) == 2
    for day, expected in ((1, 4), (2, 5)):
        with time_machine.travel(datetime.now(timezone.utc) + timedelta(days=day)):
            # Redis expires keys (the cached access token) by its own clock, which time-machine cannot move
            clear_run_keys(app.extensions["redis"])
            drain(app)
        assert len(sent(fake_wechat)) == expected
    assert sorted(m["touser"] for m in sent(fake_wechat)) == sorted(f"mp-{s}" for s in people)


def test_a_batch_takes_todays_quota_at_once_and_gives_back_what_it_did_not_use(make_app, make_staff, wechat_user):
    from app import clock
    from app.extensions import redis_key
    from app.services import delivery

    app = make_app(**{"notifications.template.daily_quota": 10})
    people = [make_staff() for _ in range(5)]
    for staff in people[::2]:                                   # the others follow nothing: inbox only
        wechat_user(staff, follows=True)
    notify(app, "service", people)
    with app.app_context():
        with unit_of_work():
            delivery.expand_one_fanout_batch()
        with unit_of_work():
            claimed, handled = delivery.claim_due(50)
        used = app.extensions["redis"].get(redis_key("notify", "quota", "template", clock.local().strftime("%Y%m%d")))
    assert (len(claimed), handled) == (3, 5)
    assert int(used) == 3                   # taken for the whole batch at once, what was left over given back


@pytest.mark.postgresql_only     # rows read are counted by pg_stat_xact_user_tables
def test_each_batch_of_a_fanout_reads_the_rows_written_before_at_most_once(make_app):
    """Expanding a fan-out checks who already has the notice (someone who opened it early) once per batch, not once
    per person: with statistics taken before the notice (the bench's, a new deployment's), PostgreSQL compared each
    person of a batch with every row written so far, and the batches of a large fan-out grew ever slower."""
    from sqlalchemy import text
    from app.services import delivery
    from tests.test_sender_processes import alternating, seed_people

    app = make_app(**{"notifications.fanout_batch": 300})
    seed_people(app, alternating(1200))
    with app.app_context():
        with unit_of_work():
            notifications.notify_audience("service", "fanout:reads", Audience(), "工会会员信息核对")
        db.session.execute(text("ANALYZE notifications"))
        db.session.commit()
        for _ in range(3):
            with unit_of_work():
                delivery.expand_one_fanout_batch()
        with unit_of_work():
            assert delivery.expand_one_fanout_batch() == 300
            read = db.session.execute(text("SELECT seq_tup_read + COALESCE(idx_tup_fetch, 0) FROM "
                                           "pg_stat_xact_user_tables WHERE relname = 'notifications'")).scalar()
    assert read <= 900          # at worst the 900 rows written before, once; not 300 x 900 (270,000) as it was


def test_busy_wechat_is_retried_with_backoff(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, follows=True)
    inject(fake_wechat, TEMPLATE_SEND, -1)
    notify(app, "service", [staff])
    drain(app)
    row = row_of(app, staff)
    assert (row.status, row.attempts) == (DeliveryStatus.PENDING, 1)
    assert row.next_attempt_at > datetime.now(timezone.utc)
    with time_machine.travel(row.next_attempt_at + timedelta(seconds=1)):
        drain(app)
    assert row_of(app, staff).status is DeliveryStatus.SENT
    assert len(sent(fake_wechat)) == 1


def test_fails_after_max_attempts_and_officer_requeues(make_app, fake_wechat, make_staff, wechat_user, grant,
                                                       token_for):
    app = make_app(**{"notifications.max_attempts": 2, "notifications.backoff_seconds": 1})
    staff, officer = make_staff(), make_staff()
    grant(officer, "union_officer")
    wechat_user(staff, follows=True)
    inject(fake_wechat, TEMPLATE_SEND, -1, times=2)
    notify(app, "service", [staff])
    drain(app)
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(seconds=5)):
        drain(app)
    row = row_of(app, staff)
    assert row.status is DeliveryStatus.FAILED
    client = app.test_client()
    report = client.get(f"/api/v1/officer/notices/{row.notice_id}/report", headers=bearer(token_for(officer))).json
    assert report["counts"]["failed"] == 1
    assert report["reasons"][0]["reason"].startswith("微信错误 -1")
    requeued = client.post(f"/api/v1/officer/notices/{row.notice_id}/requeue", headers=bearer(token_for(officer)))
    assert requeued.json == {"requeued": 1}
    drain(app)
    assert row_of(app, staff).status is DeliveryStatus.SENT


def test_permanent_error_fails_at_once_and_gives_the_consent_back(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, consents={GREETING_TPL: 1})
    inject(fake_wechat, SUBSCRIBE_SEND, 40003)
    notify(app, "greeting", [staff])
    drain(app)
    assert row_of(app, staff).status is DeliveryStatus.FAILED
    assert consent_left(app, staff, GREETING_TPL) == 1


def test_long_values_are_trimmed_to_wechat_limits(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, consents={SERVICE_SUB_TPL: 1})
    notify(app, "service", [staff], title="关于做好二〇二六年度全校教职工健康体检工作的补充通知")
    drain(app)
    [message] = sent(fake_wechat)                   # the fake server answers 47003 to a thing over 20 characters
    assert len(message["data"]["thing1"]["value"]) == 20
    assert message["data"]["thing1"]["value"].endswith("…")


def test_staff_who_left_receive_nothing(app, fake_wechat, make_staff, wechat_user):
    from app.services import roster
    from models import StaffStatus

    staff = make_staff()
    wechat_user(staff, follows=True)
    notify(app, "service", [staff])
    with app.app_context(), unit_of_work():
        roster.set_status(db.session.get(Staff, staff), StaffStatus.LEFT, actor_label="test")
    drain(app)
    assert sent(fake_wechat) == []
    assert row_of(app, staff).status is DeliveryStatus.INBOX_ONLY


def test_one_occasion_never_notifies_a_person_twice(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, follows=True)
    for _ in range(3):
        notify(app, "service", [staff], occasion="signup:7:confirmed")
    drain(app)
    assert len(sent(fake_wechat)) == 1
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 1


# --- fan-out, inbox and withdrawal ---------------------------------------------------------------------------

def test_fanout_notice_is_in_the_inbox_before_any_sender_runs(app, client, make_staff, token_for):
    people = [make_staff() for _ in range(3)]
    with app.app_context(), unit_of_work():
        notifications.notify_audience("service", "campaign:1", Audience(), "中秋慰问品领取")
    token = token_for(people[1])
    inbox = client.get("/api/v1/inbox", headers=bearer(token)).json
    assert [i["title"] for i in inbox["items"]] == ["中秋慰问品领取"]
    assert inbox["unread"] == 1
    notice_id = inbox["items"][0]["id"]
    assert client.post(f"/api/v1/inbox/{notice_id}/read", headers=bearer(token)).json == {"unread": 0}
    drain(app)                                 # the fan-out later skips the one already read in the app
    assert row_of(app, people[1]).status is DeliveryStatus.SKIPPED
    assert client.get("/api/v1/inbox", headers=bearer(token)).json["items"][0]["read"] is True


def test_inbox_pages_newest_first(app, client, make_staff, token_for):
    staff = make_staff()
    for n in range(5):
        notify(app, "service", [staff], occasion=f"test:{n}", title=f"通知{n}")
    token = token_for(staff)
    first = client.get("/api/v1/inbox?limit=2", headers=bearer(token)).json
    assert [i["title"] for i in first["items"]] == ["通知4", "通知3"]
    second = client.get(f"/api/v1/inbox?limit=2&before={first['next_before']}", headers=bearer(token)).json
    assert [i["title"] for i in second["items"]] == ["通知2", "通知1"]
    assert client.post("/api/v1/inbox/read-all", headers=bearer(token)).json == {"unread": 0}
    assert client.get("/api/v1/inbox/unread-count", headers=bearer(token)).json == {"unread": 0}


def test_reading_someone_elses_notice_is_404(app, client, make_staff, token_for):
    owner, other = make_staff(), make_staff()
    notify(app, "service", [owner])
    notice_id = row_of(app, owner).notice_id
    response = client.post(f"/api/v1/inbox/{notice_id}/read", headers=bearer(token_for(other)))
    assert response.status_code == 404


def test_cancelled_occasion_sends_nothing_more(app, fake_wechat, make_staff, wechat_user):
    staff = make_staff()
    wechat_user(staff, follows=True)
    notify(app, "service", [staff], occasion="announcement:9")
    with app.app_context(), unit_of_work():
        assert notifications.cancel_notice("announcement:9") == 1
    drain(app)
    assert sent(fake_wechat) == []
    assert row_of(app, staff).status is DeliveryStatus.CANCELLED


def test_officer_fanout_to_20000_commits_one_short_transaction(app, client, make_staff, grant, token_for,
                                                                count_queries):
    from sqlalchemy import insert

    officer = make_staff()
    grant(officer, "union_officer")
    with app.app_context(), unit_of_work():
        db.session.execute(insert(Staff), [{"employee_no": f"F{n:06d}", "name": "会员"} for n in range(20_000)])
    token = token_for(officer)
    with count_queries() as queries:
        response = client.post("/api/v1/officer/notices", headers=bearer(token),
                               json={"title": "工会会员信息核对", "body": "请于本周内核对", "audience": {}})
    assert response.status_code == 201, response.json
    assert response.json["audience_size"] == 20_001
    inserts = [s for s in queries.statements if s.lstrip().upper().startswith("INSERT")]
    assert len(inserts) == 2                   # the notice and its audit entry: no per-person rows yet
    assert queries.count < 15
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 0


def test_sub_union_officer_notices_only_their_sub_union(app, client, make_staff, grant, token_for):
    officer = make_staff(sub_union="后勤分工会")
    grant(officer, "sub_union_officer", sub_union="后勤分工会")
    make_staff(sub_union="后勤分工会")
    make_staff(sub_union="机关分工会")
    token = token_for(officer)
    ok = client.post("/api/v1/officer/notices", headers=bearer(token), json={"title": "后勤会员大会"})
    assert ok.json["audience_size"] == 2
    with app.app_context():
        other = db.session.scalar(select(Staff.sub_union_id).where(Staff.sub_union_id.is_not(None))
                                  .order_by(Staff.sub_union_id.desc()))
    refused = client.post("/api/v1/officer/notices", headers=bearer(token),
                          json={"title": "x", "audience": {"sub_union_ids": [other + 1000]}})
    assert refused.status_code == 403


def test_officers_list_the_notices_they_can_follow_newest_first(app, client, make_staff, grant, token_for):
    union, sub = make_staff(sub_union="机关分工会"), make_staff(sub_union="后勤分工会")
    grant(union, "union_officer")
    grant(sub, "sub_union_officer", sub_union="后勤分工会")
    member = make_staff(sub_union="后勤分工会")
    to_all = client.post("/api/v1/officer/notices", headers=bearer(token_for(union)), json={"title": "全体大会"})
    to_logistics = client.post("/api/v1/officer/notices", headers=bearer(token_for(sub)), json={"title": "后勤会议"})
    with app.app_context(), unit_of_work():
        notifications.notify_people("service", "personal:1", [member], "个人通知")     # one person's: never listed
    union_list = client.get("/api/v1/officer/notices", headers=bearer(token_for(union))).json
    assert [n["title"] for n in union_list["items"]] == ["后勤会议", "全体大会"] and union_list["total"] == 2
    assert union_list["items"][0]["id"] == to_logistics.json["notice_id"]
    assert union_list["items"][0]["status_label"] in ("正在分发", "已分发（发送进程逐条送达）")
    sub_list = client.get("/api/v1/officer/notices?page_size=1", headers=bearer(token_for(sub))).json
    assert ([n["id"] for n in sub_list["items"]], sub_list["total"]) == ([to_logistics.json["notice_id"]], 1)
    assert client.get("/api/v1/officer/notices?page=2", headers=bearer(token_for(sub))).json["items"] == []
    assert to_all.status_code == 201
    assert client.get("/api/v1/officer/notices", headers=bearer(token_for(member))).status_code == 403


# --- consents -----------------------------------------------------------------------------------------------

def test_each_accept_allows_one_more_send(client, make_staff, token_for):
    token = token_for(make_staff())
    body = {"results": {SERVICE_SUB_TPL: "accept", GREETING_TPL: "reject"}}
    assert client.post("/api/v1/subscriptions", json=body, headers=bearer(token)).json == {
        "remaining": {SERVICE_SUB_TPL: 1}}
    again = client.post("/api/v1/subscriptions", json=body, headers=bearer(token)).json
    assert again == {"remaining": {SERVICE_SUB_TPL: 2}}
    banned = client.post("/api/v1/subscriptions", json={"results": {SERVICE_SUB_TPL: "ban"}}, headers=bearer(token))
    assert banned.json == {"remaining": {SERVICE_SUB_TPL: 0}}


def test_unknown_template_in_subscriptions_is_refused(client, make_staff, token_for):
    response = client.post("/api/v1/subscriptions", json={"results": {"NOPE": "accept"}},
                           headers=bearer(token_for(make_staff())))
    assert response.status_code == 422
    assert response.json["error"]["code"] == "unknown_template"


def test_a_template_that_may_have_arrived_is_not_resent_after_wechats_dedup_window(app, fake_wechat, make_staff,
                                                                                   wechat_user):
    from app.services import delivery

    staff = make_staff()
    wechat_user(staff, follows=True)
    notify(app, "service", [staff])
    with app.app_context(), unit_of_work():
        [claimed], _ = delivery.claim_due(10)          # a sender claims it, then dies before any answer
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(minutes=3)):
        with app.app_context(), unit_of_work():
            delivery.reap_expired_leases()             # taken back for a resend: still inside the window
        assert row_of(app, staff).status is DeliveryStatus.PENDING
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(minutes=12)):
        clear_run_keys(app.extensions["redis"])
        drain(app)
    row = row_of(app, staff)
    assert row.status is DeliveryStatus.UNKNOWN         # a resend now could reach the person twice
    assert sent(fake_wechat) == []


def _claimed_for(app, wechat_user, make_staff, people: int):
    from app.services import delivery

    staff = [make_staff() for _ in range(people)]
    for staff_id in staff:
        wechat_user(staff_id, follows=True)
    notify(app, "service", staff)
    with app.app_context(), unit_of_work():
        claimed, _ = delivery.claim_due(10)
    return staff, claimed


def test_a_rounds_outcomes_are_written_together_once_the_oldest_has_waited_its_bound(app, make_staff, wechat_user):
    """Outcomes wait for the end of the round, but never longer than outcome_max_age_seconds: a slow WeChat must not
    keep finished rows in "sending" until the lease brings them back."""
    from app.services.channels import Outcome
    from jobs.sender import Outcomes

    staff, claimed = _claimed_for(app, wechat_user, make_staff, 3)
    now = [100.0]
    outcomes = Outcomes(app, max_age_seconds=2.0, monotonic=lambda: now[0])
    outcomes.add(claimed[0], Outcome("sent"))
    now[0] = 101.5
    outcomes.add(claimed[1], Outcome("retry", "微信响应超时"))
    assert {row_of(app, s).status for s in staff} == {DeliveryStatus.SENDING}
    now[0] = 102.0                                   # the first outcome has waited 2 s: the batch goes now
    outcomes.add(claimed[2], Outcome("sent"))
    statuses = {s: row_of(app, s).status for s in staff}
    assert statuses == {staff[0]: DeliveryStatus.SENT, staff[1]: DeliveryStatus.PENDING,
                        staff[2]: DeliveryStatus.SENT}
    outcomes.write()                                 # the round's end finds nothing left to write


def test_an_aged_outcome_is_written_at_its_time_even_while_the_other_sends_are_still_out(app, make_staff,
                                                                                           wechat_user):
    """The round watches the bound itself: no further send has to finish for an outcome to be written on time."""
    from app.services.channels import Outcome
    from jobs.sender import MIN_WATCH_SECONDS, Outcomes

    staff, claimed = _claimed_for(app, wechat_user, make_staff, 2)
    now = [100.0]
    outcomes = Outcomes(app, max_age_seconds=2.0, monotonic=lambda: now[0])
    assert outcomes.seconds_until_due() == 2.0
    outcomes.add(claimed[0], Outcome("sent"))
    now[0] = 101.5
    assert outcomes.seconds_until_due() == pytest.approx(0.5)    # the round wakes then, whatever the other send does
    outcomes.write_if_due()
    assert {row_of(app, s).status for s in staff} == {DeliveryStatus.SENDING}
    now[0] = 102.0
    assert outcomes.seconds_until_due() == MIN_WATCH_SECONDS
    outcomes.write_if_due()
    assert sorted(row_of(app, s).status.value for s in staff) == ["sending", "sent"]   # the other send is still out


def test_an_outcome_arriving_after_its_lease_leaves_the_taken_back_row_alone(app, make_staff, wechat_user):
    from app.services import delivery
    from app.services.channels import Outcome
    from jobs.sender import Outcomes

    staff, claimed = _claimed_for(app, wechat_user, make_staff, 2)
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(minutes=3)):
        with app.app_context(), unit_of_work():
            delivery.reap_expired_leases()
    outcomes = Outcomes(app, max_age_seconds=2.0)
    for item in claimed:
        outcomes.add(item, Outcome("sent"))
    outcomes.write()
    assert {row_of(app, s).status for s in staff} == {DeliveryStatus.PENDING}   # queued again, not marked sent


@pytest.mark.postgresql_only      # a reason over 255 characters is refused by PostgreSQL (SQLite stores it)
def test_an_outcome_that_cannot_be_written_does_not_hold_back_the_others(app, make_staff, wechat_user, caplog):
    """Outcomes wait in one queue per sender: one that the database refuses is logged and left to its lease, and
    the rest of the batch, and every later outcome, are written."""
    from app.services.channels import Outcome
    from jobs.sender import Outcomes

    _staff, claimed = _claimed_for(app, wechat_user, make_staff, 3)
    outcomes = Outcomes(app, max_age_seconds=2.0)
    outcomes.add(claimed[0], Outcome("failed", "微信错误" * 100))
    outcomes.add(claimed[1], Outcome("sent"))
    outcomes.write()
    outcomes.add(claimed[2], Outcome("sent"))
    outcomes.write()
    with app.app_context():
        statuses = dict(db.session.execute(select(Notification.id, Notification.status)).all())
    assert statuses == {claimed[0].id: DeliveryStatus.SENDING, claimed[1].id: DeliveryStatus.SENT,
                        claimed[2].id: DeliveryStatus.SENT}
    assert f"outcome of notification {claimed[0].id} not written" in caplog.text


def test_outcomes_may_not_wait_a_large_part_of_the_lease(settings):
    from app.config import ConfigError, load_config

    with pytest.raises(ConfigError) as refused:
        load_config(environ={}, overrides={**settings, "notifications.lease_seconds": 10,
                                           "notifications.outcome_max_age_seconds": 6})
    assert "outcome_max_age_seconds" in str(refused.value)


def test_a_sender_warns_when_a_round_of_timed_out_sends_could_outlast_its_lease(settings, caplog):
    """A round's rows wait their turn in the sender, behind the last wave of the round before: were every send to time
    out on connecting and on reading, the last of 96 rows at 8 in flight would be recorded after 132 s, past the
    120 s lease, and another sender could take them back meanwhile. The default round (80: 112 s at worst) ends
    within the lease; a risky one is warned of."""
    import logging

    from app.config import load_config
    from jobs.sender import warn_if_a_round_may_outlast_its_lease

    assert not warn_if_a_round_may_outlast_its_lease(load_config(environ={}, overrides=settings))
    risky = load_config(environ={}, overrides={**settings, "notifications.claim_batch": 96})
    with caplog.at_level(logging.WARNING, logger="jobs.sender"):
        assert warn_if_a_round_may_outlast_its_lease(risky)
    assert "claim_batch 96" in caplog.text and "132 s" in caplog.text and "lease_seconds (120)" in caplog.text
