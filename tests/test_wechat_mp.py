"""/wechat/mp: URL verification, signatures, AES modes, every push type, hostile XML, retries, reply limits."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select
from wechatpy.events import EVENT_TYPES
from wechatpy.messages import MESSAGE_TYPES

from app.extensions import db
from models import WeChatApp, WeChatIdentity
from tests.conftest import REPO_ROOT, LiveServer
from tests.helpers import linked_follower
from tests.wechat_client import WeChatPusher, sample_push

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"   # 43 characters, as WeChat's console shows it
CORPUS = [("message", name) for name in MESSAGE_TYPES] + [("event", name) for name in EVENT_TYPES]


def aes_settings(mode: str = "safe") -> dict:
    return {"wechat.official_account.message_mode": mode, "wechat.official_account.encoding_aes_key": AES_KEY}


def identities(app, openid: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(WeChatIdentity).where(
            WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.openid == openid))


# ---- URL verification and signatures -------------------------------------------------------------------------

def test_url_verification_echoes_echostr(client):
    assert WeChatPusher(client).verify("echo-1234") == (200, "echo-1234")


def test_url_verification_with_a_wrong_signature_is_403(client):
    status, _ = WeChatPusher(client).verify("echo-1234", signature="0" * 40)
    assert status == 403


def test_push_with_a_wrong_signature_is_403_and_has_no_effect(app, client, fake_wechat):
    wechat = WeChatPusher(client)
    assert wechat.push(wechat.subscribe("o-forged01"), params={"signature": "0" * 40}).status == 403
    assert WeChatPusher(client, token="not-our-token").push(wechat.subscribe("o-forged01")).status == 403
    assert identities(app, "o-forged01") == 0


# ---- every message and event type, in every mode ---------------------------------------------------------------

def _answer_whole_corpus(wechat: WeChatPusher) -> list[str]:
    """Pushes one of each registered type; returns what went wrong (empty when all is well)."""
    problems = []
    for index, (kind, name) in enumerate(CORPUS):
        openid = f"o-corpus-{index:03d}"
        reply = wechat.push(sample_push(wechat, kind, name, openid))
        if reply.status != 200:
            problems.append(f"{kind} {name}: HTTP {reply.status} {reply.body[:200]}")
        elif reply.data is None and reply.xml != "success":
            problems.append(f"{kind} {name}: neither a reply nor success: {reply.body[:200]}")
        elif reply.data is not None and reply.data["ToUserName"] != openid:
            problems.append(f"{kind} {name}: reply addressed to {reply.data['ToUserName']}")
    return problems


def test_every_registered_type_is_answered_in_plaintext(client, fake_wechat):
    assert len(CORPUS) > 60   # wechatpy 2.0.0a26 registers 8 message types and 70-odd events
    assert _answer_whole_corpus(WeChatPusher(client)) == []


def test_every_registered_type_is_answered_in_safe_mode(make_app, fake_wechat):
    wechat = WeChatPusher(make_app(**aes_settings()).test_client(), encoding_aes_key=AES_KEY, encrypt=True)
    assert _answer_whole_corpus(wechat) == []
    reply = wechat.push(wechat.text("o-safe0001", "帮助"))
    assert reply.body.startswith("<xml>") and "<Encrypt>" in reply.body and "帮助" not in reply.body
    assert "查看公众号能做什么" in reply.content


def test_compatible_mode_reads_only_encrypted_pushes(make_app, fake_wechat):
    client = make_app(**aes_settings("compatible")).test_client()
    plain = WeChatPusher(client)
    refused = plain.push(plain.text("o-compat01", "帮助"))
    assert (refused.status, "查看公众号能做什么" in refused.body) == (400, False)
    encrypted = WeChatPusher(client, encoding_aes_key=AES_KEY, encrypt=True, compatible=True)
    reply = encrypted.push(encrypted.text("o-compat01", "帮助"))
    assert "<Encrypt>" in reply.body
    assert "查看公众号能做什么" in reply.content


def test_safe_mode_refuses_plaintext_and_bad_msg_signature(make_app, fake_wechat):
    client = make_app(**aes_settings()).test_client()
    plain = WeChatPusher(client)
    assert plain.push(plain.text("o-safe0002", "帮助")).status == 400
    encrypted = WeChatPusher(client, encoding_aes_key=AES_KEY, encrypt=True)
    forged = encrypted.push(encrypted.text("o-safe0002", "帮助"), params={"msg_signature": "0" * 40})
    assert forged.status == 403
    other_key = WeChatPusher(client, encoding_aes_key=AES_KEY[::-1], encrypt=True)
    assert other_key.push(other_key.text("o-safe0002", "帮助")).status in (400, 403)


# ---- hostile and malformed bodies --------------------------------------------------------------------------------

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName>o-laughs01</FromUserName>
<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>&lol9;</Content><MsgId>1</MsgId></xml>"""


def xxe_push(path) -> bytes:
    return (f'<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file://{path}">]>'
            "<xml><ToUserName>gh_0123456789ab</ToUserName><FromUserName>o-xxe00001</FromUserName>"
            "<CreateTime>1700000000</CreateTime><MsgType>text</MsgType><Content>&xxe;</Content>"
            "<MsgId>2</MsgId></xml>").encode()


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-8675309")
    return path


def test_billion_laughs_is_refused_before_parsing(app, client, fake_wechat):
    reply = WeChatPusher(client).push(BILLION_LAUGHS)
    assert reply.status in (200, 400)
    assert "lol" not in reply.body
    assert identities(app, "o-laughs01") == 0


def test_external_entity_is_never_resolved(client, secret_file):
    wechat = WeChatPusher(client)
    reply = wechat.push(xxe_push(secret_file))
    assert reply.status in (200, 400)
    assert "TOP-SECRET" not in reply.body


def test_external_entity_inside_an_encrypted_push_is_never_resolved(make_app, secret_file):
    wechat = WeChatPusher(make_app(**aes_settings()).test_client(), encoding_aes_key=AES_KEY, encrypt=True)
    reply = wechat.push(xxe_push(secret_file))
    assert reply.status in (200, 400)
    assert "TOP-SECRET" not in reply.xml


@pytest.mark.parametrize("body", [
    b"",
    b"<xml><ToUserName>gh_0123456789ab</ToUserName><FromUserName>o-nomsgtype</FromUserName></xml>",
    b"<xml><FromUserName>o-twice001</FromUserName><MsgType>text</MsgType><MsgType>event</MsgType></xml>",
    b"<xml><FromUserName><a>o</a></FromUserName><MsgType>text</MsgType><Content>x</Content></xml>",
    b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o-nested01</FromUserName><MsgType>text</MsgType>"
    b"<Content><b>1</b></Content><MsgId>3</MsgId></xml>",
    b"<xml><MsgType><a>text</a></MsgType></xml>",
    b"<notxml>",
    b"plain words",
    b"\xff\xfe<\x00x\x00m\x00l\x00>\x00",
    b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o-unknown1</FromUserName><MsgType>hologram</MsgType></xml>",
    b"<xml><ToUserName>gh_1</ToUserName><FromUserName>o-unknown2</FromUserName><MsgType>event</MsgType>"
    b"<Event>teleport</Event></xml>",
], ids=["empty", "no-msgtype", "repeated-msgtype", "nested-sender", "nested-content", "nested-msgtype",
        "unclosed", "not-xml", "utf16", "unknown-type", "unknown-event"])
def test_malformed_pushes_are_answered_without_error(client, fake_wechat, body):
    reply = WeChatPusher(client).push(body)
    assert reply.status in (200, 400)
    assert reply.status != 200 or reply.xml == "success" or reply.data is not None


def test_oversize_push_is_refused_from_its_content_length(make_app):
    wechat = WeChatPusher(make_app(**{"wechat.official_account.max_push_bytes": 2048}).test_client())
    reply = wechat.push(wechat.text("o-big00001", "工" * 1000))
    assert reply.status == 413


def test_oversize_chunked_push_is_refused_without_reading_it_all(make_app):
    server = LiveServer(make_app(**{"wechat.official_account.max_push_bytes": 2048})).start()
    try:
        wechat = WeChatPusher(server.url)
        params, body = wechat.query(wechat.text("o-big00002", "工" * 5000))
        chunks = (body[i:i + 1024] for i in range(0, len(body), 1024))   # no Content-Length: chunked
        response = requests.post(server.url + "/wechat/mp", params=params, data=chunks, timeout=15)
        assert response.status_code == 413
    finally:
        server.stop()


# ---- retries: one effect, identical replies --------------------------------------------------------------------

def test_a_retried_push_has_one_effect_and_the_same_reply(app, client, fake_wechat):
    wechat = WeChatPusher(client)
    push = wechat.subscribe("o-retry001")
    first, second = wechat.push(push), wechat.push(push)
    assert first.body == second.body
    calls = requests.get(f"{fake_wechat.url}_fake/calls", timeout=10).json()
    assert calls.get("cgi-bin/user/info") == 1
    assert identities(app, "o-retry001") == 1


def _count_exchanges_of_this_thread(monkeypatch) -> list:
    """Each exchange with Redis the calling thread makes (not the kept replies' flusher)."""
    import threading
    from redis.connection import AbstractConnection
    sent, send, this_thread = [], AbstractConnection.send_packed_command, threading.current_thread()

    def counted(conn, *args, **kwargs):
        if threading.current_thread() is this_thread:
            sent.append(1)
        return send(conn, *args, **kwargs)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    return sent


def test_a_text_push_reads_its_follower_and_conversation_in_the_claims_round_trip(client, fake_wechat, monkeypatch,
                                                                                    count_queries):
    """A follower's text, their link kept from an earlier push: one exchange with Redis binds the signature, claims
    the push, reads the follower's link and conversation state and writes the earlier push's reply for WeChat's
    retries. No query. (Not linked to a member: no card to read.)"""
    wechat = WeChatPusher(client)
    wechat.push(wechat.subscribe("o-trips001"))
    wechat.push(wechat.text("o-trips001", "你好"))                  # the link is kept from here on
    sent = _count_exchanges_of_this_thread(monkeypatch)
    with count_queries() as queries:
        reply = wechat.push(wechat.text("o-trips001", "帮助"))
    assert reply.status == 200 and "帮助" in reply.data["Content"]
    assert len(sent) == 1 and queries.count == 0


def test_a_members_push_reads_their_card_in_the_claims_round_trip_too(app, client, make_staff, monkeypatch,
                                                                      count_queries):
    """A linked member's text, link and card kept from an earlier push: the claim's one exchange also reads the card
    the link names, so the push still makes one exchange with Redis and no query."""
    openid = linked_follower(app, make_staff("T9001"))
    wechat = WeChatPusher(client)
    for text in ("你好", "在吗"):         # link and card kept from here on (on MariaDB the card only by the second:
        wechat.push(wechat.text(openid, text))    # the first read it in a transaction that had read the link)
    sent = _count_exchanges_of_this_thread(monkeypatch)
    with count_queries() as queries:
        reply = wechat.push(wechat.text(openid, "帮助"))
    assert reply.status == 200 and "帮助" in reply.data["Content"]
    assert len(sent) == 1 and queries.count == 0


def _stored_reply(app, body: bytes, wait_seconds: float = 0) -> bytes | None:
    """What Redis holds for WeChat's retries of that push, once it holds a reply (waiting at most `wait_seconds`)."""
    import time
    from app.extensions import get_redis
    from wechat_handlers import push as handling
    deadline = time.monotonic() + wait_seconds
    with app.app_context():
        key = handling._dedup_key(handling.parse(body))
        while True:
            stored = get_redis().get(key)
            if (stored or b"").startswith(handling.DONE) or time.monotonic() >= deadline:
                return stored
            time.sleep(0.01)


def test_a_reply_no_other_push_carries_is_kept_for_retries_within_moments(app, client):
    """The reply waits in the worker for the next push's exchange with Redis; with no next push, the flusher writes
    it within moments, and WeChat's retry, arriving in another worker, gets the same reply."""
    wechat = WeChatPusher(client)
    body = wechat.text("o-kept0001", "帮助")
    answered = wechat.push(body)
    assert _stored_reply(app, body, wait_seconds=5) == b"done:" + answered.body.encode("utf-8")
    assert WeChatPusher(app.test_client()).push(body).body == answered.body


def test_a_worker_that_exits_writes_the_replies_still_waiting(app, subprocess_env):
    """A worker recycled (or stopped) right after answering: its last replies are written as it exits."""
    import subprocess
    import sys
    script = (
        "from app import create_app\n"
        "from tests.wechat_client import WeChatPusher\n"
        "from wechat_handlers import kept_replies\n"
        "kept_replies.FLUSH_SECONDS = 600\n"                       # no flusher in time: only the exit writes it
        "wechat = WeChatPusher(create_app().test_client())\n"
        "print(wechat.push(wechat.text('o-exit0001', '帮助', msg_id=987654321)).body)\n")
    done = subprocess.run([sys.executable, "-c", script], env=subprocess_env, capture_output=True, text=True,
                          timeout=60, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr
    body = WeChatPusher(app.test_client()).text("o-exit0001", "帮助", msg_id=987654321)
    assert _stored_reply(app, body) == b"done:" + done.stdout.rstrip("\n").encode("utf-8")


def test_an_outage_of_redis_is_logged_once_while_the_replies_wait_and_the_return_once_they_are_written(
        make_app, settings, caplog):
    """While Redis cannot be reached the flusher tries again every few milliseconds: the log says so once for the
    outage (not fifty times a second), nothing waiting is dropped, and the next write after Redis is back says so."""
    import logging
    import threading

    import redis as redis_lib

    from app.extensions import redis_key, run_scripts
    from wechat_handlers import kept_replies as kept

    app = make_app(**{"redis.url": "redis://127.0.0.1:1/0"})

    def point_redis_at(url: str) -> None:        # as if Redis went away or came back (threads connect afresh)
        app.extensions["redis"], app.extensions["redis.threads"] = redis_lib.Redis.from_url(url), threading.local()
    with app.app_context():
        keeper, key = kept.kept_replies(), redis_key("mp-push", "outage-test")
    keeper.waiting.append((key, b"done:reply", 60))          # as keep() would, without its flusher thread
    with caplog.at_level(logging.WARNING, logger=kept.__name__):
        for _ in range(3):
            keeper._flush_in(app)
        assert [r.getMessage()[:22] for r in caplog.records] == ["kept replies not writt"]
        assert keeper.waiting == [(key, b"done:reply", 60)]
        point_redis_at(settings["redis.url"])                    # Redis is back
        keeper._flush_in(app)
        assert "written again" in caplog.records[-1].getMessage() and len(caplog.records) == 2
        assert keeper.waiting == [] and app.extensions["redis"].get(key) == b"done:reply"

        caplog.clear()                       # the next outage is said again; its replies then go with a push
        point_redis_at("redis://127.0.0.1:1/0")
        keeper.waiting.append((key, b"done:later", 60))
        keeper._flush_in(app)
        point_redis_at(settings["redis.url"])
        with app.app_context():
            carried, _taken = keeper.carried()          # as a push's claim takes them, in its own round trip
            run_scripts([carried])
        keeper._flush_while_busy()                       # finds nothing waiting, rounds until it stops
        assert [r.getMessage()[:22] for r in caplog.records] == ["kept replies not writt", "kept replies written a"]
    assert app.extensions["redis"].get(key) == b"done:later"


def test_four_concurrent_deliveries_have_one_effect_and_four_identical_replies(app, live_server, fake_wechat):
    # user/info answers slowly, so the duplicates arrive while the first delivery is still being handled
    requests.post(f"{fake_wechat.url}_fake/inject", json={"endpoint": "cgi-bin/user/info", "latency_ms": 600},
                  timeout=10)
    wechat = WeChatPusher(live_server.url)
    push = wechat.subscribe("o-race0001")
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: wechat.push(push), range(4)))
    assert [r.status for r in replies] == [200] * 4
    assert len({r.body for r in replies}) == 1
    assert "欢迎关注" in replies[0].content
    assert requests.get(f"{fake_wechat.url}_fake/calls", timeout=10).json()["cgi-bin/user/info"] == 1
    assert identities(app, "o-race0001") == 1


# ---- reply limits and handler errors ----------------------------------------------------------------------------

@pytest.fixture
def extra_route(monkeypatch):
    """Puts a route in front of the table, as an area of the app would add one."""
    from wechat_handlers import router

    def _add(handler, **match):
        monkeypatch.setattr(router, "ROUTES", [router.Route(handler, "测试用", **match), *router.ROUTES])
    return _add


def test_a_long_reply_is_cut_to_2048_bytes_on_a_character_boundary(client, extra_route):
    long_text = "a]]>b" + "工会😀" * 400
    extra_route(lambda ctx: long_text, keywords=("长消息",))
    reply = WeChatPusher(client).push(WeChatPusher(client).text("o-long0001", "长消息"))
    content = reply.content
    assert len(content.encode("utf-8")) <= 2048
    assert content.endswith("…")
    assert long_text.startswith(content[:-1])     # a clean prefix: no broken character, "]]>" kept intact


def test_truncate_utf8_never_splits_a_character():
    from wechat_handlers.push import truncate_utf8

    text = "a工😀é" * 10
    for limit in range(4, 60):
        cut = truncate_utf8(text, limit)
        assert len(cut.encode("utf-8")) <= limit
        assert text.startswith(cut.removesuffix("…"))
    assert truncate_utf8("短", 2048) == "短"


def test_a_failing_handler_is_logged_rolled_back_and_answered_success(app, client, extra_route, caplog):
    from app.services import followers

    calls = []

    def failing(ctx):
        calls.append(ctx.openid)
        followers.ensure_identity(ctx.openid)   # a change that must not survive the error
        raise RuntimeError("boom")

    extra_route(failing, keywords=("出错",))
    wechat = WeChatPusher(client)
    push = wechat.text("o-fail0001", "出错")
    reply = wechat.push(push)
    assert (reply.status, reply.xml) == (200, "success")
    assert "handler failed" in caplog.text
    wechat.push(push)                # WeChat's retry of a failed push may try again: nothing was done
    assert calls == ["o-fail0001", "o-fail0001"]
    assert identities(app, "o-fail0001") == 0


def test_every_push_type_delivered_four_times_at_once_gets_four_identical_replies(live_server, fake_wechat):
    wechat = WeChatPusher(live_server.url)
    pushes = [sample_push(wechat, kind, name, f"o-quad-{i:03d}") for i, (kind, name) in enumerate(CORPUS)]
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda push: wechat.push(push), [p for p in pushes for _ in range(4)]))
    for index, (kind, name) in enumerate(CORPUS):
        four = replies[index * 4:index * 4 + 4]
        assert [r.status for r in four] == [200] * 4, (kind, name)
        assert len({r.body for r in four}) == 1, (kind, name)


def test_a_failing_handler_leaves_earlier_state_untouched(app, client, fake_wechat, extra_route):
    from app.services import followers

    def failing(ctx):
        followers.unfollow(ctx.openid)          # a change that must not survive the error
        raise RuntimeError("boom")

    wechat = WeChatPusher(client)
    wechat.push(wechat.subscribe("o-fail0002"))
    extra_route(failing, keywords=("出错",))
    assert wechat.push(wechat.text("o-fail0002", "出错")).xml == "success"
    with app.app_context():
        assert followers.find_identity("o-fail0002").following is True


PUSH_SHAPES = [
    "<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName><CreateTime>1"
    "</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA["
    "qrscene_123]]></EventKey><Ticket>t</Ticket></xml>",
    "<xml><FromUserName>o</FromUserName><MsgType>event</MsgType><Event>scancode_push</Event><EventKey>k</EventKey>"
    "<ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult>1</ScanResult></ScanCodeInfo></xml>",
    "<xml><FromUserName>o</FromUserName><MsgType>event</MsgType><Event>pic_sysphoto</Event><SendPicsInfo><Count>2"
    "</Count><PicList><item><PicMd5Sum>a</PicMd5Sum></item><item><PicMd5Sum>b</PicMd5Sum></item></PicList>"
    "</SendPicsInfo></xml>",
    "<xml><FromUserName>o</FromUserName><MsgType>text</MsgType><Content>  工会 </Content><MsgId>5</MsgId></xml>",
    "<xml><FromUserName>o</FromUserName><MsgType>event</MsgType><Event>unsubscribe</Event><EventKey></EventKey></xml>",
    "<xml><MsgType>text</MsgType><MsgType>x</MsgType></xml>",
    "<xml a='1'><MsgType>weird</MsgType><X b='2'>t</X></xml>",
    "<xml><MsgType>device_text</MsgType><Event>bind</Event></xml>",
    "<notxml><MsgType>text</MsgType></notxml>",
    "<xml><Content>no type</Content></xml>",
    "<xml><MsgType>text</MsgType>",
]


@pytest.mark.backend_independent
@pytest.mark.parametrize("xml", PUSH_SHAPES)
def test_a_push_is_read_as_wechatpys_own_parser_reads_it(xml):
    """Pushes are read by ElementTree, not xmltodict, for speed: every shape WeChat sends (and a few it never
    should) gives the same message class and fields as wechatpy's parse_message, or the same kind of error."""
    from xml.parsers.expat import ExpatError

    from wechatpy import parse_message as wechatpys
    from app.wechat.mp_push import parse_message as ours

    def read(parse):
        try:
            message = parse(xml)
        except (ExpatError, SyntaxError):        # xmltodict's and ElementTree's names for malformed XML
            return "error", "malformed"
        except Exception as exc:
            return "error", type(exc).__name__
        return type(message).__name__, message._data

    assert read(ours) == read(wechatpys)
