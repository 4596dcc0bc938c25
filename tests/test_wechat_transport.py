"""The HTTP session under our WeChat clients (app.wechat.transport): the sender tells a send that never reached
WeChat (sent again) from one that may have been delivered (never sent again by subscribe message) by the exception
it gets, so those must be exactly requests' exceptions, whichever way the call went."""

from __future__ import annotations

import socket

import pytest
import requests
from wechatpy.exceptions import WeChatClientException

from app.config import load_config
from app.wechat.client import build_wechat_clients
from app.wechat.transport import LeanSession

pytestmark = pytest.mark.backend_independent

DATA = {"thing1": {"value": "工会通知"}}


def clients_at(settings, redis_client, **overrides):
    return build_wechat_clients(load_config(environ={}, overrides={**settings, **overrides}), redis_client)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]          # nothing listens there once the socket is closed


def test_a_refused_connection_is_a_connection_error_never_a_timeout(settings, redis_client):
    clients = clients_at(settings, redis_client, **{"wechat.api_base_url": f"http://127.0.0.1:{closed_port()}/"})
    with pytest.raises(requests.ConnectionError) as exc:
        clients.mp.send_template_message("o-bob", "tpl-1", DATA)
    assert not isinstance(exc.value, requests.Timeout)     # "never reached WeChat": safe to send again


def test_a_slow_answer_is_a_read_timeout_which_may_have_been_delivered(fake_wechat, settings, redis_client):
    impatient = clients_at(settings, redis_client, **{"wechat.timeout_seconds": 0.2})
    assert impatient.mini.access_token
    requests.post(f"{fake_wechat.url}_fake/inject", timeout=5,
                  json={"endpoint": "cgi-bin/message/subscribe/send", "latency_ms": 1000}).raise_for_status()
    with pytest.raises(requests.ReadTimeout) as exc:
        impatient.mini.send_subscribe_message("o-amy", "tpl-1", DATA)
    assert not isinstance(exc.value, requests.ConnectionError)


def test_an_http_error_is_a_wechat_error_without_errcode(fake_wechat, settings, redis_client):
    clients = clients_at(settings, redis_client)
    with pytest.raises(WeChatClientException) as exc:
        clients.mp.post("no/such/endpoint", data={"x": 1})
    assert exc.value.errcode is None and exc.value.response.status_code == 404


def test_the_common_calls_skip_requests_and_the_rest_go_through_it(fake_wechat, settings, redis_client, monkeypatch):
    clients = clients_at(settings, redis_client)
    assert isinstance(clients.mp._http, LeanSession)
    through_requests = []
    original = requests.Session.request
    monkeypatch.setattr(requests.Session, "request",
                        lambda self, *a, **kw: through_requests.append(a) or original(self, *a, **kw))
    answer = clients.mp.send_template_message("o-bob", "tpl-1", DATA, client_msg_id="su-1")
    assert answer["errcode"] == 0 and through_requests == []
    clients.mp._http.request("GET", fake_wechat.url + "_fake/calls", stream=True).close()
    assert len(through_requests) == 1            # a streamed answer is requests' work
