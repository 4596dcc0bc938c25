"""Mini-program login and binding, over real HTTP against the fake WeChat server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers import bearer

PHONE = "13912345678"


@pytest.fixture
def teacher(make_staff):
    return make_staff("000123", name="王老师", phone=PHONE)


def login(server, openid: str) -> requests.Response:
    return requests.post(f"{server.url}/api/v1/auth/login", json={"code": f"code:{openid}"}, timeout=10)


def bind(server, token: str, employee_no="000123", name="王老师", phone=PHONE, **extra) -> requests.Response:
    body = {"employee_no": employee_no, "name": name, **extra}
    if phone is not None:
        body["phone_code"] = f"phone:{phone}"
    return requests.post(f"{server.url}/api/v1/auth/bind", json=body, headers=bearer(token), timeout=10)


def bound_token(server, openid="o-wang") -> str:
    first = login(server, openid).json()["token"]
    response = bind(server, first)
    assert response.status_code == 200, response.text
    return response.json()["token"]


def test_login_bind_me_over_http(live_server, fake_wechat, teacher):
    first = login(live_server, "o-wang")
    assert first.status_code == 200
    assert first.json()["bound"] is False

    bound = bind(live_server, first.json()["token"])
    assert bound.status_code == 200
    assert bound.json()["me"]["employee_no"] == "000123"

    me = requests.get(f"{live_server.url}/api/v1/me", headers=bearer(bound.json()["token"]), timeout=10)
    assert me.status_code == 200
    assert me.json()["name"] == "王老师"
    assert me.json()["phone"] == "139****5678"
    # the phone number came from WeChat through the fake server, as in production
    calls = requests.get(f"{fake_wechat.url}_fake/calls", timeout=10).json()
    assert calls["wxa/business/getuserphonenumber"] == 1


def test_second_login_of_bound_user_is_bound_at_once(live_server, fake_wechat, teacher):
    bound_token(live_server)
    again = login(live_server, "o-wang").json()
    assert again["bound"] is True
    assert again["me"]["employee_no"] == "000123"


def test_wrong_code_is_a_clear_401(live_server, fake_wechat):
    response = requests.post(f"{live_server.url}/api/v1/auth/login", json={"code": "garbage"}, timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_code"
    assert "重新进入小程序" in response.json()["error"]["message"]


def test_login_without_code_is_422(live_server, fake_wechat):
    response = requests.post(f"{live_server.url}/api/v1/auth/login", json={}, timeout=10)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


def test_right_number_and_name_with_someone_elses_phone_is_refused(live_server, fake_wechat, teacher):
    token = login(live_server, "o-colleague").json()["token"]
    response = bind(live_server, token, phone="13700000000")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "bind_mismatch"


def test_every_kind_of_mismatch_gets_the_same_answer(live_server, fake_wechat, teacher, make_staff):
    make_staff("000999", name="无手机", phone=None)
    token = login(live_server, "o-guess").json()["token"]
    answers = [
        bind(live_server, token, employee_no="404404").json(),            # no such 工号
        bind(live_server, token, name="李老师").json(),                   # wrong name
        bind(live_server, token, phone="13700000000").json(),             # wrong phone
        bind(live_server, token, employee_no="000999", name="无手机").json(),  # no phone on the roster
    ]
    assert all(a == answers[0] for a in answers)


def test_parallel_guesses_cannot_pass_the_limit(make_app, fake_wechat, teacher):
    from tests.conftest import LiveServer

    server = LiveServer(make_app(**{"limits.bind_failures_per_account": "3/hour"})).start()
    try:
        token = login(server, "o-guess").json()["token"]
        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: bind(server, token, phone="13700000000").status_code, range(8)))
        assert codes.count(400) == 3
        assert codes.count(429) == 5
    finally:
        server.stop()


def test_staff_already_bound_needs_an_officer_to_unbind(live_server, fake_wechat, teacher):
    bound_token(live_server, "o-first")
    token = login(live_server, "o-second").json()["token"]
    response = bind(live_server, token)
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "staff_already_bound"


def test_two_wechat_accounts_binding_one_staff_at_once_one_wins(live_server, fake_wechat, teacher):
    # five accounts: within the per-工号 attempt limit (5), so every loser is refused as already bound
    tokens = [login(live_server, f"o-race-{i}").json()["token"] for i in range(5)]
    with ThreadPoolExecutor(5) as pool:
        codes = sorted(pool.map(lambda t: bind(live_server, t).status_code, tokens))
    assert codes == [200, 409, 409, 409, 409]


def test_unbound_token_cannot_use_staff_endpoints(live_server, fake_wechat):
    token = login(live_server, "o-new").json()["token"]
    response = requests.get(f"{live_server.url}/api/v1/me", headers=bearer(token), timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_bound"


def test_missing_or_forged_token_is_401(live_server):
    assert requests.get(f"{live_server.url}/api/v1/me", timeout=10).status_code == 401
    forged = requests.get(f"{live_server.url}/api/v1/me", headers=bearer("eyJpIjoxfQ.x.y"), timeout=10)
    assert forged.status_code == 401
    assert forged.json()["error"]["code"] == "invalid_token"


def test_token_expires_even_after_it_was_used(live_server, fake_wechat, teacher):
    import time_machine
    from datetime import datetime, timedelta, timezone

    token = bound_token(live_server)
    assert requests.get(f"{live_server.url}/api/v1/me", headers=bearer(token), timeout=10).status_code == 200
    with time_machine.travel(datetime.now(timezone.utc) + timedelta(days=8), tick=True):
        response = requests.get(f"{live_server.url}/api/v1/me", headers=bearer(token), timeout=10)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


def _me(server, token):
    return requests.get(f"{server.url}/api/v1/me", headers=bearer(token), timeout=10)


def test_token_dead_after_unbind(live_server, fake_wechat, teacher, app):
    from app.unit_of_work import unit_of_work
    from app.services import roster

    token = bound_token(live_server)
    with app.app_context(), unit_of_work():
        roster.unbind(roster.get_staff("000123"), actor_label="test")
    assert _me(live_server, token).status_code == 401
    # and the staff member can bind again from a new phone
    assert bound_token(live_server, "o-new-phone")


def test_token_dead_after_role_change(live_server, fake_wechat, teacher, grant):
    token = bound_token(live_server)
    grant(teacher, "union_officer")
    response = _me(live_server, token)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_revoked"


def test_token_dead_after_leaving_and_login_no_longer_binds(live_server, fake_wechat, teacher, app):
    from app.unit_of_work import unit_of_work
    from app.services import roster
    from models import StaffStatus

    token = bound_token(live_server)
    with app.app_context(), unit_of_work():
        roster.set_status(roster.get_staff("000123"), StaffStatus.LEFT, actor_label="test")
    assert _me(live_server, token).status_code == 401
    assert login(live_server, "o-wang").json()["bound"] is False


def test_bind_code_for_staff_without_phone_works_once(live_server, fake_wechat, make_staff, app):
    from app.unit_of_work import unit_of_work
    from app.services import roster

    make_staff("000777", name="赵老师", phone=None)
    with app.app_context(), unit_of_work():
        code = roster.issue_bind_code(roster.get_staff("000777"), actor_label="test")
    first = login(live_server, "o-zhao").json()["token"]
    ok = bind(live_server, first, employee_no="000777", name="赵老师", phone=None, bind_code=code)
    assert ok.status_code == 200
    with app.app_context(), unit_of_work():
        roster.unbind(roster.get_staff("000777"), actor_label="test")
    second = login(live_server, "o-zhao-2").json()["token"]
    reused = bind(live_server, second, employee_no="000777", name="赵老师", phone=None, bind_code=code)
    assert reused.status_code == 400
    assert reused.json()["error"]["code"] == "bind_mismatch"


def test_patch_me_sets_birthday_calendar(live_server, fake_wechat, teacher):
    token = bound_token(live_server)
    response = requests.patch(f"{live_server.url}/api/v1/me", json={"birthday_calendar": "lunar"},
                              headers=bearer(token), timeout=10)
    assert response.status_code == 200
    assert _me(live_server, token).json()["birthday_calendar"] == "lunar"
    bad = requests.patch(f"{live_server.url}/api/v1/me", json={"birthday_calendar": "martian"},
                         headers=bearer(token), timeout=10)
    assert bad.status_code == 422
