"""One official-account push, from its plaintext XML to the reply: parsing, WeChat's retries, the unit of work.

- Anything wechatpy cannot parse, or that does not name a plausible sender, is answered "success".
- WeChat retries a push it got no answer to within 5 s (3 tries in all). Each push is claimed in Redis by MsgId
  (events: FromUserName + CreateTime + Event), so only one delivery runs the handler; a duplicate that arrives
  meanwhile polls Redis for up to DUPLICATE_WAIT_SECONDS and answers with the first one's stored reply. The
  push's signed (timestamp, nonce) is bound to that identity in the same round trip to Redis as the claim
  (app.wechat.mp_push.bind_nonce_and_claim): another body under the same signature is refused. The same round trip
  reads the follower's link (app.services.followers) and a message's conversation state, and writes the replies
  of earlier pushes that wait to be kept (wechat_handlers.kept_replies). Replies are kept for longer than any
  timestamp the endpoint accepts.
- With Redis down nothing can be de-duplicated: the push is answered "success" without acting (WeChat's retries
  would otherwise run it several times).
- The handler runs in one unit of work: committed before its reply is stored, rolled back on any error. A
  service refusal (Refusal) becomes the reply text; any other error is logged and answered "success", and its
  claim is dropped so a later retry may try again.
- A reply's text is cut to REPLY_MAX_BYTES of UTF-8 on a character boundary.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Callable

from redis.exceptions import RedisError
from wechatpy.messages import BaseMessage
from wechatpy.replies import TextReply

from app.errors import Refusal
from app.extensions import ScriptCall, get_redis, redis_key, this_app
from app.unit_of_work import unit_of_work
from app.services import followers
from app.wechat import mp_push
from wechat_handlers import conversation, router
from wechat_handlers.kept_replies import kept_replies
from wechat_handlers.context import Context

log = logging.getLogger(__name__)

SUCCESS = "success"
REPLY_MAX_BYTES = 2048
ELLIPSIS = "…"
CLAIM_SECONDS = 30               # longer than any handler may run (WeChat gives up after 5 s)
DUPLICATE_WAIT_SECONDS = 4.0     # a duplicate answers within WeChat's 5 s
POLL_SECONDS = 0.05
PENDING = b"pending"
DONE = b"done:"
WECHAT_ID = re.compile(r"[A-Za-z0-9_@.-]{1,64}")
XML_INVALID_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def handle_push(push: mp_push.OpenedPush) -> str:
    """The reply to send back: a reply XML document, or "success". Raises PushRefused for a replayed signature."""
    message = parse(push.xml)
    if message is None:
        return SUCCESS
    key = _dedup_key(message)
    replies = kept_replies()
    carried, taken = replies.carried()
    try:
        first = mp_push.bind_nonce_and_claim(_settings(), push, key, PENDING, CLAIM_SECONDS,
                                             also=_lookups_ahead(message), before=carried)
    except RedisError:
        replies.give_back(taken)
        return _redis_unavailable()
    try:
        return _once(key, first, lambda: _answer(message))
    except RedisError:
        return _redis_unavailable()


def _redis_unavailable() -> str:
    log.error("Redis unavailable: push answered success without acting")
    return SUCCESS


def _lookups_ahead(message: BaseMessage) -> tuple[ScriptCall, ...]:
    """What handling the push reads from Redis first: the follower's link and, for a message, the conversation."""
    link = followers.link_lookup(message.source)
    return (link,) if message.type == "event" else (link, conversation.state_lookup(message.source))


def _settings():
    return this_app().config["SU"].wechat.official_account


def parse(xml: bytes) -> BaseMessage | None:
    """The parsed push, or None for anything malformed (many kinds of errors are raised for those)."""
    try:
        message = mp_push.parse_message(xml.decode("utf-8"))
    except Exception as exc:   # ExpatError, KeyError (no MsgType), AttributeError (repeated MsgType) ...
        log.info("unparsable push answered success: %s", type(exc).__name__)
        return None
    if message is None or not isinstance(message._data, dict):
        return None
    if not all(isinstance(v, str) and WECHAT_ID.fullmatch(v) for v in (message.source, message.target)):
        log.info("push without a plausible sender answered success")
        return None
    return message


def render_reply(message: BaseMessage, text: str | None) -> str:
    if not text:
        return SUCCESS
    content = XML_INVALID_CHARS.sub("", truncate_utf8(text, REPLY_MAX_BYTES)).replace("]]>", "]]]]><![CDATA[>")
    return TextReply(message=message, content=content).render()


def truncate_utf8(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, cut between characters and ending in "…" when cut."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(ELLIPSIS.encode("utf-8"))
    return data[:room].decode("utf-8", errors="ignore") + ELLIPSIS


def _answer(message: BaseMessage) -> str:
    try:
        with unit_of_work():
            text = router.dispatch(_context(message))
    except Refusal as refusal:   # rolled back; the refusal is worded for the person
        text = refusal.message
    return render_reply(message, text)


def _context(message: BaseMessage) -> Context:
    follower = followers.find_follower(message.source)
    content = getattr(message, "content", "") if message.type == "text" else ""
    return Context(message=message, openid=message.source, follower=follower,
                   member=followers.linked_member(follower), text=content.strip() if isinstance(content, str) else "")


def _dedup_key(message: BaseMessage) -> str:
    data = message._data
    if message.type != "event" and data.get("MsgId"):
        identity = f"msg|{message.source}|{data['MsgId']}"
    else:
        identity = f"event|{message.source}|{data.get('CreateTime')}|{data.get('Event') or data.get('MsgType')}"
    return redis_key("mp-push", hashlib.sha1(identity.encode("utf-8")).hexdigest())


def _once(key: str, stored: bytes | None, produce: Callable[[], str]) -> str:
    """Runs `produce` for the first delivery of a push (`stored` is CLAIMED); duplicates get its stored reply,
    waiting a bounded time while the first one is still at work (its claim still pending)."""
    r = get_redis()
    deadline = time.monotonic() + DUPLICATE_WAIT_SECONDS
    while True:
        if stored == mp_push.CLAIMED:
            return _produce_claimed(key, produce)
        if stored is not None and stored.startswith(DONE):
            return stored[len(DONE):].decode("utf-8")
        if time.monotonic() >= deadline:
            log.warning("duplicate push still being handled after %.0f s; answered success", DUPLICATE_WAIT_SECONDS)
            return SUCCESS
        time.sleep(POLL_SECONDS)
        stored = mp_push.CLAIMED if r.set(key, PENDING, nx=True, ex=CLAIM_SECONDS) else r.get(key)


def _produce_claimed(key: str, produce: Callable[[], str]) -> str:
    r = get_redis()
    try:
        reply = produce()
    except Exception:
        log.exception("official-account handler failed; rolled back and answered success")
        r.delete(key)
        return SUCCESS
    kept_replies().keep(key, DONE + reply.encode("utf-8"), mp_push.remember_seconds(_settings()))
    return reply
