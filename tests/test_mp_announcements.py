"""Officers post announcements by chatting with the official account; staff ask it for the latest ones.
Pushes go over real HTTP with signed XML, exactly as WeChat sends them."""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.unit_of_work import unit_of_work
from models import Announcement, AnnouncementStatus, Gender, StaffStatus, WeChatApp, WeChatIdentity
from tests.conftest import REDIS_PREFIX
from tests.helpers import bearer
from tests.wechat_client import WeChatPusher


@pytest.fixture
def follower(app):
    """Links a staff member to an official-account openid (as the subscribe/绑定 flow would)."""
    def _link(staff_id: int) -> str:
        openid = f"mp-{staff_id}"
        with app.app_context(), unit_of_work():
            db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid=openid, staff_id=staff_id,
                                          following=True))
        return openid
    return _link


@pytest.fixture
def scene(make_staff, grant, token_for, follower):
    officer = make_staff(name="工会主席", sub_union="机关分工会", gender=Gender.FEMALE)
    grant(officer, "union_officer")
    token_for(officer)                         # the officer has used the mini-program (content check needs it)
    retiree = make_staff(name="退休老师", sub_union="后勤分工会", status=StaffStatus.RETIRED)
    teacher = make_staff(name="在职老师", sub_union="后勤分工会")
    return {"officer": follower(officer), "officer_id": officer, "retiree": retiree, "teacher": teacher,
            "teacher_openid": follower(teacher)}


def say(wechat, openid: str, text: str) -> str:
    reply = wechat.push(wechat.text(openid, text))
    assert reply.status == 200
    return reply.content or ""


def test_officer_conversation_publishes_to_exactly_its_audience(live_server, fake_wechat, scene, token_for, app):
    wechat = WeChatPusher(live_server.url)
    officer = scene["officer"]
    assert "标题" in say(wechat, officer, "发布公告")
    assert "正文" in say(wechat, officer, "重阳节敬老活动通知")
    say(wechat, officer, "10月29日上午在老年活动中心举行重阳节敬老活动。")
    assert "已添加图片" in wechat.push(wechat.image(officer)).content
    assert "正文共" in say(wechat, officer, "请各位退休教职工准时参加。")
    assert "发布范围" in say(wechat, officer, "完成")
    preview = say(wechat, officer, "退休")
    assert "【预览】" in preview and "重阳节敬老活动通知" in preview and "（1 人）" in preview
    assert "已发布" in say(wechat, officer, "确认")

    with app.app_context():
        published = db.session.scalar(select(Announcement))
        assert published.status is AnnouncementStatus.PUBLISHED
        assert published.body.splitlines() == ["10月29日上午在老年活动中心举行重阳节敬老活动。", "请各位退休教职工准时参加。"]
        assert len(published.attachments) == 1
    retiree, teacher = token_for(scene["retiree"]), token_for(scene["teacher"])
    seen = requests.get(f"{live_server.url}/api/v1/announcements", headers=bearer(retiree), timeout=10).json()
    assert [i["title"] for i in seen["items"]] == ["重阳节敬老活动通知"]
    not_seen = requests.get(f"{live_server.url}/api/v1/announcements", headers=bearer(teacher), timeout=10).json()
    assert not_seen["items"] == []
    detail = requests.get(f"{live_server.url}/api/v1/announcements/{published.id}", headers=bearer(teacher),
                          timeout=10)
    assert detail.status_code == 404


def test_cancel_discards_the_draft(live_server, fake_wechat, scene, app):
    wechat = WeChatPusher(live_server.url)
    say(wechat, scene["officer"], "发布公告")
    say(wechat, scene["officer"], "一个不要的标题")
    assert "草稿已丢弃" in say(wechat, scene["officer"], "取消")
    with app.app_context():
        assert db.session.scalar(select(Announcement)) is None
    assert "没有看懂" in say(wechat, scene["officer"], "随便说点什么")     # the conversation is over


def test_idle_conversation_expires_and_the_draft_stays(live_server, fake_wechat, scene, app, redis_client):
    wechat = WeChatPusher(live_server.url)
    say(wechat, scene["officer"], "发布公告")
    say(wechat, scene["officer"], "未完成的公告")
    for key in redis_client.scan_iter(f"{REDIS_PREFIX}mp-conversation:*"):   # as if the TTL had run out
        redis_client.delete(key)
    assert "没有看懂" in say(wechat, scene["officer"], "完成")
    with app.app_context():
        draft = db.session.scalar(select(Announcement))
        assert (draft.title, draft.status) == ("未完成的公告", AnnouncementStatus.DRAFT)


def test_risky_text_keeps_the_draft_and_says_why(live_server, fake_wechat, scene, app):
    wechat = WeChatPusher(live_server.url)
    for text in ("发布公告", "标题", "这是违规内容", "完成", "全体"):
        say(wechat, scene["officer"], text)
    reply = say(wechat, scene["officer"], "确认")
    assert "未通过微信内容安全检查" in reply
    with app.app_context():
        assert db.session.scalar(select(Announcement.status)) is AnnouncementStatus.DRAFT


def test_non_officer_is_told_politely_they_cannot_post(live_server, fake_wechat, scene):
    wechat = WeChatPusher(live_server.url)
    assert "仅限工会干部" in say(wechat, scene["teacher_openid"], "发布公告")


def test_staff_keyword_lists_latest_announcements_with_mini_program_links(live_server, fake_wechat, scene, client,
                                                                         token_for):
    officer_token = token_for(scene["officer_id"])
    draft = client.post("/api/v1/officer/announcements", headers=bearer(officer_token),
                        json={"title": "春季运动会报名", "body": "欢迎报名"}).json
    client.post(f"/api/v1/officer/announcements/{draft['id']}/publish", headers=bearer(officer_token))
    wechat = WeChatPusher(live_server.url)
    reply = say(wechat, scene["teacher_openid"], "公告")
    assert "春季运动会报名" in reply
    assert f"pages/announcements/detail?id={draft['id']}" in reply
    assert len(reply.encode("utf-8")) <= 2048
