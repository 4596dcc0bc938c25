"""The HTTP session under our wechatpy clients: requests' interface, urllib3's work.

wechatpy calls `session.request(...)` and reads a requests.Response. For the calls that make up nearly all traffic
— a JSON or form body, or none, with a timeout: every send, user lookup and token fetch — `LeanSession` sends the
request on a urllib3 connection pool directly and hands back a requests.Response filled from the answer. requests'
own layer (preparing the request, merging session and environment settings, hooks, cookies, the adapter) cost
about half of a sender's CPU per send, more than the HTTP exchange itself. Anything else (file uploads, streaming,
a proxy) goes through requests unchanged.

What callers rely on is kept: the same exceptions as requests (`requests.ConnectTimeout`, `requests.ReadTimeout`,
`requests.ConnectionError`: the sender tells "never reached WeChat" from "may have been delivered" by them), no
retries and no redirects followed, gzip answers decoded, the session's default headers sent.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlencode

import requests
import urllib3
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import (
    ConnectTimeoutError, HTTPError as Urllib3Error, NewConnectionError, ReadTimeoutError, SSLError,
)

POOL_SIZE = 16                   # connections kept per host: above a sender's sends in flight
HANDLED = frozenset({"params", "data", "json", "headers", "timeout"})


class LeanSession(requests.Session):
    def __init__(self) -> None:
        super().__init__()
        self._pool: urllib3.PoolManager | None = None

    def read_environment_once(self, base_url: str) -> None:
        """The proxy and CA bundle the environment names, read now instead of before every call (requests looks for
        ~/.netrc, the proxy variables and the CA path again on each one)."""
        self.trust_env = False
        self.proxies = requests.utils.get_environ_proxies(base_url)
        self.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self._pool = None

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:   # type: ignore[override]
        if self.proxies or not HANDLED.issuperset(k for k, v in kwargs.items() if v is not None):
            return super().request(method, url, **kwargs)
        return self._send(method.upper(), _with_query(url, kwargs.get("params")), kwargs)

    def _send(self, method: str, url: str, kwargs: dict[str, Any]) -> requests.Response:
        headers = dict(self.headers)
        headers.update(kwargs.get("headers") or {})
        body = _body(kwargs.get("data"), kwargs.get("json"), headers)
        timeout = kwargs.get("timeout")
        try:
            answer = self._pool_manager().request(
                method, url, body=body, headers=headers, retries=False, redirect=False, preload_content=True,
                timeout=urllib3.Timeout(connect=timeout, read=timeout) if timeout is not None else None)
        except Urllib3Error as exc:
            raise _as_requests_error(exc, method, url) from exc
        return _response(answer, method, url, headers, body)

    def _pool_manager(self) -> urllib3.PoolManager:
        if self._pool is None:
            verify = self.verify
            tls = {"cert_reqs": "CERT_NONE"} if verify is False else \
                ({"ca_certs": verify} if isinstance(verify, str) and not os.path.isdir(verify) else
                 {"ca_cert_dir": verify} if isinstance(verify, str) else {})
            self._pool = urllib3.PoolManager(num_pools=4, maxsize=POOL_SIZE, **tls)
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.clear()
        super().close()


def _with_query(url: str, params: Any) -> str:
    if not params:
        return url
    query = urlencode(list(params.items()) if isinstance(params, dict) else params)
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _body(data: Any, json_body: Any, headers: dict[str, str]) -> bytes | str | None:
    if json_body is not None:
        headers.setdefault("Content-Type", "application/json")
        return requests.compat.json.dumps(json_body, allow_nan=False).encode("utf-8")
    if isinstance(data, dict):
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urlencode(data)
    return data or None


def _as_requests_error(exc: Exception, method: str, url: str) -> requests.RequestException:
    """As requests' adapter maps them (a refused connection is a ConnectTimeoutError to urllib3, not to requests)."""
    request = _prepared(method, url, {}, None)
    if isinstance(exc, ConnectTimeoutError) and not isinstance(exc, NewConnectionError):
        return requests.ConnectTimeout(exc, request=request)
    if isinstance(exc, ReadTimeoutError):
        return requests.ReadTimeout(exc, request=request)
    if isinstance(exc, SSLError):
        return requests.exceptions.SSLError(exc, request=request)
    return requests.ConnectionError(exc, request=request)


def _prepared(method: str, url: str, headers: dict[str, str], body: Any) -> requests.PreparedRequest:
    prepared = requests.PreparedRequest()
    prepared.method, prepared.url, prepared.body = method, url, body
    prepared.headers = CaseInsensitiveDict(headers)
    return prepared


def _response(answer: urllib3.BaseHTTPResponse, method: str, url: str, headers: dict[str, str],
              body: Any) -> requests.Response:
    response = requests.Response()
    response.status_code = answer.status
    response.reason = answer.reason or ""
    response.headers = CaseInsensitiveDict(answer.headers)
    response._content = answer.data
    response.url = url
    response.encoding = requests.utils.get_encoding_from_headers(response.headers)
    response.request = _prepared(method, url, headers, body)
    return response
