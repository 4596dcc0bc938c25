"""The fake WeChat server's memory: apps, access tokens, users, delivered messages, call counts, injections.

Every method takes the one lock, so the threaded WSGI server may call them from any thread. Token choice: a
forced refresh (or a classic `cgi-bin/token` call) issues a new token and the previous ones STAY VALID until
their own expiry (7,200 s after issue); `expire_tokens` makes an app's tokens answer 42001 at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

TOKEN_TTL_SECONDS = 7200
CLIENT_MSG_ID_WINDOW_SECONDS = 600


class FakeWeChatError(Exception):
    """An answer in WeChat's error shape: {"errcode": ..., "errmsg": ...}."""

    def __init__(self, errcode: int, errmsg: str):
        super().__init__(f"{errcode} {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True)
class FakeApp:
    appid: str
    secret: str
    kind: str  # "mini" or "mp"


@dataclass
class Token:
    value: str
    appid: str
    expires_at: float


@dataclass
class Injection:
    errcode: int | None
    latency_ms: int
    times: int  # -1: until reset


@dataclass
class FakeUser:
    openid: str
    unionid: str | None = None
    subscribe: int = 1


@dataclass
class FakeState:
    apps: dict[str, FakeApp]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self.tokens: dict[str, Token] = {}
        self.current: dict[str, str] = {}  # appid -> its current token value
        self.users: dict[str, FakeUser] = {}
        self.sent: list[dict[str, Any]] = []
        self.calls: dict[str, int] = {}
        self.injections: dict[str, Injection] = {}
        self.client_msg_ids: dict[tuple[str, str], tuple[int, float]] = {}
        self.menu: dict[str, Any] | None = None
        self.next_msgid = 1000

    def reset(self) -> None:
        with self.lock:
            self._clear()

    # ---- apps and tokens -------------------------------------------------------------------------------------

    def check_app(self, appid: str | None, secret: str | None, kind: str | None = None) -> FakeApp:
        app = self.apps.get(appid or "")
        if app is None or (kind and app.kind != kind):
            raise FakeWeChatError(40013, f"invalid appid rid: {appid}")
        if secret != app.secret:
            raise FakeWeChatError(40125, "invalid appsecret")
        return app

    def stable_token(self, appid: str, force_refresh: bool) -> Token:
        with self.lock:
            token = self.tokens.get(self.current.get(appid, ""))
            if force_refresh or token is None or token.expires_at <= time.time():
                token = self._issue(appid)
            return token

    def new_token(self, appid: str) -> Token:
        with self.lock:
            return self._issue(appid)

    def _issue(self, appid: str) -> Token:
        token = Token(f"fake-{appid}-{secrets.token_hex(12)}", appid, time.time() + TOKEN_TTL_SECONDS)
        self.tokens[token.value] = token
        self.current[appid] = token.value
        return token

    def authorize(self, access_token: str | None, kind: str) -> FakeApp:
        """The app owning a valid token, or WeChat's refusal: 41001 missing, 40001 unknown, 42001 expired,
        48001 a token of the other kind of app."""
        if not access_token:
            raise FakeWeChatError(41001, "access_token missing")
        with self.lock:
            token = self.tokens.get(access_token)
        if token is None:
            raise FakeWeChatError(40001, "invalid credential, access_token is invalid or not latest")
        if token.expires_at <= time.time():
            raise FakeWeChatError(42001, "access_token expired")
        app = self.apps[token.appid]
        if app.kind != kind:
            raise FakeWeChatError(48001, "api unauthorized")
        return app

    def expire_tokens(self, appid: str | None = None) -> int:
        with self.lock:
            expired = [t for t in self.tokens.values() if appid in (None, t.appid)]
            for token in expired:
                token.expires_at = 0
            return len(expired)

    # ---- calls and injections --------------------------------------------------------------------------------

    def count_call(self, endpoint: str) -> None:
        with self.lock:
            self.calls[endpoint] = self.calls.get(endpoint, 0) + 1

    def inject(self, endpoint: str, errcode: int | None, latency_ms: int, times: int) -> None:
        with self.lock:
            self.injections[endpoint] = Injection(errcode, latency_ms, times)

    def take_injection(self, endpoint: str) -> Injection | None:
        with self.lock:
            injection = self.injections.get(endpoint)
            if injection is None:
                return None
            if injection.times > 0:
                injection.times -= 1
                if injection.times == 0:
                    del self.injections[endpoint]
            return injection

    # ---- users, messages, menu -------------------------------------------------------------------------------

    def put_user(self, user: FakeUser) -> None:
        with self.lock:
            self.users[user.openid] = user

    def get_user(self, openid: str) -> FakeUser:
        with self.lock:
            return self.users.get(openid) or FakeUser(openid)

    def user_page(self, next_openid: str | None, size: int) -> tuple[int, list[str]]:
        with self.lock:
            openids = list(self.users)
        start = openids.index(next_openid) + 1 if next_openid in openids else 0
        return len(openids), openids[start:start + size]

    def deliver(self, record: dict[str, Any]) -> int:
        with self.lock:
            return self._deliver(record)

    def _deliver(self, record: dict[str, Any]) -> int:
        self.next_msgid += 1
        self.sent.append({**record, "msgid": self.next_msgid, "at": time.time()})
        return self.next_msgid

    def deliver_once(self, record: dict[str, Any]) -> int:
        """Delivers a template message unless the same app sent the same client_msg_id within 10 minutes;
        a repeat gets the first send's msgid."""
        key = (record["appid"], record.get("client_msg_id") or "")
        with self.lock:
            if key[1]:
                seen = self.client_msg_ids.get(key)
                if seen and time.time() - seen[1] < CLIENT_MSG_ID_WINDOW_SECONDS:
                    return seen[0]
            msgid = self._deliver(record)
            if key[1]:
                self.client_msg_ids[key] = (msgid, time.time())
            return msgid

    def sent_messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(m) for m in self.sent]

    def call_counts(self) -> dict[str, int]:
        with self.lock:
            return dict(self.calls)

    def set_menu(self, menu: dict[str, Any]) -> None:
        with self.lock:
            self.menu = menu

    def get_menu(self) -> dict[str, Any] | None:
        with self.lock:
            return self.menu
