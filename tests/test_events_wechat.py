"""The official account's 活动 keyword and menu button: the events the follower can sign up for right now."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tests.events_support import create_event, iso
from tests.helpers import bearer, linked_follower
from tests.wechat_client import WeChatPusher


@pytest.fixture
def officer(make_staff, grant, token_for):
    staff_id = make_staff(employee_no="OFF01", name="工会干事")
    grant(staff_id, "union_officer")
    return token_for(staff_id)


def test_keyword_lists_open_events_with_seats_and_my_status(app, client, live_server, officer, make_staff,
                                                            token_for):
    teacher = make_staff(name="在职老师")
    openid = linked_follower(app, teacher)
    volleyball = create_event(client, officer, capacity=1, title="气排球赛", place="体育馆")
    create_event(client, officer, title="读书节", place="图书馆", capacity=30)
    create_event(client, officer, title="明天才开始报名",
                 signup_opens_at=iso(datetime.now(timezone.utc) + timedelta(days=1)),
                 signup_closes_at=iso(datetime.now(timezone.utc) + timedelta(days=1, hours=1)))
    client.post(f"/api/v1/events/{volleyball}/signup", json={}, headers=bearer(token_for(teacher)))
    wechat = WeChatPusher(live_server.url)
    reply = wechat.push(wechat.text(openid, "活动")).content
    assert reply.startswith("正在报名的活动：")
    assert "1. 气排球赛" in reply and "名额已满，可报名候补（您已报名成功）" in reply
    assert "2. 读书节" in reply and "剩余 30 个名额" in reply and "图书馆" in reply
    assert "明天才开始报名" not in reply
    assert wechat.push(wechat.click(openid, "EVENTS")).content == reply


def test_no_open_events_and_unlinked_followers_are_told_so(app, live_server, make_staff):
    openid = linked_follower(app, make_staff())
    wechat = WeChatPusher(live_server.url)
    assert "目前没有您可以报名的活动" in wechat.push(wechat.text(openid, "活动")).content
    assert "还没有绑定" in wechat.push(wechat.text("mp-stranger", "活动")).content
