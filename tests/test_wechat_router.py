"""The official account's router: 帮助 from the table, menu clicks, fallbacks, conversations."""

from __future__ import annotations

import pytest

from tests.wechat_client import WeChatPusher
from wechat_handlers import conversation, router


@pytest.fixture
def wechat(client):
    return WeChatPusher(client)


@pytest.fixture
def officer_openid(make_staff, grant, app):
    """A linked union officer following the account, so officer-only routes are listed too."""
    from app.unit_of_work import unit_of_work
    from app.services import followers
    from models import Staff

    staff_id = make_staff("000001", name="工会主席")
    grant(staff_id, "union_officer")
    with app.app_context(), unit_of_work() as session:
        identity, _ = followers.ensure_identity("o-officer01")
        identity.staff_id = session.get(Staff, staff_id).id
    return "o-officer01"


def test_help_lists_every_route_description(wechat, officer_openid):
    content = wechat.push(wechat.text(officer_openid, "帮助")).content
    for route in router.ROUTES:
        assert route.description in content, route.description
    assert "发送“绑定 六位绑定码”" in content


def test_help_menu_click_and_keyword_give_the_same_answer(wechat):
    by_text = wechat.push(wechat.text("o-helper01", "帮助")).content
    assert wechat.push(wechat.click("o-helper01", "HELP")).content == by_text
    assert wechat.push(wechat.text("o-helper01", " HELP ")).content == by_text   # case and spaces ignored


def test_officer_routes_are_hidden_from_other_followers(wechat, monkeypatch):
    secret = router.Route(lambda ctx: "机密", "干部专用命令说明", keywords=("干部命令",), officer_only=True)
    monkeypatch.setattr(router, "ROUTES", [*router.ROUTES, secret])
    assert "干部专用命令说明" not in wechat.push(wechat.text("o-member01", "帮助")).content
    refused = wechat.push(wechat.text("o-member01", "干部命令")).content
    assert "机密" not in refused and "绑定" in refused        # not linked: told how to link first


def test_unknown_text_gets_a_polite_pointer_to_help(wechat):
    content = wechat.push(wechat.text("o-chatty01", "今天食堂吃什么？")).content
    assert "帮助" in content and "抱歉" in content


def test_unknown_menu_key_is_answered_kindly(wechat):
    assert "即将开放" in wechat.push(wechat.click("o-clicker1", "NOT_YET_BUILT")).content


@pytest.mark.parametrize("kind", ["image", "voice", "video", "shortvideo", "location", "link",
                                  "unsubscribe", "scan", "location_event", "view"])
def test_pushes_nobody_handles_are_answered_success(wechat, fake_wechat, kind):
    reply = wechat.push(getattr(wechat, kind)("o-quiet0001"))
    assert (reply.status, reply.xml) == (200, "success")


def test_personal_things_need_a_link_first(wechat):
    content = wechat.push(wechat.text("o-stranger", "我的")).content
    assert "还没有绑定" in content and "绑定 123456" in content
    assert wechat.push(wechat.click("o-stranger", "ME")).content == content


def test_prefix_command_takes_its_argument_and_explains_itself(wechat):
    content = wechat.push(wechat.text("o-linker01", "绑定")).content
    assert "6 位绑定码" in content
    assert wechat.push(wechat.text("o-linker01", "绑定abc")).content == content
    assert "查看绑定方法" not in content
    assert "小程序" in wechat.push(wechat.text("o-linker01", "绑定说明")).content   # exact keyword beats prefix


# ---- conversations -----------------------------------------------------------------------------------------------

@pytest.fixture
def echo_conversation(monkeypatch):
    """A two-step conversation registered through the public API, as the posting conversation will be."""
    monkeypatch.setattr(conversation, "CONVERSATIONS", {})

    def step(ctx, state):
        seen = [*state.get("seen", []), ctx.text]
        if len(seen) == 2:
            conversation.end_conversation(ctx.openid)
            return "收到两条：" + "、".join(seen)
        conversation.start_conversation(ctx.openid, "echo", {"seen": seen})
        return f"第 {len(seen)} 条已记下"

    conversation.register_conversation("echo", step)
    return step


def test_a_conversation_takes_text_before_keywords_until_it_ends(app, wechat, echo_conversation):
    with app.app_context():
        conversation.start_conversation("o-talker01", "echo", {})
    assert wechat.push(wechat.text("o-talker01", "帮助")).content == "第 1 条已记下"
    assert "即将开放" in wechat.push(wechat.click("o-talker01", "SOON")).content   # events route as usual
    assert wechat.push(wechat.text("o-talker01", "第二句")).content == "收到两条：帮助、第二句"
    assert "查看公众号能做什么" in wechat.push(wechat.text("o-talker01", "帮助")).content


def test_cancel_always_ends_a_conversation(app, wechat, echo_conversation, redis_client):
    with app.app_context():
        conversation.start_conversation("o-talker02", "echo", {})
    assert "已退出" in wechat.push(wechat.text("o-talker02", "取消")).content
    assert redis_client.keys("*mp-conversation*") == []
    assert "抱歉" in wechat.push(wechat.text("o-talker02", "随便说说")).content


def test_cancel_runs_the_conversations_own_cancel_first(app, wechat, monkeypatch, redis_client):
    monkeypatch.setattr(conversation, "CONVERSATIONS", {})
    cancelled = []

    def discard(ctx, state):
        cancelled.append(state)
        return "已取消，草稿已丢弃。"

    conversation.register_conversation("drafting", lambda ctx, state: "继续", on_cancel=discard)
    with app.app_context():
        conversation.start_conversation("o-talker04", "drafting", {"draft": 7})
    assert wechat.push(wechat.text("o-talker04", "退出")).content == "已取消，草稿已丢弃。"
    assert cancelled == [{"draft": 7}]
    assert redis_client.keys("*mp-conversation*") == []


def test_a_conversation_state_nobody_registered_is_dropped(app, wechat, redis_client):
    with app.app_context():
        from app.extensions import redis_key

        redis_client.set(redis_key("mp-conversation", "o-talker03"), '{"name": "gone", "state": {}}')
    assert "抱歉" in wechat.push(wechat.text("o-talker03", "你好")).content
    assert redis_client.keys("*mp-conversation*") == []


def test_registering_a_name_twice_is_refused(monkeypatch):
    monkeypatch.setattr(conversation, "CONVERSATIONS", {})
    conversation.register_conversation("posting", lambda ctx, state: None)
    with pytest.raises(ValueError):
        conversation.register_conversation("posting", lambda ctx, state: "other")
