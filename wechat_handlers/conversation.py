"""Conversations: a follower's next messages go to one handler until the conversation ends or times out.

    register_conversation("post_announcement", post_step, message_types=("text", "image"),
                          on_cancel=discard_draft)                                # at import time
    start_conversation(openid, "post_announcement", {"step": "title"}, ttl=600)   # from any handler
    end_conversation(openid)

A conversation handler is `handler(ctx, state) -> str | None`, called for every message of the registered
types (text by default) before keyword routing. To move on to the next step it calls `start_conversation` again
with the new state (which replaces the old one and restarts the TTL); to finish it calls `end_conversation`.
Events (menu clicks, subscribe ...) are routed as usual during a conversation. Sending "取消" or "退出" always
ends the conversation: `on_cancel(ctx, state) -> str | None`, when given, runs first (e.g. to discard a draft)
and its text is the reply. The state lives in Redis under `redis_key("mp-conversation", openid)`: it must be small
JSON, and a Redis write is not undone when the database rolls back, so change it after the service call that
may fail. Losing it only means the follower starts over.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Callable

from app.extensions import ScriptCall, get_redis, prefetched, redis_key
from wechat_handlers.context import Context

log = logging.getLogger(__name__)

ConversationHandler = Callable[[Context, dict[str, Any]], "str | None"]
CANCEL_WORDS = frozenset({"取消", "退出"})
CANCELLED_REPLY = "已退出当前操作。回复“帮助”查看公众号能做什么。"
DEFAULT_TTL_SECONDS = 600


@dataclass(frozen=True)
class Conversation:
    name: str
    handler: ConversationHandler
    message_types: tuple[str, ...]
    on_cancel: ConversationHandler | None = None


CONVERSATIONS: dict[str, Conversation] = {}


def register_conversation(name: str, handler: ConversationHandler, message_types: tuple[str, ...] = ("text",),
                          on_cancel: ConversationHandler | None = None) -> None:
    """Declares a conversation; registering the same name with another handler is a programming error."""
    existing = CONVERSATIONS.get(name)
    if existing is not None and existing.handler is not handler:
        raise ValueError(f"conversation {name!r} is already registered")
    CONVERSATIONS[name] = Conversation(name, handler, tuple(message_types), on_cancel)


def start_conversation(openid: str, name: str, state: dict[str, Any] | None = None,
                       ttl: int = DEFAULT_TTL_SECONDS) -> None:
    """Starts (or moves on) the follower's conversation; it ends by itself after `ttl` seconds of silence."""
    if name not in CONVERSATIONS:
        raise KeyError(f"unknown conversation {name!r}")
    payload = json.dumps({"name": name, "state": state or {}}, ensure_ascii=False)
    get_redis().set(_key(openid), payload, ex=ttl)


def end_conversation(openid: str) -> None:
    get_redis().delete(_key(openid))


_STATE = "return redis.call('GET', KEYS[1])"
_NOT_FETCHED = object()


def state_lookup(openid: str) -> ScriptCall:
    """The Redis read of the follower's conversation state: a push makes it with its claim (wechat_handlers.push)."""
    return ScriptCall(_STATE, (_key(openid),))


def current_conversation(openid: str) -> tuple[Conversation, dict[str, Any]] | None:
    raw = prefetched(state_lookup(openid), _NOT_FETCHED)
    if raw is _NOT_FETCHED:
        raw = get_redis().get(_key(openid))
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        conversation = CONVERSATIONS[data["name"]]
        return conversation, dict(data.get("state") or {})
    except (ValueError, KeyError, TypeError):   # unreadable, or a conversation that no longer exists
        log.warning("dropping an unknown or unreadable conversation state")
        end_conversation(openid)
        return None


def continue_conversation(ctx: Context) -> tuple[bool, str | None]:
    """(taken, reply): whether an active conversation took this message, and its reply."""
    current = current_conversation(ctx.openid)
    if current is None:
        return False, None
    conversation, state = current
    if ctx.is_text and ctx.text in CANCEL_WORDS:
        reply = conversation.on_cancel(ctx, state) if conversation.on_cancel else None
        end_conversation(ctx.openid)   # after on_cancel: if it fails, the follower may cancel again
        return True, reply or CANCELLED_REPLY
    if ctx.message.type not in conversation.message_types:
        return False, None
    return True, conversation.handler(ctx, state)


def _key(openid: str) -> str:
    return redis_key("mp-conversation", openid)
