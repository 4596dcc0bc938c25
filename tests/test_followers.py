"""Followers of the official account linked to the roster: by unionid, by a one-time code; sync; the menu."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from app.extensions import db
from app.unit_of_work import unit_of_work
from models import WeChatApp, WeChatIdentity
from tests.conftest import REDIS_PREFIX, LiveServer
from tests.helpers import bearer
from tests.wechat_client import WeChatPusher

SMART_UNION = str(Path(sys.executable).parent / "smart-union")
PHONE = "13912345678"


@pytest.fixture
def wechat(client):
    return WeChatPusher(client)


def fake_follower(fake_wechat, openid: str, unionid: str | None = None) -> None:
    body = {"openid": openid, **({"unionid": unionid} if unionid else {})}
    assert requests.post(f"{fake_wechat.url}_fake/users", json=body, timeout=10).ok


def mp_identity(app, openid: str) -> WeChatIdentity | None:
    with app.app_context():
        return db.session.scalar(select(WeChatIdentity).where(
            WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.openid == openid))


@pytest.fixture
def bound_in_mini_program(client, make_staff, fake_wechat):
    """王老师, who logged in to the mini-program (unionid u-wang) and bound to the roster there."""
    staff_id = make_staff("000123", name="王老师", phone=PHONE, department="数学学院")
    login = client.post("/api/v1/auth/login", json={"code": "code:o-mini-wang:u-wang"}).get_json()
    bound = client.post("/api/v1/auth/bind", headers=bearer(login["token"]),
                        json={"employee_no": "000123", "name": "王老师", "phone_code": f"phone:{PHONE}"})
    assert bound.status_code == 200, bound.get_data(as_text=True)
    return staff_id


def link_code(client, token: str) -> str:
    response = client.post("/api/v1/me/mp-link-code", headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["expires_in"] == 600 and body["code"] in body["instructions"]
    return body["code"]


# ---- subscribe / unsubscribe -------------------------------------------------------------------------------------

def test_subscribe_links_by_unionid(app, wechat, fake_wechat, bound_in_mini_program):
    fake_follower(fake_wechat, "o-mp-wang", "u-wang")
    content = wechat.push(wechat.subscribe("o-mp-wang")).content
    assert "已识别您为 王老师（工号 000123）" in content
    identity = mp_identity(app, "o-mp-wang")
    assert (identity.staff_id, identity.following, identity.unionid) == (bound_in_mini_program, True, "u-wang")
    assert "数学学院" in wechat.push(wechat.text("o-mp-wang", "我的")).content


def test_subscribe_by_qr_code_links_too(app, wechat, fake_wechat, bound_in_mini_program):
    fake_follower(fake_wechat, "o-mp-wang", "u-wang")
    assert "王老师" in wechat.push(wechat.subscribe("o-mp-wang", scene="poster")).content


def test_subscribe_without_unionid_welcomes_and_explains_linking(app, wechat, fake_wechat):
    content = wechat.push(wechat.subscribe("o-newcomer")).content
    assert "欢迎关注" in content and "绑定 123456" in content
    identity = mp_identity(app, "o-newcomer")
    assert identity.following is True and identity.staff_id is None


def test_subscribe_still_welcomes_when_user_info_fails(app, wechat, fake_wechat, bound_in_mini_program):
    fake_follower(fake_wechat, "o-mp-wang", "u-wang")
    requests.post(f"{fake_wechat.url}_fake/inject", json={"endpoint": "cgi-bin/user/info", "errcode": -1},
                  timeout=10)
    content = wechat.push(wechat.subscribe("o-mp-wang")).content
    assert "欢迎关注" in content and "绑定" in content
    assert mp_identity(app, "o-mp-wang").staff_id is None


def test_unsubscribe_clears_following_and_subscribe_restores_it(app, wechat, fake_wechat, bound_in_mini_program):
    fake_follower(fake_wechat, "o-mp-wang", "u-wang")
    wechat.push(wechat.subscribe("o-mp-wang"))
    assert wechat.push(wechat.unsubscribe("o-mp-wang")).xml == "success"
    identity = mp_identity(app, "o-mp-wang")
    assert identity.following is False and identity.staff_id == bound_in_mini_program   # the link is kept
    later = int(time.time()) + 1            # another subscribe, not a retry of the first (same CreateTime)
    wechat.push(wechat.subscribe("o-mp-wang", create_time=later))
    assert mp_identity(app, "o-mp-wang").following is True


# ---- the one-time code -------------------------------------------------------------------------------------------

def test_link_by_code(app, client, wechat, make_staff, token_for):
    staff_id = make_staff("000456", name="李老师")
    code = link_code(client, token_for(staff_id))
    content = wechat.push(wechat.text("o-li", f"绑定 {code}")).content
    assert "绑定成功" in content and "李老师（工号 000456）" in content
    identity = mp_identity(app, "o-li")
    assert identity.staff_id == staff_id and identity.following is True
    assert "李老师" in wechat.push(wechat.text("o-li", "我的")).content
    # used once: the same code from another WeChat account is refused
    assert "绑定码不正确或已过期" in wechat.push(wechat.text("o-other", f"绑定{code}")).content
    assert mp_identity(app, "o-other") is None


def test_wrong_or_expired_code_gets_a_clear_answer(app, client, wechat, make_staff, token_for, redis_client):
    staff_id = make_staff("000457", name="赵老师")
    code = link_code(client, token_for(staff_id))
    wrong = "000000" if code != "000000" else "111111"
    assert "绑定码不正确或已过期" in wechat.push(wechat.text("o-zhao", f"绑定 {wrong}")).content
    for key in redis_client.keys(f"{REDIS_PREFIX}mp-link-code:*"):
        redis_client.delete(key)                          # what Redis does when the code's lifetime runs out
    assert "绑定码不正确或已过期" in wechat.push(wechat.text("o-zhao", f"绑定 {code}")).content
    assert mp_identity(app, "o-zhao") is None


def test_a_new_code_replaces_the_previous_one(app, client, wechat, make_staff, token_for):
    token = token_for(make_staff("000458", name="钱老师"))
    first, second = link_code(client, token), link_code(client, token)
    if first != second:
        assert "不正确" in wechat.push(wechat.text("o-qian", f"绑定 {first}")).content
    assert "绑定成功" in wechat.push(wechat.text("o-qian", f"绑定 {second}")).content


def test_code_attempts_are_limited_per_follower(make_app, make_staff, token_for, fake_wechat):
    application = make_app(**{"limits.link_failures_per_account": "3/hour"})
    client = application.test_client()
    wechat = WeChatPusher(client)
    code = link_code(client, token_for(make_staff("000459", name="孙老师")))
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(3):
        assert "不正确" in wechat.push(wechat.text("o-guesser", f"绑定 {wrong}")).content
    assert "尝试次数过多" in wechat.push(wechat.text("o-guesser", f"绑定 {code}")).content
    assert "绑定成功" in wechat.push(wechat.text("o-honest", f"绑定 {code}")).content   # still valid for others


def test_linking_by_code_moves_an_earlier_link(app, client, wechat, make_staff, token_for):
    token = token_for(make_staff("000460", name="周老师"))
    wechat.push(wechat.text("o-old-phone", f"绑定 {link_code(client, token)}"))
    wechat.push(wechat.text("o-new-phone", f"绑定 {link_code(client, token)}"))
    assert mp_identity(app, "o-old-phone").staff_id is None
    assert mp_identity(app, "o-new-phone").staff_id is not None


def test_link_code_needs_a_bound_staff_token(client):
    assert client.post("/api/v1/me/mp-link-code").status_code == 401


def test_four_concurrent_deliveries_of_a_code_consume_it_once(app, client, make_staff, token_for, redis_client):
    staff_id = make_staff("000461", name="吴老师")
    code = link_code(client, token_for(staff_id))
    server = LiveServer(app).start()
    try:
        wechat = WeChatPusher(server.url)
        push = wechat.text("o-wu", f"绑定 {code}")
        with ThreadPoolExecutor(4) as pool:
            replies = list(pool.map(lambda _: wechat.push(push), range(4)))
    finally:
        server.stop()
    assert len({r.body for r in replies}) == 1
    assert "绑定成功" in replies[0].content
    # one delivery used the code; had a second one run, it would have answered "绑定码不正确"
    assert redis_client.keys(f"{REDIS_PREFIX}mp-link-code*") == []
    assert mp_identity(app, "o-wu").staff_id == staff_id


# ---- command line: sync-followers and menu push ------------------------------------------------------------------

@pytest.fixture
def cli(subprocess_env, app):
    def _run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([SMART_UNION, *args], env=subprocess_env, capture_output=True, text=True, timeout=60)
    return _run


def test_sync_followers_links_existing_followers(app, cli, wechat, fake_wechat, bound_in_mini_program):
    fake_follower(fake_wechat, "o-mp-wang", "u-wang")        # follows since before our server existed
    fake_follower(fake_wechat, "o-mp-anon")                   # no unionid: stays unlinked
    with app.app_context(), unit_of_work():
        db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid="o-mp-gone", following=True))
    result = cli("mp", "sync-followers")
    assert result.returncode == 0, result.stderr
    assert "公众号关注者 2 人" in result.stdout and "本次按 unionid 绑定 1" in result.stdout
    assert "已取消关注 1" in result.stdout
    wang = mp_identity(app, "o-mp-wang")
    assert (wang.staff_id, wang.following) == (bound_in_mini_program, True)
    assert mp_identity(app, "o-mp-anon").following is True
    assert mp_identity(app, "o-mp-gone").following is False
    again = cli("mp", "sync-followers")                      # idempotent
    assert "此前已绑定 1" in again.stdout and "新记录 0" in again.stdout


def test_sync_links_followers_it_already_knew_when_linking_is_all_it_writes(app, cli, fake_wechat,
                                                                             bound_in_mini_program):
    """A follower we already recorded (following, not linked) whose unionid now matches a mini-program account: the
    link is the sync's only write, and it is kept."""
    fake_follower(fake_wechat, "o-mp-wang", "u-wang")
    with app.app_context(), unit_of_work():
        db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid="o-mp-wang", following=True))
    result = cli("mp", "sync-followers")
    assert result.returncode == 0, result.stderr
    assert "本次按 unionid 绑定 1" in result.stdout
    assert mp_identity(app, "o-mp-wang").staff_id == bound_in_mini_program


def test_sync_asks_wechat_for_unionids_a_hundred_at_a_time(app, cli, fake_wechat, make_staff):
    """250 followers: 120 of them bound in the mini-program (same unionid), one of those 离职, one already linked,
    one whose staff member linked another WeChat account by code; the rest unknown. WeChat's batch call takes 100
    openids: three calls for the 249 unlinked, none one by one."""
    from app.services import roster
    from models import Staff, StaffStatus
    with app.app_context(), unit_of_work():
        for n in range(120):
            staff, _ = roster.upsert_staff(f"B{n:04d}", roster.StaffFields(name=f"员工{n}"), actor_label="test")
            db.session.add(WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"mini-{n}", unionid=f"u-{n}",
                                          staff_id=staff.id))
        db.session.flush()
        roster.set_status(roster.get_staff("B0007"), StaffStatus.LEFT, actor_label="test")
        db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid="mp-0", unionid="u-0", following=False,
                                      staff_id=db.session.scalar(select(Staff.id).where(Staff.employee_no == "B0000"))))
        db.session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid="by-code-1", following=True,
                                      staff_id=db.session.scalar(select(Staff.id).where(Staff.employee_no == "B0001"))))
    users = [{"openid": f"mp-{n}", **({"unionid": f"u-{n}"} if n < 120 else {})} for n in range(250)]
    assert requests.post(f"{fake_wechat.url}_fake/users", json={"users": users}, timeout=10).ok
    before = requests.get(f"{fake_wechat.url}_fake/calls", timeout=10).json()
    result = cli("mp", "sync-followers")
    assert result.returncode == 0, result.stderr
    assert "公众号关注者 250 人：新记录 249，本次按 unionid 绑定 117，此前已绑定 1，未绑定 132" in result.stdout
    calls = requests.get(f"{fake_wechat.url}_fake/calls", timeout=10).json()
    assert calls.get("cgi-bin/user/info/batchget", 0) - before.get("cgi-bin/user/info/batchget", 0) == 3
    assert calls.get("cgi-bin/user/info", 0) == before.get("cgi-bin/user/info", 0)
    assert mp_identity(app, "mp-5").staff_id is not None and mp_identity(app, "mp-7").staff_id is None   # 离职
    assert mp_identity(app, "mp-1").staff_id is None            # B0001 keeps the account linked by code
    assert mp_identity(app, "mp-0").following is True
    assert "新记录 0" in cli("mp", "sync-followers").stdout and "本次按 unionid 绑定 0" in cli("mp", "sync-followers").stdout


def test_menu_push_reaches_wechat(cli, fake_wechat):
    result = cli("mp", "menu", "push")
    assert result.returncode == 0, result.stderr
    menu = requests.get(f"{fake_wechat.url}_fake/menu", timeout=10).json()
    assert [b["name"] for b in menu["button"]] == ["公告", "活动", "服务"]
    assert menu["button"][0] == {"name": "公告", "type": "click", "key": "ANNOUNCEMENTS"}
    assert {"name": "帮助", "type": "click", "key": "HELP"} in menu["button"][2]["sub_button"]


def test_menu_push_reports_a_wechat_refusal(cli, fake_wechat):
    requests.post(f"{fake_wechat.url}_fake/inject", json={"endpoint": "cgi-bin/menu/create", "errcode": 40016},
                  timeout=10)
    result = cli("mp", "menu", "push")
    assert result.returncode == 1
    assert "40016" in result.stderr


# ---- the link every push reads, kept in Redis -----------------------------------------------------------------------

def test_a_kept_follower_link_follows_each_change_at_the_next_push(app, client, wechat, fake_wechat, make_staff,
                                                                     token_for):
    """Linking by code, an officer's unbinding and a Core UPDATE of identities (as the sync makes) each show at the
    very next push, though every push reads the link from Redis."""
    from sqlalchemy import update
    from app.services import roster
    from models import Staff
    staff_id = make_staff("000470", name="郑老师")
    wechat.push(wechat.subscribe("o-zheng"))

    def me() -> str:
        return wechat.push(wechat.text("o-zheng", "我的")).content

    assert "郑老师" not in me() and "郑老师" not in me()             # not linked, and that link kept
    token = token_for(staff_id)
    wechat.push(wechat.text("o-zheng", f"绑定 {link_code(client, token)}"))
    assert "郑老师" in me() and "郑老师" in me()
    with app.app_context(), unit_of_work():
        db.session.execute(update(WeChatIdentity).where(WeChatIdentity.openid == "o-zheng").values(staff_id=None))
    assert "郑老师" not in me()
    wechat.push(wechat.text("o-zheng", f"绑定 {link_code(client, token)}"))
    assert "郑老师" in me()
    with app.app_context(), unit_of_work():
        roster.unbind(db.session.get(Staff, staff_id), actor_label="test")
    assert "郑老师" not in me()


def test_a_push_that_read_the_old_link_cannot_keep_it_after_the_change(app, client, wechat, make_staff, token_for):
    """The stale refill: a link read before an unbinding commits must not be kept after it."""
    from app.services import followers, roster
    from models import Staff
    staff_id = make_staff("000471", name="吴老师")
    wechat.push(wechat.text("o-wu", f"绑定 {link_code(client, token_for(staff_id))}"))
    with app.app_context():
        _, seen = followers.LINKS.cached("o-wu")
        stale = followers._read_follower("o-wu")
        db.remove_session()
    with app.app_context(), unit_of_work():
        roster.unbind(db.session.get(Staff, staff_id), actor_label="test")
    with app.app_context():
        followers.LINKS.store("o-wu", stale, seen)
        assert followers.LINKS.cached("o-wu")[0] is None
        assert followers.find_follower("o-wu").staff_id is None
