"""Limits stop guessing without locking people out: failures count per WeChat account and per client (never per
工号 alone), a correct phone proof or an officer's fresh bind code gets through, every 429 says in Chinese when to try
again (Retry-After), "per client" sees through trusted proxies, and with Redis down limited actions are refused."""

from __future__ import annotations

import pytest
import requests

from tests.conftest import LiveServer
from tests.helpers import bearer, error_code
from tests.test_auth import PHONE, bind, login


def post_as(server, path: str, token: str, **kw) -> requests.Response:
    return requests.post(f"{server.url}{path}", headers=bearer(token), timeout=10, **kw)


@pytest.fixture
def server(make_app, fake_wechat):
    def _start(**settings):
        started = LiveServer(make_app(**settings)).start()
        servers.append(started)
        return started
    servers: list[LiveServer] = []
    yield _start
    for started in servers:
        started.stop()


def test_guessing_pauses_the_guesser_never_the_owner(server, make_staff):
    make_staff("000123", name="王老师", phone=PHONE)
    app = server(**{"limits.bind_failures_per_account": "3/hour"})
    guesser = login(app, "o-guesser").json()["token"]
    assert [bind(app, guesser, name="猜一猜").status_code for _ in range(3)] == [400, 400, 400]
    paused = bind(app, guesser, name="猜一猜")
    assert paused.status_code == 429 and int(paused.headers["Retry-After"]) > 0
    assert "次数过多" in paused.json()["error"]["message"]
    for n in range(5):                                   # others guessing the same 工号 from their own accounts
        bind(app, login(app, f"o-other{n}").json()["token"], name="猜一猜")
    owner = login(app, "o-owner").json()["token"]
    assert bind(app, owner).status_code == 200           # the owner, with the right phone, is never locked out


def test_a_correct_phone_proof_binds_even_over_the_limit(server, make_staff):
    make_staff("000123", name="王老师", phone=PHONE)
    app = server(**{"limits.bind_failures_per_account": "2/hour"})
    token = login(app, "o-clumsy").json()["token"]
    for _ in range(3):
        bind(app, token, name="王老")                     # a typo in the name, again and again
    assert bind(app, token, name="王老师", phone="13700000000").status_code == 429
    assert bind(app, token).status_code == 200           # WeChat's own phone proof cannot be guessed


def test_bind_code_guesses_pause_until_an_officer_issues_a_fresh_code(server, make_staff, grant, token_for):
    make_staff("000777", name="赵老师")
    officer = make_staff("000001", name="工会干事")
    grant(officer, "union_officer")
    app = server(**{"limits.bind_code_failures_per_staff": "3/hour"})

    def issue() -> str:
        return post_as(app, "/api/v1/officer/staff/000777/bind-code", token_for(officer)).json()["code"]

    code = issue()
    wrong = "00000000" if code != "00000000" else "11111111"
    for n in range(3):                                    # three accounts, one guess each
        guess = bind(app, login(app, f"o-guess{n}").json()["token"], employee_no="000777", name="赵老师",
                     phone=None, bind_code=wrong)
        assert guess.status_code == 400
    owner = login(app, "o-zhao").json()["token"]
    paused = bind(app, owner, employee_no="000777", name="赵老师", phone=None, bind_code=code)
    assert error_code(paused) == "bind_rate_limited"      # a code can be guessed: no more tries for now...
    fresh = issue()                                       # ...until the officer hands over a fresh code
    assert bind(app, owner, employee_no="000777", name="赵老师", phone=None, bind_code=fresh).status_code == 200


def test_per_client_limits_see_through_trusted_proxies_only(server):
    def logins(app, forwarded_for: str) -> int:
        return requests.post(f"{app.url}/api/v1/auth/login", json={"code": f"code:o-{forwarded_for}-{id(app)}"},
                             headers={"X-Forwarded-For": forwarded_for}, timeout=10).status_code

    behind_proxy = server(**{"app.trusted_proxy_hops": 1, "limits.logins_per_source": "2/minute"})
    assert [logins(behind_proxy, "10.0.0.1") for _ in range(3)] == [200, 200, 429]
    assert logins(behind_proxy, "10.0.0.2") == 200        # another client behind the same proxy
    direct = server(**{"limits.logins_per_source": "2/minute"})
    assert [logins(direct, ip) for ip in ("10.0.0.3", "10.0.0.4", "10.0.0.5")] == [200, 200, 429]   # not trusted


def test_officer_notices_and_bind_codes_have_limits(server, make_staff, grant, token_for):
    officer = make_staff("000001", name="工会干事")
    grant(officer, "union_officer")
    make_staff("000778", name="钱老师")
    app = server(**{"limits.officer_notices_per_officer": "2/hour", "limits.bind_codes_per_officer": "2/hour"})
    token = token_for(officer)
    sent = [post_as(app, "/api/v1/officer/notices", token, json={"title": "通知"}).status_code for _ in range(3)]
    assert sent == [201, 201, 429]
    codes = [post_as(app, "/api/v1/officer/staff/000778/bind-code", token).status_code for _ in range(3)]
    assert codes == [201, 201, 429]


def test_with_redis_down_limited_actions_are_refused_clearly(make_app, fake_wechat):
    client = make_app(**{"redis.url": "redis://127.0.0.1:1/0"}).test_client()
    response = client.post("/api/v1/auth/login", json={"code": "code:o-anyone"})
    assert (response.status_code, error_code(response)) == (503, "rate_limit_unavailable")
    assert "稍后再试" in response.json["error"]["message"]


def test_link_code_guesses_are_limited_across_followers(make_app, make_staff, token_for, fake_wechat):
    from tests.test_followers import link_code
    from tests.wechat_client import WeChatPusher

    app = make_app(**{"limits.link_failures_total": "3/hour"})
    client = app.test_client()
    wechat = WeChatPusher(client)
    code = link_code(client, token_for(make_staff("000459", name="孙老师")))
    wrong = "000000" if code != "000000" else "111111"
    for n in range(3):                                   # three followers, one wrong guess each
        assert "不正确" in wechat.push(wechat.text(f"o-guesser{n}", f"绑定 {wrong}")).content
    assert "次数过多" in wechat.push(wechat.text("o-guesser9", f"绑定 {code}")).content


def test_with_redis_down_a_push_is_answered_success_without_acting(make_app, fake_wechat):
    from tests.wechat_client import WeChatPusher

    client = make_app(**{"redis.url": "redis://127.0.0.1:1/0"}).test_client()
    wechat = WeChatPusher(client)
    reply = wechat.push(wechat.text("o-anyone01", "帮助"))
    assert (reply.status, reply.body) == (200, "success")
