"""The fake WeChat server over real HTTP: tokens, per-app permissions, each endpoint, control endpoints."""

from __future__ import annotations

import pytest
import requests
from wechatpy.exceptions import WeChatClientException

from app.config import load_config
from app.wechat.client import build_wechat_clients

pytestmark = pytest.mark.backend_independent


def api(fake, path: str, token: str | None = None, body: dict | None = None, **params) -> dict:
    if token:
        params["access_token"] = token
    if body is None:
        return requests.get(fake.url + path, params=params, timeout=5).json()
    return requests.post(fake.url + path, params=params, json=body, timeout=5).json()


def stable_token(fake, app, force: bool = False) -> dict:
    body = {"grant_type": "client_credential", "appid": app.appid, "secret": app.secret, "force_refresh": force}
    return api(fake, "cgi-bin/stable_token", body=body)


def control(fake, name: str, body: dict | None = None):
    if body is None:
        return requests.get(f"{fake.url}_fake/{name}", timeout=5).json()
    return requests.post(f"{fake.url}_fake/{name}", json=body, timeout=5)


@pytest.fixture
def clients(fake_wechat, config, redis_client):
    return build_wechat_clients(config, redis_client)


@pytest.fixture
def mini_app(config):
    return config.wechat.miniprogram


@pytest.fixture
def mp_app(config):
    return config.wechat.official_account


# ---- tokens ---------------------------------------------------------------------------------------------------

def test_stable_token_is_stable_until_force_refresh_and_old_token_stays_valid(fake_wechat, mp_app):
    first = stable_token(fake_wechat, mp_app)
    assert first["expires_in"] > 7000
    assert stable_token(fake_wechat, mp_app)["access_token"] == first["access_token"]
    forced = stable_token(fake_wechat, mp_app, force=True)["access_token"]
    assert forced != first["access_token"]
    assert api(fake_wechat, "cgi-bin/user/info", first["access_token"], openid="o1")["subscribe"] == 1
    assert stable_token(fake_wechat, mp_app)["access_token"] == forced


def test_wrong_secret_40125_and_unknown_appid_40013(fake_wechat, mp_app):
    body = {"grant_type": "client_credential", "appid": mp_app.appid, "secret": "wrong"}
    assert api(fake_wechat, "cgi-bin/stable_token", body=body)["errcode"] == 40125
    body.update(appid="wxunknown")
    assert api(fake_wechat, "cgi-bin/stable_token", body=body)["errcode"] == 40013
    classic = api(fake_wechat, "cgi-bin/token", grant_type="client_credential", appid=mp_app.appid, secret="x")
    assert classic["errcode"] == 40125


def test_classic_token_issues_a_usable_token(fake_wechat, mp_app):
    answer = api(fake_wechat, "cgi-bin/token", grant_type="client_credential", appid=mp_app.appid,
                 secret=mp_app.secret)
    assert answer["expires_in"] > 7000
    assert api(fake_wechat, "cgi-bin/user/info", answer["access_token"], openid="o1")["openid"] == "o1"


def test_mp_token_refused_on_mini_endpoint_48001(fake_wechat, mp_app, mini_app):
    mp_token = stable_token(fake_wechat, mp_app)["access_token"]
    mini_token = stable_token(fake_wechat, mini_app)["access_token"]
    refused = api(fake_wechat, "wxa/business/getuserphonenumber", mp_token, body={"code": "phone:13800000000"})
    assert refused["errcode"] == 48001
    assert api(fake_wechat, "cgi-bin/user/info", mini_token, openid="o1")["errcode"] == 48001


def test_unknown_token_40001_missing_token_41001(fake_wechat):
    assert api(fake_wechat, "cgi-bin/user/info", "not-a-token", openid="o1")["errcode"] == 40001
    assert api(fake_wechat, "cgi-bin/user/info", openid="o1")["errcode"] == 41001


def test_expired_tokens_answer_42001_and_a_new_one_is_issued(fake_wechat, mp_app):
    old = stable_token(fake_wechat, mp_app)["access_token"]
    assert control(fake_wechat, "expire_tokens", {"appid": mp_app.appid}).json()["expired"] == 1
    assert api(fake_wechat, "cgi-bin/user/info", old, openid="o1")["errcode"] == 42001
    new = stable_token(fake_wechat, mp_app)["access_token"]
    assert new != old
    assert api(fake_wechat, "cgi-bin/user/info", new, openid="o1")["subscribe"] == 1


# ---- mini-program ---------------------------------------------------------------------------------------------

def test_code_login_and_phone_number(clients):
    assert clients.mini.wxa.code_to_session("code:o-alice") == {"openid": "o-alice",
                                                                 "session_key": "fake-session-o-alice"}
    assert clients.mini.wxa.code_to_session("code:o-bob:u-bob")["unionid"] == "u-bob"
    info = clients.mini.wxa.get_phone_number("phone:13800001111")["phone_info"]
    assert (info["phoneNumber"], info["purePhoneNumber"], info["countryCode"]) == ("13800001111",) * 2 + ("86",)
    assert info["watermark"]["appid"] == clients.mini.appid


def test_invalid_code_40029(clients):
    for call in (lambda: clients.mini.wxa.code_to_session("wx-real-looking-code"),
                 lambda: clients.mini.wxa.code_to_session("code:"),
                 lambda: clients.mini.wxa.get_phone_number("13800001111")):
        with pytest.raises(WeChatClientException) as exc:
            call()
        assert exc.value.errcode == 40029


def test_code_login_checks_appid_and_secret(fake_wechat, mini_app, mp_app):
    def login(appid, secret):
        return api(fake_wechat, "sns/jscode2session", appid=appid, secret=secret, js_code="code:o1",
                   grant_type="authorization_code")

    assert login(mini_app.appid, mini_app.secret)["openid"] == "o1"
    assert login(mini_app.appid, "wrong")["errcode"] == 40125
    assert login(mp_app.appid, mp_app.secret)["errcode"] == 40013


def test_subscribe_message_recorded_as_delivered(fake_wechat, clients):
    data = {"thing1": {"value": "工会活动报名成功"}, "time2": {"value": "2025-06-01 09:00"}}
    answer = clients.mini.send_subscribe_message("o-alice", "tpl-sub", data, page="pages/index",
                                                 miniprogram_state="trial")
    assert answer["errcode"] == 0
    [sent] = control(fake_wechat, "sent")
    assert sent["endpoint"] == "cgi-bin/message/subscribe/send"
    assert (sent["appid"], sent["touser"], sent["template_id"]) == (clients.mini.appid, "o-alice", "tpl-sub")
    assert sent["data"] == data and sent["client_msg_id"] is None and sent["at"] > 0


@pytest.mark.parametrize("data", [
    {"thing1": {"value": "这是一段超过二十个字的活动名称，用来测试长度限制是否生效"}},
    {"thing1": "不是对象"},
    {"number1": {"value": 3}},
])
def test_subscribe_message_with_bad_data_47003_not_delivered(fake_wechat, clients, data):
    with pytest.raises(WeChatClientException) as exc:
        clients.mini.send_subscribe_message("o-alice", "tpl-sub", data)
    assert exc.value.errcode == 47003
    assert control(fake_wechat, "sent") == []


def test_msg_sec_check_passes_and_flags_marker_text(clients):
    assert clients.mini.msg_sec_check("o-alice", "周末一起去爬山", 2)["result"] == {"suggest": "pass", "label": 100}
    assert clients.mini.msg_sec_check("o-alice", "这是违规内容", 2)["result"] == {"suggest": "risky",
                                                                             "label": 20001}


def test_msg_sec_check_needs_version_2_openid_and_scene(fake_wechat, mini_app):
    token = stable_token(fake_wechat, mini_app)["access_token"]
    good = {"openid": "o1", "scene": 1, "content": "你好", "version": 2}
    assert api(fake_wechat, "wxa/msg_sec_check", token, body=good)["errcode"] == 0
    for change, errcode in (({"version": 1}, 40097), ({"openid": ""}, 40003), ({"scene": 5}, 40097),
                            ({"content": ""}, 47001)):
        assert api(fake_wechat, "wxa/msg_sec_check", token, body={**good, **change})["errcode"] == errcode


# ---- official account -----------------------------------------------------------------------------------------

def test_template_repeat_with_same_client_msg_id_delivered_once(fake_wechat, clients):
    data = {"first": {"value": "您的慰问申请已通过"}}
    first = clients.mp.send_template_message("o-bob", "tpl-1", data, client_msg_id="outbox-42")
    again = clients.mp.send_template_message("o-bob", "tpl-1", data, client_msg_id="outbox-42")
    other = clients.mp.send_template_message("o-bob", "tpl-1", data, client_msg_id="outbox-43")
    assert first["msgid"] == again["msgid"] != other["msgid"]
    sent = control(fake_wechat, "sent")
    assert [s["client_msg_id"] for s in sent] == ["outbox-42", "outbox-43"]
    assert sent[0]["endpoint"] == "cgi-bin/message/template/send" and sent[0]["appid"] == clients.mp.appid


def test_template_without_client_msg_id_delivered_every_time(fake_wechat, clients):
    data = {"first": {"value": "通知"}}
    clients.mp.send_template_message("o-bob", "tpl-1", data, url="https://example.org/x")
    clients.mp.message.send_template("o-bob", "tpl-1", data)
    assert len(control(fake_wechat, "sent")) == 2


def test_custom_text_message_recorded_with_content(fake_wechat, clients):
    clients.mp.message.send_text("o-bob", "您的公告已发布")
    [sent] = control(fake_wechat, "sent")
    assert (sent["endpoint"], sent["touser"], sent["content"]) == ("cgi-bin/message/custom/send", "o-bob",
                                                                   "您的公告已发布")


def test_user_info_uses_registered_unionid(fake_wechat, clients):
    control(fake_wechat, "users", {"openid": "o-carol", "unionid": "u-carol"})
    control(fake_wechat, "users", {"openid": "o-gone", "subscribe": 0})
    carol = clients.mp.user.get("o-carol")
    assert (carol["subscribe"], carol["openid"], carol["unionid"]) == (1, "o-carol", "u-carol")
    assert clients.mp.user.get("o-gone")["subscribe"] == 0
    stranger = clients.mp.user.get("o-stranger")
    assert stranger["subscribe"] == 1 and "unionid" not in stranger


def test_user_list_in_wechat_shape_with_next_openid(fake_wechat, clients):
    for n in range(3):
        control(fake_wechat, "users", {"openid": f"o-{n}"})
    page = clients.mp.user.get_followers()
    assert (page["total"], page["count"], page["data"]["openid"], page["next_openid"]) == (
        3, 3, ["o-0", "o-1", "o-2"], "o-2")
    assert clients.mp.user.get_followers("o-0")["data"]["openid"] == ["o-1", "o-2"]
    assert list(clients.mp.user.iter_followers()) == ["o-0", "o-1", "o-2"]


def test_media_get_returns_jpeg_and_bad_id_40007(clients):
    response = clients.mp.media.download("media-1")
    assert response.headers["Content-Type"] == "image/jpeg" and response.content.startswith(b"\xff\xd8")
    with pytest.raises(WeChatClientException) as exc:
        clients.mp.media.download("bad-media")
    assert exc.value.errcode == 40007


def test_menu_create_is_stored(fake_wechat, clients):
    assert control(fake_wechat, "menu") is None
    menu = {"button": [{"type": "click", "name": "工会服务", "key": "SERVICE"}]}
    clients.mp.menu.create(menu)
    assert control(fake_wechat, "menu") == menu
    with pytest.raises(WeChatClientException) as exc:
        clients.mp.menu.create({"button": []})
    assert exc.value.errcode == 40016


# ---- control endpoints ----------------------------------------------------------------------------------------

def test_injected_latency_and_errors(fake_wechat, settings, redis_client, clients):
    data = {"first": {"value": "通知"}}
    control(fake_wechat, "inject", {"endpoint": "cgi-bin/message/template/send", "errcode": 45009, "times": 2})
    for _ in range(2):
        with pytest.raises(WeChatClientException) as exc:
            clients.mp.send_template_message("o-bob", "tpl-1", data)
        assert exc.value.errcode == 45009
    assert clients.mp.send_template_message("o-bob", "tpl-1", data)["errcode"] == 0

    impatient = build_wechat_clients(load_config(environ={}, overrides={**settings, "wechat.timeout_seconds": 0.2}),
                                     redis_client)
    assert impatient.mp.access_token  # the token is fetched before the latency is injected
    control(fake_wechat, "inject", {"endpoint": "cgi-bin/message/template/send", "latency_ms": 1500})
    with pytest.raises(requests.Timeout):
        impatient.mp.send_template_message("o-bob", "tpl-1", data)
    assert impatient.mp.send_template_message("o-bob", "tpl-1", data)["errcode"] == 0


def test_injection_with_times_minus_one_lasts_until_reset(fake_wechat, clients):
    control(fake_wechat, "inject", {"endpoint": "cgi-bin/user/info", "errcode": -1, "times": -1})
    for _ in range(3):
        with pytest.raises(WeChatClientException) as exc:
            clients.mp.user.get("o1")
        assert exc.value.errcode == -1
    control(fake_wechat, "reset", {})
    assert clients.mp.user.get("o1")["subscribe"] == 1


def test_inject_refuses_zero_errcode_and_missing_effect(fake_wechat):
    for body in ({"endpoint": "cgi-bin/user/info", "errcode": 0}, {"endpoint": "cgi-bin/user/info"},
                 {"errcode": 40001}, {"endpoint": "cgi-bin/user/info", "errcode": 40001, "times": 0}):
        assert control(fake_wechat, "inject", body).status_code == 400


def test_calls_count_every_call_including_refused(fake_wechat, mp_app):
    api(fake_wechat, "cgi-bin/user/info", "bogus", openid="o1")
    stable_token(fake_wechat, mp_app)
    api(fake_wechat, "cgi-bin/stable_token", body={"grant_type": "client_credential", "appid": "x"})
    assert control(fake_wechat, "calls") == {"cgi-bin/user/info": 1, "cgi-bin/stable_token": 2}


def test_unknown_path_is_404_json(fake_wechat):
    response = requests.get(fake_wechat.url + "cgi-bin/no/such/api", timeout=5)
    assert response.status_code == 404 and response.json()["errcode"] == -1
    assert requests.get(fake_wechat.url + "_fake/nothing", timeout=5).json()["errcode"] == -1


def test_reset_forgets_tokens_messages_calls_and_users(fake_wechat, clients, mp_app):
    token = stable_token(fake_wechat, mp_app)["access_token"]
    control(fake_wechat, "users", {"openid": "o-1"})
    clients.mp.message.send_text("o-1", "你好")
    fake_wechat.reset()
    assert control(fake_wechat, "sent") == [] and control(fake_wechat, "calls") == {}
    assert api(fake_wechat, "cgi-bin/user/info", token, openid="o-1")["errcode"] == 40001


def test_the_root_page_shows_what_wechat_would_have_delivered_per_person_newest_first(fake_wechat, clients):
    clients.mini.send_subscribe_message("o-alice", "tpl-sub", {"thing1": {"value": "报名成功"}}, page="pages/events")
    clients.mp.send_template_message("o-bob", "tpl-1", {"first": {"value": "慰问申请有新进展"}})
    clients.mp.message.send_text("o-alice", "<b>公告已发布</b>")
    page = requests.get(f"{fake_wechat.url}/", timeout=10)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    assert html.index("o-alice") < html.index("o-bob")            # alice has the newest message
    alice = html[html.index("o-alice"):html.index("o-bob")]
    assert alice.index("公众号客服消息") < alice.index("小程序订阅消息")   # her newest first
    assert "报名成功" in alice and "pages/events" in alice and "共 3 条" in html
    assert "&lt;b&gt;公告已发布&lt;/b&gt;" in alice and "<b>公告" not in html      # shown, never interpreted
    assert "慰问申请有新进展" in html[html.index("o-bob"):]
