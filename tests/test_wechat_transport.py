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


# --- TLS and encodings, against a local HTTPS server ---------------------------------------------------------------

@pytest.fixture
def https_wechat(tmp_path):
    """A stand-in for WeChat's API host on loopback over TLS, its certificate self-signed for 127.0.0.1; it answers
    gzip when asked, as WeChat's servers do."""
    import datetime
    import gzip
    import ipaddress
    import json
    import ssl
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "api.weixin.test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "wechat.pem", tmp_path / "wechat.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    class Answer(BaseHTTPRequestHandler):
        def do_POST(self):   # noqa: N802 - http.server's name
            sent = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body = json.dumps({"errcode": 0, "errmsg": "ok", "echo": sent, "type": self.headers["Content-Type"]},
                              ensure_ascii=False).encode()
            gzipped = "gzip" in self.headers.get("Accept-Encoding", "")
            body = gzip.compress(body) if gzipped else body
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            if gzipped:
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/", str(cert_file)
    server.shutdown()
    server.server_close()


def test_wechats_certificate_is_checked_against_the_ca_bundle_requests_would_use(https_wechat, monkeypatch):
    url, cert_file = https_wechat
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    default = LeanSession()
    default.read_environment_once(url)
    with pytest.raises(requests.exceptions.SSLError):      # not signed by any CA requests trusts (certifi's)
        default.request("POST", url + "cgi-bin/message/template/send", data=b"{}", timeout=5)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert_file)
    trusting = LeanSession()
    trusting.read_environment_once(url)
    answer = trusting.request("POST", url + "cgi-bin/message/template/send", data='{"touser": "工会"}'.encode(),
                              timeout=5)
    assert answer.status_code == 200 and answer.json()["echo"] == {"touser": "工会"}
    assert answer.json()["type"] is None          # a body without a type goes without one, as requests sends it


def test_a_gzip_answer_is_decoded_and_its_headers_kept(https_wechat, monkeypatch):
    url, cert_file = https_wechat
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", cert_file)
    session = LeanSession()
    session.read_environment_once(url)
    answer = session.request("POST", url + "sns/x", json={"text": "中秋节快乐"}, timeout=5)
    assert answer.headers["content-encoding"] == "gzip" and answer.encoding == "utf-8"
    assert answer.json() == {"errcode": 0, "errmsg": "ok", "echo": {"text": "中秋节快乐"}, "type": "application/json"}
    assert answer.reason == "OK" and answer.url == url + "sns/x"
