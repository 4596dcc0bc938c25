"""The HTTP session under our wechatpy clients: requests' interface, libcurl's work.

wechatpy calls `session.request(...)` and reads a requests.Response. For the calls that make up nearly all traffic
— a GET, or a POST with a JSON or form body, with a timeout: every send, user lookup and token fetch — `LeanSession`
makes the exchange with libcurl (pycurl), one handle per thread keeping its connection alive, and hands back a
requests.Response filled from the answer. One call against the fake WeChat (bench machine, 2026-12-01) cost
0.88-1.11 ms of CPU through urllib3 (its request, http.client's header parsing) and 0.22-0.24 ms through libcurl:
in a sender, most of a send's CPU. Anything else (file uploads, streaming, a proxy, other methods) goes through
requests unchanged.

What callers rely on is kept: the same exceptions as requests (the sender tells "never reached WeChat", a
ConnectTimeout or ConnectionError, from "may have been delivered", a ReadTimeout: libcurl says how much of the
request it sent), no retries and no redirects followed, gzip answers decoded, the session's default headers sent,
TLS checked against the CA bundle requests would use. The timeout bounds the whole call at twice its value (connect,
then answer), as requests' connect and read timeouts together would for WeChat's small answers.
"""

from __future__ import annotations

import io
import os
import threading
from typing import Any
from urllib.parse import urlencode

import certifi
import pycurl
import requests
from requests.structures import CaseInsensitiveDict

HANDLED = frozenset({"params", "data", "json", "headers", "timeout"})
SSL_ERRORS = frozenset(getattr(pycurl, name) for name in (
    "E_SSL_CONNECT_ERROR", "E_PEER_FAILED_VERIFICATION", "E_SSL_CERTPROBLEM", "E_SSL_CIPHER", "E_SSL_CACERT_BADFILE",
    "E_SSL_ENGINE_NOTFOUND", "E_SSL_ISSUER_ERROR", "E_SSL_CRL_BADFILE", "E_SSL_PINNEDPUBKEYNOTMATCH",
    "E_SSL_INVALIDCERTSTATUS") if hasattr(pycurl, name))


class LeanSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self._handles = threading.local()
        self._tls: dict[int, Any] = {}

    def read_environment_once(self, base_url: str) -> None:
        """The proxy and CA bundle the environment names, read now instead of before every call (requests looks for
        ~/.netrc, the proxy variables and the CA path again on each one)."""
        self.trust_env = False
        self.proxies = requests.utils.get_environ_proxies(base_url)
        self.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._tls = _tls_options(self.verify)

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:   # type: ignore[override]
        method = method.upper()
        if self.proxies or method not in ("GET", "POST") or not HANDLED.issuperset(
                k for k, v in kwargs.items() if v is not None):
            return super().request(method, url, **kwargs)
        headers = dict(self.headers)
        headers.update(kwargs.get("headers") or {})
        body = _body(kwargs.get("data"), kwargs.get("json"), headers)
        if method == "GET" and body:
            return super().request(method, url, **kwargs)
        return self._exchange(method, _with_query(url, kwargs.get("params")), headers, body, kwargs.get("timeout"))

    def _exchange(self, method: str, url: str, headers: dict[str, str], body: bytes | None,
                  timeout: Any) -> requests.Response:
        handle = self._handle()
        answer, header_lines = io.BytesIO(), []
        handle.setopt(pycurl.URL, url)
        if method == "POST":
            handle.setopt(pycurl.POSTFIELDS, body or b"")
        encodings = headers.pop("Accept-Encoding", None)
        if encodings:
            handle.setopt(pycurl.ACCEPT_ENCODING, encodings)        # libcurl then decodes the answer itself
        typed = any(name.lower() == "content-type" for name in headers)
        unasked = [] if typed else ["Content-Type:"]      # else libcurl calls it a form; requests sends no type
        handle.setopt(pycurl.HTTPHEADER, [f"{k}: {v}" for k, v in headers.items()] + ["Expect:"] + unasked)
        handle.setopt(pycurl.WRITEFUNCTION, answer.write)
        handle.setopt(pycurl.HEADERFUNCTION, header_lines.append)
        if timeout is not None:
            connect, read = timeout if isinstance(timeout, tuple) else (timeout, timeout)
            handle.setopt(pycurl.CONNECTTIMEOUT_MS, max(1, int(connect * 1000)))
            handle.setopt(pycurl.TIMEOUT_MS, max(1, int((connect + read) * 1000)))
        try:
            handle.perform()
        except pycurl.error as exc:
            raise _as_requests_error(exc.args[0], exc.args[1], handle.getinfo(pycurl.REQUEST_SIZE),
                                     method, url) from exc
        return _response(handle.getinfo(pycurl.RESPONSE_CODE), header_lines, answer.getvalue(), method, url,
                         headers, body)

    def _handle(self) -> pycurl.Curl:
        """This thread's handle, options reset (its connections kept); made again in a forked child."""
        held = getattr(self._handles, "held", None)
        if held is None or held[0] != os.getpid():
            held = (os.getpid(), pycurl.Curl())
            self._handles.held = held
        handle = held[1]
        handle.reset()
        handle.setopt(pycurl.NOSIGNAL, 1)              # no SIGALRM for timeouts: several threads use libcurl
        handle.setopt(pycurl.FOLLOWLOCATION, 0)
        handle.setopt(pycurl.PROXY, "")                 # the environment's proxy was read once: none on this path
        for option, value in self._tls.items():
            handle.setopt(option, value)
        return handle

    def close(self) -> None:
        held = getattr(self._handles, "held", None)
        if held is not None:
            held[1].close()
            self._handles.held = None
        super().close()


def _tls_options(verify: bool | str) -> dict[int, Any]:
    if verify is False:
        return {pycurl.SSL_VERIFYPEER: 0, pycurl.SSL_VERIFYHOST: 0}
    if isinstance(verify, str) and os.path.isdir(verify):
        return {pycurl.CAPATH: verify}
    return {pycurl.CAINFO: verify if isinstance(verify, str) else certifi.where()}


def _with_query(url: str, params: Any) -> str:
    if not params:
        return url
    query = urlencode(list(params.items()) if isinstance(params, dict) else params)
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _body(data: Any, json_body: Any, headers: dict[str, str]) -> bytes | None:
    if json_body is not None:
        headers.setdefault("Content-Type", "application/json")
        return requests.compat.json.dumps(json_body, allow_nan=False).encode("utf-8")
    if isinstance(data, dict):
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urlencode(data).encode("ascii")
    if isinstance(data, str):
        return data.encode("utf-8")
    return data or None


def _as_requests_error(code: int, message: str, sent_bytes: int, method: str,
                       url: str) -> requests.RequestException:
    """As requests' adapter maps urllib3's: a timeout before any of the request went out is a ConnectTimeout (never
    reached WeChat), after it a ReadTimeout (may have been delivered); a refused or broken connection is a
    ConnectionError."""
    request = _prepared(method, url, {}, None)
    error = f"libcurl {code}: {message}"
    if code == pycurl.E_OPERATION_TIMEDOUT:
        return requests.ReadTimeout(error, request=request) if sent_bytes else \
            requests.ConnectTimeout(error, request=request)
    if code in SSL_ERRORS:
        return requests.exceptions.SSLError(error, request=request)
    return requests.ConnectionError(error, request=request)


def _prepared(method: str, url: str, headers: dict[str, str], body: Any) -> requests.PreparedRequest:
    prepared = requests.PreparedRequest()
    prepared.method, prepared.url, prepared.body = method, url, body
    prepared.headers = CaseInsensitiveDict(headers)
    return prepared


def _response(status: int, header_lines: list[bytes], content: bytes, method: str, url: str,
              headers: dict[str, str], body: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    lines = [line.decode("iso-8859-1").rstrip("\r\n") for line in header_lines]
    final = max((i for i, line in enumerate(lines) if line.startswith("HTTP/")), default=0)   # after any 1xx
    status_line, *fields = lines[final:] or [""]
    response.reason = status_line.split(" ", 2)[2] if status_line.count(" ") >= 2 else ""
    response.headers = CaseInsensitiveDict(
        (name.strip(), value.strip()) for name, _, value in (f.partition(":") for f in fields if ":" in f))
    response._content = content
    response.url = url
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    response.request = _prepared(method, url, headers, body)
    return response
