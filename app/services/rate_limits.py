"""Rate limits: every limit the service enforces, in one table, counted in Redis by the `limits` library.

Each limit is a line of [limits] in the config ("5/hour", "60/minute"). A refusal is `RateLimited`, worded in Chinese,
with the seconds until the window resets (the API sends them as `Retry-After`). Counters live in Redis only: they
must outlast the refused request's rollback (app.unit_of_work). With Redis unreachable the limits fail closed: the
action is refused with `Busy`, never let through uncounted.

"Per source" is the client's address as the app sees it (`request.remote_addr`, behind `app.trusted_proxy_hops`
proxies: see app/__init__.py).
"""

from __future__ import annotations

import logging
import time

from flask import current_app
from limits import RateLimitItem, parse
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter
from redis.exceptions import RedisError

from app.errors import Busy, RateLimited

log = logging.getLogger(__name__)

# limit (a key of [limits]) -> (the refusal's code, what the person is told they did too often)
REFUSALS = {
    "bind_failures_per_account": ("bind_rate_limited", "绑定尝试"),
    "bind_failures_per_source": ("bind_rate_limited", "绑定尝试"),
    "bind_code_failures_per_staff": ("bind_rate_limited", "绑定码尝试"),
    "logins_per_source": ("login_rate_limited", "登录"),
    "officer_notices_per_officer": ("notice_rate_limited", "发送通知"),
    "bind_codes_per_officer": ("bind_code_rate_limited", "生成绑定码"),
    "link_codes_per_staff": ("link_code_rate_limited", "获取公众号绑定码"),
    "link_failures_per_account": ("bind_rate_limited", "绑定尝试"),
    "link_failures_total": ("bind_rate_limited", "绑定尝试"),
    "redeem_guesses_per_cashier": ("redeem_rate_limited", "无效券码"),
    "redeem_guesses_per_merchant": ("redeem_rate_limited", "无效券码"),
}


def _limiter() -> FixedWindowRateLimiter:
    app = current_app._get_current_object()
    limiter = app.extensions.get("rate_limits")
    if limiter is None:
        storage = RedisStorage("redis://", connection_pool=app.extensions["redis"].connection_pool,
                               key_prefix=app.config["SU"].redis.key_prefix + "limits")
        limiter = app.extensions["rate_limits"] = FixedWindowRateLimiter(storage)
    return limiter


def _item(name: str) -> RateLimitItem:
    return parse(getattr(current_app.config["SU"].limits, name))


def hit(name: str, *identifiers: object) -> None:
    """Counts one more of `name` for these identifiers; refuses once the limit is passed."""
    item, keys = _item(name), [str(i) for i in identifiers]
    if not _call(lambda: _limiter().hit(item, name, *keys)):
        raise _refusal(name, item, keys)


def ensure_within(name: str, *identifiers: object) -> None:
    """Refuses when the limit is already used up, without counting this request."""
    item, keys = _item(name), [str(i) for i in identifiers]
    if not _call(lambda: _limiter().test(item, name, *keys)):
        raise _refusal(name, item, keys)


def is_within(name: str, *identifiers: object) -> bool:
    item = _item(name)
    return _call(lambda: _limiter().test(item, name, *[str(i) for i in identifiers]))


def clear(name: str, *identifiers: object) -> None:
    item = _item(name)
    _call(lambda: _limiter().clear(item, name, *[str(i) for i in identifiers]))


def _call(action):
    try:
        return action()
    except RedisError:
        log.error("rate limits unavailable (Redis): refusing")
        raise Busy("rate_limit_unavailable", "服务暂时不可用，请稍后再试") from None


def _refusal(name: str, item: RateLimitItem, keys: list[str]) -> RateLimited:
    reset_at, _remaining = _call(lambda: _limiter().get_window_stats(item, name, *keys))
    seconds = max(1, int(reset_at - time.time()))
    wait = f"{(seconds + 59) // 60} 分钟" if seconds >= 60 else f"{seconds} 秒"
    code, what = REFUSALS[name]
    return RateLimited(code, f"{what}次数过多，请 {wait}后再试", retry_after=seconds)
