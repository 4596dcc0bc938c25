"""Access tokens shared through Redis: one refresher at a time, one forced refresh and one retry after a token error.

Separate client objects built from the same config and Redis stand in for separate processes.
"""

from __future__ import annotations

import threading

import pytest
import requests
from wechatpy.exceptions import WeChatClientException

from app.config import load_config
from app.wechat.client import build_wechat_clients

THREADS = 8


def calls(fake) -> dict[str, int]:
    return requests.get(fake.url + "_fake/calls", timeout=5).json()


def control(fake, name: str, body: dict) -> None:
    requests.post(f"{fake.url}_fake/{name}", json=body, timeout=5).raise_for_status()


def run_in_threads(target, count: int = THREADS) -> list:
    """Runs target(i) in `count` threads released together; returns their results (or raised exceptions)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = target(i)
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


@pytest.fixture
def new_clients(config, redis_client):
    """Builds a fresh pair of clients, as another process would."""
    return lambda cfg=config: build_wechat_clients(cfg, redis_client)


def test_every_url_comes_from_config(fake_wechat, new_clients):
    clients = new_clients()
    assert clients.mp.API_BASE_URL == fake_wechat.url + "cgi-bin/"
    assert clients.mini.wxa.API_BASE_URL == fake_wechat.url
    assert clients.mp.template.API_BASE_URL == fake_wechat.url
    assert clients.mp.media.get_url("m1").startswith(fake_wechat.url + "cgi-bin/media/get?")
    assert clients.mini.auto_retry is False and clients.mini.timeout == 5


def test_eight_threads_fetch_one_token(fake_wechat, new_clients):
    pairs = [new_clients() for _ in range(THREADS)]
    tokens = run_in_threads(lambda i: pairs[i].mp.access_token)
    assert len(set(tokens)) == 1 and tokens[0].startswith("fake-")
    assert calls(fake_wechat) == {"cgi-bin/stable_token": 1}


def test_token_stored_in_redis_is_shared_by_clients(fake_wechat, new_clients, redis_client, config):
    first = new_clients().mp.user.get("o1")
    second = new_clients().mp.user.get("o2")
    assert (first["openid"], second["openid"]) == ("o1", "o2")
    assert calls(fake_wechat)["cgi-bin/stable_token"] == 1
    stored = redis_client.get(f"{config.redis.key_prefix}wechat:{config.wechat.official_account.appid}_access_token")
    assert stored is not None


def test_mini_and_mp_tokens_are_separate(fake_wechat, new_clients):
    clients = new_clients()
    assert clients.mini.access_token != clients.mp.access_token
    assert calls(fake_wechat)["cgi-bin/stable_token"] == 2


def test_injected_40001_forces_one_refresh_and_one_retry(fake_wechat, new_clients):
    clients = new_clients()
    old = clients.mp.access_token
    control(fake_wechat, "inject", {"endpoint": "cgi-bin/user/info", "errcode": 40001})
    assert clients.mp.user.get("o1")["openid"] == "o1"
    assert clients.mp.access_token != old
    assert calls(fake_wechat) == {"cgi-bin/stable_token": 2, "cgi-bin/user/info": 2}


def test_persistent_40001_is_raised_not_looped(fake_wechat, new_clients):
    clients = new_clients()
    control(fake_wechat, "inject", {"endpoint": "cgi-bin/user/info", "errcode": 40001, "times": -1})
    with pytest.raises(WeChatClientException) as exc:
        clients.mp.user.get("o1")
    assert exc.value.errcode == 40001
    assert calls(fake_wechat) == {"cgi-bin/stable_token": 2, "cgi-bin/user/info": 2}


def test_second_token_error_within_interval_is_raised_without_refresh(fake_wechat, new_clients):
    control(fake_wechat, "inject", {"endpoint": "cgi-bin/user/info", "errcode": 42001})
    new_clients().mp.user.get("o1")  # one forced refresh
    control(fake_wechat, "inject", {"endpoint": "cgi-bin/user/info", "errcode": 40014})
    with pytest.raises(WeChatClientException) as exc:
        new_clients().mp.user.get("o1")  # another "process", inside the interval
    assert exc.value.errcode == 40014
    assert calls(fake_wechat) == {"cgi-bin/stable_token": 2, "cgi-bin/user/info": 3}


def test_token_refreshed_by_another_process_is_used_without_refresh(fake_wechat, new_clients):
    slow, quick = new_clients(), new_clients()
    stale = slow.mp.access_token
    control(fake_wechat, "expire_tokens", {"appid": slow.mp.appid})
    quick.mp.user.get("o1")  # 42001, forced refresh, retry
    answer = slow.mp.get("user/info", params={"openid": "o2", "access_token": stale})
    assert answer["openid"] == "o2"
    assert calls(fake_wechat) == {"cgi-bin/stable_token": 2, "cgi-bin/user/info": 4}


def test_a_process_remembers_the_token_a_while_and_takes_the_replacement_once_wechat_refuses_the_old(
        fake_wechat, new_clients, monkeypatch):
    from app.wechat import tokens

    sender, other = new_clients(), new_clients()
    old = sender.mp.access_token
    control(fake_wechat, "expire_tokens", {"appid": sender.mp.appid})
    other.mp.user.get("o1")                                   # refused, forced refresh, stored for everyone
    new = other.mp.access_token
    assert new != old and sender.mp.access_token == old      # remembered: no Redis read before each send
    assert sender.mp.user.get("o2")["openid"] == "o2"        # refused once, retried with the stored one
    assert sender.mp.access_token == new
    assert calls(fake_wechat)["cgi-bin/stable_token"] == 2    # the sender fetched nothing itself
    monkeypatch.setattr(tokens, "TOKEN_REMEMBERED_SECONDS", 0)
    forgetful = new_clients()
    assert forgetful.mp.access_token == new
    forgetful.mp.session.set(forgetful.mp.access_token_key, "stored-by-another-process", 600)
    assert forgetful.mp.access_token == "stored-by-another-process"   # once its time is up, read again


def test_eight_threads_after_expiry_refresh_once(fake_wechat, new_clients):
    pairs = [new_clients() for _ in range(THREADS)]
    assert pairs[0].mp.access_token
    control(fake_wechat, "expire_tokens", {"appid": pairs[0].mp.appid})
    answers = run_in_threads(lambda i: pairs[i].mp.user.get(f"o{i}"))
    assert [a["openid"] for a in answers] == [f"o{i}" for i in range(THREADS)]
    assert calls(fake_wechat)["cgi-bin/stable_token"] == 2


def test_token_fetch_error_is_raised_and_lock_released(fake_wechat, new_clients):
    control(fake_wechat, "inject", {"endpoint": "cgi-bin/stable_token", "errcode": -1})
    with pytest.raises(WeChatClientException) as exc:
        new_clients().mp.access_token
    assert exc.value.errcode == -1
    assert new_clients().mp.user.get("o1")["openid"] == "o1"
    assert calls(fake_wechat)["cgi-bin/stable_token"] == 2


def test_waiters_give_up_when_the_lock_holder_never_stores(fake_wechat, settings, redis_client, config):
    cfg = load_config(environ={}, overrides={**settings, "wechat.token_lock_seconds": 0.3})
    appid = cfg.wechat.official_account.appid
    redis_client.set(f"{config.redis.key_prefix}wechat:refresh_lock:{appid}", "another-process", px=60_000)
    with pytest.raises(WeChatClientException) as exc:
        build_wechat_clients(cfg, redis_client).mp.access_token
    assert "access_token" in exc.value.errmsg
    assert calls(fake_wechat) == {}


def test_wrong_secret_is_raised_as_40125(fake_wechat, settings, redis_client):
    cfg = load_config(environ={}, overrides={**settings, "wechat.official_account.secret": "wrong"})
    with pytest.raises(WeChatClientException) as exc:
        build_wechat_clients(cfg, redis_client).mp.user.get("o1")
    assert exc.value.errcode == 40125
