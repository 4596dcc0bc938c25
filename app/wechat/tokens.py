"""A wechatpy client whose access token is shared by every process through Redis.

- The token comes from `POST cgi-bin/stable_token` and is stored with wechatpy's RedisStorage.
- One refresher at a time: a Redis lock (SET NX PX, released only by its owner). Everyone else polls Redis for the
  token the refresher stores instead of fetching one too.
- After a token error (40001/40014/42001) a call is retried ONCE: with the token another process already stored, or
  after one `force_refresh` (at most one per `force_refresh_min_interval_seconds` per app, remembered in Redis).
  A second token error is raised as WeChatClientException; nothing loops.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis as redis_lib
from redis.exceptions import LockError
from wechatpy import WeChatClient
from wechatpy.exceptions import WeChatClientException
from wechatpy.session.redisstorage import RedisStorage

from app.wechat.transport import LeanSession

log = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
TOKEN_EXPIRY_MARGIN_SECONDS = 300
POLL_SECONDS = 0.05
TOKEN_REMEMBERED_SECONDS = 30     # well under the ~5 minutes a replaced token stays valid


class SharedTokenClient(WeChatClient):
    """Every URL is under `api_base_url`; `auto_retry` stays off (the retry here is bounded)."""

    def __init__(self, appid: str, secret: str, *, api_base_url: str, redis: redis_lib.Redis, key_prefix: str,
                 timeout: float, lock_seconds: float, force_refresh_interval: int):
        storage = RedisStorage(redis, prefix=key_prefix + "wechat")
        super().__init__(appid, secret, session=storage, timeout=timeout, auto_retry=False)
        self.api_base_url = api_base_url if api_base_url.endswith("/") else api_base_url + "/"
        self.API_BASE_URL = self.api_base_url + "cgi-bin/"
        self._http = LeanSession()
        self._http.read_environment_once(self.api_base_url)
        self._redis = redis
        self._lock_key = f"{key_prefix}wechat:refresh_lock:{appid}"
        self._force_key = f"{key_prefix}wechat:force_refresh:{appid}"
        self._lock_seconds = lock_seconds
        self._force_interval = force_refresh_interval
        self._remembered: tuple[str | None, float] = (None, 0.0)

    # ---- the token -------------------------------------------------------------------------------------------

    @property
    def access_token(self) -> str:
        """The shared token, read from Redis at most every TOKEN_REMEMBERED_SECONDS by this process: a sender asks
        before each send. A token another process replaced stays valid for minutes; one WeChat refused is replaced
        here at once (`_request`)."""
        token, until = self._remembered
        if token is None or time.monotonic() >= until:
            token = self._stored_token() or self._token_via_lock(rejected=None)
            self._remember(token)
        return token

    def forget_token(self) -> None:
        """The next call reads the token from Redis again (what Redis held was cleared: tests, a reset)."""
        self._remember(None)

    def _remember(self, token: str | None) -> None:
        self._remembered = (token, time.monotonic() + TOKEN_REMEMBERED_SECONDS)

    def fetch_access_token(self) -> dict[str, Any]:
        """wechatpy's hook, kept safe: makes sure a token is stored (fetching one under the lock if needed)."""
        return {"access_token": self.access_token}

    def _stored_token(self) -> str | None:
        return self.session.get(self.access_token_key)

    def _token_via_lock(self, rejected: str | None) -> str | None:
        """A token other than `rejected`: the stored one, or one this caller fetches while holding the lock.
        None when `rejected` was given and a forced refresh is not allowed yet."""
        deadline = time.monotonic() + self._lock_seconds
        while time.monotonic() < deadline:
            token = self._stored_token()
            if token and token != rejected:
                return token
            lock = self._redis.lock(self._lock_key, timeout=self._lock_seconds, blocking=False)
            if lock.acquire():
                try:
                    return self._refresh_holding_lock(rejected)
                finally:
                    _release(lock)
            time.sleep(POLL_SECONDS)
        raise WeChatClientException(None, f"等待 access_token 超时（{self.appid}）", client=self)

    def _refresh_holding_lock(self, rejected: str | None) -> str | None:
        token = self._stored_token()
        if token and token != rejected:
            return token
        if rejected is None:
            return self._fetch_stable_token(force_refresh=False)
        if not self._redis.set(self._force_key, rejected, nx=True, ex=self._force_interval):
            log.warning("access token of %s rejected again within %ss of a forced refresh",
                        self.appid, self._force_interval)
            return None
        return self._fetch_stable_token(force_refresh=True)

    def _fetch_stable_token(self, force_refresh: bool) -> str:
        log.info("fetching access token of %s (force_refresh=%s)", self.appid, force_refresh)
        body = {"grant_type": "client_credential", "appid": self.appid, "secret": self.secret,
                "force_refresh": force_refresh}
        res = self._http.post(self.API_BASE_URL + "stable_token", json=body, timeout=self.timeout)
        result = self._handle_result(res)  # raises WeChatClientException on an errcode
        if not isinstance(result, dict) or "access_token" not in result:
            raise WeChatClientException(None, "stable_token 的应答中没有 access_token", client=self, response=res)
        expires_in = int(result.get("expires_in") or 7200)
        ttl = expires_in - TOKEN_EXPIRY_MARGIN_SECONDS if expires_in > 2 * TOKEN_EXPIRY_MARGIN_SECONDS \
            else max(expires_in // 2, 1)
        self.session.set(self.access_token_key, result["access_token"], ttl)
        return result["access_token"]

    # ---- calls -----------------------------------------------------------------------------------------------

    def _request(self, method, url_or_endpoint, **kwargs):
        url = self._own_url(url_or_endpoint, kwargs)
        params = dict(kwargs.pop("params", None) or {})
        token = params.pop("access_token", None) or self.access_token
        try:
            return super()._request(method, url, params={**params, "access_token": token}, **kwargs)
        except WeChatClientException as exc:
            if exc.errcode not in TOKEN_ERRORS:
                raise
            fresh = self._token_via_lock(rejected=token)
            self._remember(fresh)
            if fresh is None:
                raise
            log.info("access token of %s rejected (%s); retrying once with a fresh one", self.appid, exc.errcode)
            return super()._request(method, url, params={**params, "access_token": fresh}, **kwargs)

    def _own_url(self, url_or_endpoint: str, kwargs: dict[str, Any]) -> str:
        """An absolute URL under the configured base. wechatpy's official host, wherever an API hard-codes it, is
        mapped onto the base too, so no call escapes to the real WeChat when the fake server is configured."""
        if not url_or_endpoint.startswith(("http://", "https://")):
            url_or_endpoint = kwargs.pop("api_base_url", self.API_BASE_URL) + url_or_endpoint
        return _rebase(url_or_endpoint, self.api_base_url)


OFFICIAL_BASE = "https://api.weixin.qq.com/"


def _rebase(url: str, base: str) -> str:
    return base + url[len(OFFICIAL_BASE):] if url.startswith(OFFICIAL_BASE) else url


def _release(lock) -> None:
    try:
        lock.release()
    except LockError:  # expired while we fetched; someone else may hold it now, and that is theirs
        log.warning("access-token refresh lock expired before release: %s", lock.name)
