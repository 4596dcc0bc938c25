"""A signed query string from a log cannot post as an officer: the forged-push chain is refused at its first step in
every message mode where the step applies, while WeChat's genuine retry still gets the first reply."""

from __future__ import annotations

import time

import pytest
import time_machine
from sqlalchemy import func, select

from app.extensions import db
from app.unit_of_work import unit_of_work
from models import Announcement, WeChatApp, WeChatIdentity
from tests.conftest import REDIS_PREFIX
from tests.test_wechat_mp import AES_KEY, aes_settings
from tests.wechat_client import WeChatPusher

MODES = {
    "plaintext": {},
    "compatible": aes_settings("compatible"),
    "safe": aes_settings("safe"),
}


def pusher(client, mode: str) -> WeChatPusher:
    if mode == "plaintext":
        return WeChatPusher(client)
    return WeChatPusher(client, encoding_aes_key=AES_KEY, encrypt=True, compatible=mode == "compatible")


@pytest.fixture
def officer_openid(app, make_staff, grant):
    """A union officer who follows the official account: the account a forger would post as."""
    staff_id = make_staff("U1", name="工会主席")
    grant(staff_id, "union_officer")
    with app.app_context(), unit_of_work():
        db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid="o-officer01", staff_id=staff_id,
                                      following=True))
    return "o-officer01"


def drafts(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Announcement))


@pytest.mark.parametrize("mode", MODES)
def test_a_push_signed_long_ago_or_far_ahead_is_refused(make_app, fake_wechat, officer_openid, mode):
    app = make_app(**MODES[mode])
    wechat = pusher(app.test_client(), mode)
    for moment in (time.time() - 30 * 86400, time.time() - 400, time.time() + 10 * 365 * 86400):
        reply = wechat.push(wechat.text(officer_openid, "发布公告"), timestamp=str(int(moment)))
        assert (reply.status, "公告" in reply.body) == (403, False), reply.body
    assert wechat.push(wechat.text(officer_openid, "发布公告")).status == 200     # a fresh one is read


@pytest.mark.parametrize("mode", MODES)
def test_a_signature_reused_with_another_body_is_refused(make_app, fake_wechat, officer_openid, mode):
    app = make_app(**MODES[mode])
    wechat = pusher(app.test_client(), mode)
    stamp, nonce = str(int(time.time())), "424242"
    first = wechat.push(wechat.text("o-member01", "帮助"), timestamp=stamp, nonce=nonce)
    assert first.status == 200
    forged = wechat.push(wechat.text(officer_openid, "发布公告"), timestamp=stamp, nonce=nonce)
    assert (forged.status, "标题" in forged.body) == (403, False)
    assert drafts(app) == 0


@pytest.mark.parametrize("mode", MODES)
def test_wechats_retry_of_the_same_push_gets_the_first_reply(make_app, fake_wechat, officer_openid, mode):
    app = make_app(**MODES[mode])
    wechat = pusher(app.test_client(), mode)
    body = wechat.text(officer_openid, "发布公告", msg_id=777001)
    stamp, nonce = str(int(time.time())), "515151"
    first = wechat.push(body, timestamp=stamp, nonce=nonce)
    again = wechat.push(body, timestamp=stamp, nonce=nonce)
    assert first.status == again.status == 200
    assert first.content == again.content and "标题" in first.content


@pytest.mark.parametrize("mode", ["compatible", "safe"])
def test_an_unencrypted_push_is_refused_where_the_mode_requires_encryption(make_app, fake_wechat, officer_openid,
                                                                            mode):
    app = make_app(**MODES[mode])
    plain = WeChatPusher(app.test_client())
    reply = plain.push(plain.text(officer_openid, "发布公告"))
    assert reply.status == 400 and "标题" not in reply.body


@pytest.mark.parametrize("mode", MODES)
def test_a_captured_push_never_runs_again_after_the_reply_cache_expires(make_app, fake_wechat, officer_openid,
                                                                         redis_client, mode):
    app = make_app(**MODES[mode])
    wechat = pusher(app.test_client(), mode)
    captured_at = str(int(time.time()) - 290)        # captured just inside the window...
    body = wechat.text(officer_openid, "发布公告", msg_id=888001)
    assert wechat.push(body, timestamp=captured_at, nonce="606060").status == 200
    for key in redis_client.scan_iter(f"{REDIS_PREFIX}mp-push:*"):   # ...and its stored reply is forgotten
        redis_client.delete(key)
    with time_machine.travel(time.time() + 20):      # now outside the 300-second window
        replay = wechat.push(body, timestamp=captured_at, nonce="606060")
    assert replay.status == 403


def test_the_forged_posting_chain_stops_at_its_first_step(make_app, fake_wechat, officer_openid):
    """A 30-day-old signed query from a log, six forged pushes from the officer's openid: nothing is posted."""
    app = make_app()
    wechat = WeChatPusher(app.test_client())
    old = str(int(time.time()) - 30 * 86400)
    for text in ("发布公告", "会费账户变更", "请各位会员将会费转入新账户 6222…", "完成", "全体", "确认"):
        assert wechat.push(wechat.text(officer_openid, text), timestamp=old, nonce="31415926").status == 403
    assert drafts(app) == 0
