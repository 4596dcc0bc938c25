"""WeChat channels for notifications: which one each person gets, what the message says (trimmed to WeChat's
limits), the send itself, and what each WeChat answer means for the row.

Per person, in the order the notice kind's config lists them: an official-account template message if the kind
allows it and the person follows the account; else a mini-program subscribe message if they have a consent left
for its template; else the inbox alone. Daily quotas, a 45009 pause and a send rate per channel live in Redis
(derived and rebuildable: losing them at worst lets one more send through a limit).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from sqlalchemy import select, update
from wechatpy.exceptions import WeChatClientException

from app import clock
from app.extensions import db, get_redis, lua_script, redis_key, this_app
from app.wechat import mini_client, mp_client
from models import (
    Channel, Notification, Staff, StaffStatus, SubscriptionConsent, WeChatApp, WeChatIdentity,
)

log = logging.getLogger(__name__)

# WeChat's length limits per data key type (subscribe and new-style template messages).
VALUE_LIMITS = {"thing": 20, "character_string": 32, "number": 32, "letter": 32, "symbol": 5, "phrase": 5,
                "name": 10, "phone_number": 17, "car_number": 8}
RETRY_ERRCODES = {-1, 40001, 40014, 42001, None}


def next_day_start() -> datetime:
    """Midnight of the next calendar day in the union's time zone, when WeChat's daily quotas reset."""
    local = clock.local()
    return datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), clock.zone()).astimezone(timezone.utc)


def trim_value(key: str, value: Any) -> str:
    text = "" if value is None else str(value)
    kind = key.rstrip("0123456789")
    limit = VALUE_LIMITS.get(kind)
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


class _Blank(dict):
    def __missing__(self, key):
        return ""


@dataclass(frozen=True)
class Message:
    template_id: str
    data: dict[str, dict[str, str]]
    page: str | None


def _values(row: Notification) -> dict[str, Any]:
    notice = row.notice
    created = notice.created_at.astimezone(clock.zone())
    summary = (notice.body or "").strip().splitlines()[0] if (notice.body or "").strip() else notice.title
    return {"title": notice.title, "summary": summary, "time": created.strftime("%Y-%m-%d %H:%M"),
            "date": created.strftime("%Y-%m-%d"), **(notice.data or {}), **(row.data or {})}


def render(row: Notification, template) -> Message:
    values = _values(row)
    data = {key: {"value": trim_value(key, values.get(name, ""))} for key, name in template.fields.items()}
    page = row.notice.page or (template.page.format_map(_Blank(values)) if template.page else None)
    return Message(template.template_id, data, page)


# --- choosing a channel ------------------------------------------------------------------------------------------

@dataclass
class Decision:
    channel: Channel = Channel.INBOX
    openid: str = ""
    message: Message | None = None
    reason: str | None = None
    postpone_until: datetime | None = None


_CONSENTS = SubscriptionConsent.__table__.c


class Router:
    """Decides the channel for a batch of claimed rows with a fixed number of queries."""

    def __init__(self, rows: list[Notification]):
        staff_ids = {r.staff_id for r in rows}
        self.kinds = this_app().config["SU"].notifications.kinds
        self.status = dict(db.session.execute(select(Staff.id, Staff.status).where(Staff.id.in_(staff_ids))).all())
        identities = db.session.execute(select(
            WeChatIdentity.staff_id, WeChatIdentity.app, WeChatIdentity.openid, WeChatIdentity.following)
            .where(WeChatIdentity.staff_id.in_(staff_ids))).all()      # columns, not objects: a batch's worth
        self.followers = {i.staff_id: i.openid for i in identities
                          if i.app is WeChatApp.OFFICIAL_ACCOUNT and i.following}
        self.mini = {i.staff_id: i.openid for i in identities if i.app is WeChatApp.MINI_PROGRAM}
        self.consents = self._lock_consents(rows)
        self.spent: dict[int, int] = {}            # consent id -> how many this batch spends
        self.paused: dict[Channel, bool] = {}      # asked of Redis once per channel and batch
        self.undecided = len(rows)
        self.allowance: dict[Channel, int] = {}    # today's quota taken for this batch and not used yet
        self.used_up: set[Channel] = set()

    def _lock_consents(self, rows: list[Notification]) -> dict[tuple[int, str], list[int]]:
        """The consents this batch may spend, (staff, template) -> [id, remaining], locked until the claim commits
        (spent in memory, written by `settle`): only of people with a mini-program openid and for the subscribe
        templates of the batch's kinds, locked in (staff, template) order, the unique key's, as every writer of
        consents goes."""
        templates = {kind.subscribe.template_id for kind in (self.kinds.get(r.notice.kind) for r in rows)
                     if kind is not None and kind.subscribe is not None and "subscribe" in kind.channels}
        holders = {r.staff_id for r in rows} & self.mini.keys()
        if not templates or not holders:
            return {}
        return {(c.staff_id, c.template_id): [c.id, c.remaining] for c in db.session.execute(
            select(_CONSENTS.id, _CONSENTS.staff_id, _CONSENTS.template_id, _CONSENTS.remaining)
            .where(_CONSENTS.staff_id.in_(holders), _CONSENTS.template_id.in_(templates), _CONSENTS.remaining > 0)
            .order_by(_CONSENTS.staff_id, _CONSENTS.template_id).with_for_update())}

    def decide(self, row: Notification) -> Decision:
        self.undecided -= 1
        if self.status.get(row.staff_id) is StaffStatus.LEFT:
            return Decision(reason="已离职，不再发送")
        kind = self.kinds.get(row.notice.kind)
        excluded = set(row.excluded_channels.split(","))
        for name in (kind.channels if kind else []):
            if name in excluded:
                continue
            decision = self._try(Channel(name), row, getattr(kind, name))
            if decision is not None:
                return decision
        return Decision(reason="未关注公众号且没有订阅授权，仅站内消息")

    def _try(self, channel: Channel, row: Notification, template) -> Decision | None:
        if template is None:
            return None
        openid = (self.followers if channel is Channel.TEMPLATE else self.mini).get(row.staff_id)
        if openid is None:
            return None
        consent = None
        if channel is Channel.SUBSCRIBE:
            consent = self.consents.get((row.staff_id, template.template_id))
            if consent is None or consent[1] <= 0:
                return None
        if self._paused(channel) or not self._take_quota(channel):
            return Decision(postpone_until=next_day_start())
        if consent is not None:
            consent[1] -= 1
            self.spent[consent[0]] = self.spent.get(consent[0], 0) + 1
        return Decision(channel=channel, openid=openid, message=render(row, template))

    def _take_quota(self, channel: Channel) -> bool:
        """One of today's sends, from what this batch took at once: as many as its rows still undecided may need."""
        if not self.allowance.get(channel) and channel not in self.used_up:
            wanted = self.undecided + 1
            self.allowance[channel] = take_daily_quota(channel, wanted)
            if self.allowance[channel] < wanted:
                self.used_up.add(channel)              # nothing more today: not asked again for this batch
        if not self.allowance.get(channel):
            return False
        self.allowance[channel] -= 1
        return True

    def settle(self) -> None:
        """After the batch: the consents it spent written (one UPDATE per count spent, nearly always one in all),
        and what it took of today's quota and did not use given back."""
        for count in set(self.spent.values()):
            db.session.execute(update(SubscriptionConsent.__table__)
                               .where(_CONSENTS.id.in_([i for i, n in self.spent.items() if n == count]))
                               .values(remaining=_CONSENTS.remaining - count))
        for channel, left in self.allowance.items():
            if left:
                give_back_daily_quota(channel, left)

    def _paused(self, channel: Channel) -> bool:
        if channel not in self.paused:
            self.paused[channel] = channel_paused(channel)
        return self.paused[channel]


# --- limits in Redis -------------------------------------------------------------------------------------------

def _limits(channel: Channel):
    return getattr(this_app().config["SU"].notifications, channel.value)


def channel_paused(channel: Channel) -> bool:
    return bool(get_redis().exists(redis_key("notify", "paused", channel.value)))


def pause_channel_until_tomorrow(channel: Channel) -> None:
    until = next_day_start()
    seconds = max(1, int((until - clock.now()).total_seconds()))
    get_redis().set(redis_key("notify", "paused", channel.value), 1, ex=seconds)
    _paused_in_this_process()[channel] = until
    log.warning("WeChat says the %s quota is used up (45009): paused until tomorrow", channel.value)


def _paused_in_this_process() -> dict[Channel, datetime]:
    """The pauses this process learnt of itself, seen by the sends it already claimed (another round's claim, made
    while the 45009 was on its way, asked Redis too early)."""
    return this_app().extensions.setdefault("notify.paused_here", {})


def _paused_here(channel: Channel) -> bool:
    until = _paused_in_this_process().get(channel)
    return until is not None and clock.now() < until


# KEYS: today's count; ARGV: the quota, how many are wanted, the key's life. Returns how many were granted.
_TAKE_UP_TO = """
local granted = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - tonumber(redis.call('GET', KEYS[1]) or '0'))
if granted <= 0 then return 0 end
redis.call('INCRBY', KEYS[1], granted)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return granted
"""


def take_daily_quota(channel: Channel, wanted: int) -> int:
    """Up to `wanted` of today's sends on this channel, as many as our daily quota has left (one round trip)."""
    quota = _limits(channel).daily_quota
    if not quota:
        return wanted
    return int(lua_script(_TAKE_UP_TO)(keys=[_quota_key(channel)], args=[quota, wanted, 2 * 86400]))


def give_back_daily_quota(channel: Channel, unused: int) -> None:
    if _limits(channel).daily_quota:
        get_redis().decrby(_quota_key(channel), unused)


def _quota_key(channel: Channel) -> str:
    return redis_key("notify", "quota", channel.value, clock.local().strftime("%Y%m%d"))


def wait_for_send_rate(channel: Channel) -> None:
    """A shared per-second budget per channel across all senders (fixed one-second windows)."""
    rate = _limits(channel).rate_per_second
    if not rate:
        return
    redis = get_redis()
    while True:
        now = time.time()
        key = redis_key("notify", "rate", channel.value, int(now))
        pipe = redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 2)
        if pipe.execute()[0] <= rate:
            return
        time.sleep(max(0.0, int(now) + 1 - now))


# --- sending -----------------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    kind: str                     # sent / retry / not_allowed / quota / failed / unknown
    reason: str | None = None
    errcode: int | None = None
    refund_consent: bool = field(default=False)
    maybe_delivered: bool = field(default=False)   # WeChat may have delivered it although we saw no answer


def send(channel: Channel, row_id: int, openid: str, message: Message) -> Outcome:
    if _paused_here(channel):
        return Outcome("quota", "微信今日调用额度已用完，明日再发", refund_consent=channel is Channel.SUBSCRIBE)
    wait_for_send_rate(channel)
    try:
        if channel is Channel.TEMPLATE:
            mini = {"appid": this_app().config["SU"].wechat.miniprogram.appid, "pagepath": message.page} \
                if message.page else None
            mp_client().send_template_message(openid, message.template_id, message.data, mini_program=mini,
                                              client_msg_id=f"su-{row_id}")
        else:
            mini_client().send_subscribe_message(openid, message.template_id, message.data, page=message.page)
        return Outcome("sent")
    except WeChatClientException as exc:
        return _classify_error(channel, exc.errcode, exc.errmsg)
    except (requests.ConnectTimeout, requests.ConnectionError) as exc:   # never reached WeChat
        return Outcome("retry", f"网络错误：{type(exc).__name__}", refund_consent=channel is Channel.SUBSCRIBE)
    except requests.Timeout:
        if channel is Channel.TEMPLATE:   # a resend within 10 minutes is dropped by WeChat (client_msg_id)
            return Outcome("retry", "微信响应超时", maybe_delivered=True)
        return Outcome("unknown", "微信响应超时，可能已送达，不再重发")


def _classify_error(channel: Channel, errcode: int | None, errmsg: Any) -> Outcome:
    subscribe = channel is Channel.SUBSCRIBE
    reason = f"微信错误 {errcode}：{errmsg}" if errcode is not None else "微信服务异常（HTTP 错误）"
    if errcode == 43101 or errcode == 43004:          # no consent left / not following: try the next channel
        return Outcome("not_allowed", reason, errcode)
    if errcode == 45009:
        pause_channel_until_tomorrow(channel)
        return Outcome("quota", reason, errcode, refund_consent=subscribe)
    if errcode in RETRY_ERRCODES:
        return Outcome("retry", reason, errcode, refund_consent=subscribe)
    return Outcome("failed", reason, errcode, refund_consent=subscribe)


def apply_side_effects(row: Notification, channel: Channel, message: Message, outcome: Outcome) -> None:
    """What a WeChat answer teaches us about the person: no consent left, no longer following, or a consent that
    was spent on a send WeChat refused (it was not used up there, so it is given back)."""
    if outcome.errcode == 43101:
        db.session.execute(update(SubscriptionConsent).where(*_consent_of(row, message)).values(remaining=0))
    elif outcome.errcode == 43004:
        db.session.execute(update(WeChatIdentity).where(
            WeChatIdentity.staff_id == row.staff_id, WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT)
            .values(following=False))
    elif outcome.refund_consent:
        db.session.execute(update(SubscriptionConsent).where(*_consent_of(row, message))
                           .values(remaining=SubscriptionConsent.remaining + 1))


def _consent_of(row: Notification, message: Message) -> tuple:
    """Built only when an answer needs it: most sends succeed."""
    return SubscriptionConsent.staff_id == row.staff_id, SubscriptionConsent.template_id == message.template_id

