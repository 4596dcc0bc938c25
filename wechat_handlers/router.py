"""The one table of what the official account answers: message types, events, menu keys and keywords.

To add a feature, write a handler `handler(ctx: Context) -> str | None` (the reply text; None answers nothing)
in a module of this package and add ONE `Route` line to ROUTES below, e.g.

    Route(announcements.latest, "查看最新公告", keywords=("公告",), click_keys=("ANNOUNCEMENTS",)),
    Route(announcements.start_posting, "发布公告（工会干部）", keywords=("发布公告",), officer_only=True),

Matching, first hit wins:
- events: a menu CLICK by `click_keys`, then any event by its wechatpy name in `events` ("subscribe",
  "subscribe_scan", "unsubscribe", "scan", "location", "click", "view" ...);
- other messages: an active conversation first (see wechat_handlers.conversation), then for text an exact
  `keywords` match (case-insensitive), then a `prefix` command ("绑定" takes "绑定 123456" and "绑定123456";
  `ctx.args` holds "123456"; the longest prefix wins), then `message_types` (("text",) here is the fallback);
- nothing matched: no reply ("success").
`needs_staff` routes answer non-linked followers with how to link; `officer_only` routes answer everyone but
officers with a refusal. `description` (Chinese) is what 帮助 lists, so every route has one.
Conversations are registered next to the table (at the bottom of this module), so the whole map is here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

from app.services import policy
from models import Staff
from wechat_handlers import announcements, conversation, events, proposals, staff, vouchers
from wechat_handlers.context import Context

Handler = Callable[[Context], "str | None"]


@dataclass(frozen=True)
class Route:
    handler: Handler
    description: str                      # Chinese, listed by 帮助
    keywords: tuple[str, ...] = ()        # exact text, case-insensitive
    prefix: str = ""                      # a command followed by an argument
    click_keys: tuple[str, ...] = ()      # menu CLICK event keys (see wechat.official_account.menu)
    events: tuple[str, ...] = ()          # wechatpy event names
    message_types: tuple[str, ...] = ()   # when no keyword or prefix matched
    needs_staff: bool = False
    officer_only: bool = False
    usage: str = ""                       # how 帮助 shows the command; default: first keyword, else the prefix

    @property
    def command(self) -> str:
        return self.usage or (self.keywords[0] if self.keywords else self.prefix)


def help_text(ctx: Context) -> str:
    """Generated from ROUTES: the commands first, then what happens by itself. Officer routes only for officers."""
    return _help_text(_is_officer(ctx.member))


@functools.cache            # ROUTES is fixed at import: two texts in all
def _help_text(officer: bool) -> str:
    visible = [r for r in ROUTES if not r.officer_only or officer]
    lines = ["智慧工会公众号可以为您："]
    lines += [f"· 发送“{r.command}”：{r.description}" for r in visible if r.command]
    others = [f"· {r.description}" for r in visible if not r.command]
    if others:
        lines += ["此外：", *others]
    return "\n".join(lines)


ROUTES: list[Route] = [
    Route(help_text, "查看公众号能做什么", keywords=("帮助", "help", "?", "？"), click_keys=("HELP",)),
    Route(staff.link_by_code, "把微信与教职工身份绑定（绑定码在小程序“我的”页面获取）", prefix="绑定",
          usage="绑定 六位绑定码"),
    Route(staff.link_help, "查看绑定方法和绑定状态", keywords=("绑定说明",), click_keys=("LINK",)),
    Route(staff.me, "查看已绑定的教职工信息", keywords=("我的", "我的信息"), click_keys=("ME",), needs_staff=True),
    Route(announcements.latest, "查看发给我的最新公告", keywords=("公告",), click_keys=("ANNOUNCEMENTS",),
          needs_staff=True),
    Route(announcements.start_posting, "发布公告（工会干部）", keywords=("发布公告",), officer_only=True),
    Route(events.open_events, "查看我可以报名的活动", keywords=("活动",), click_keys=("EVENTS",), needs_staff=True),
    Route(vouchers.status, "查看我的生日蛋糕券（状态与有效期）", keywords=("生日券", "蛋糕券"), needs_staff=True),
    Route(proposals.status, "查看我提出和附议的提案办理情况", keywords=("提案", "我的提案"), needs_staff=True),
    Route(staff.subscribe, "关注后自动识别在小程序中绑定过的教职工", events=("subscribe", "subscribe_scan")),
    Route(staff.unsubscribe, "取消关注后，通知不再发到公众号", events=("unsubscribe",)),
    Route(staff.menu_not_ready, "尚未开放的菜单会提示您稍后再来", events=("click",)),
    Route(staff.unknown_text, "看不懂的文字消息会提示您发送“帮助”", message_types=("text",)),
]

# Conversations (register_conversation(name, handler, message_types)) are registered here.
conversation.register_conversation(announcements.CONVERSATION, announcements.posting_step,
                                   message_types=("text", "image"), on_cancel=announcements.cancel_posting)


def dispatch(ctx: Context) -> str | None:
    """The reply text for one push (None: answer "success")."""
    if ctx.message.type != "event":
        taken, reply = conversation.continue_conversation(ctx)
        if taken:
            return reply
    route, ctx.args = find_route(ctx)
    if route is None:
        return None
    if route.officer_only and not _is_officer(ctx.member):
        return staff.OFFICERS_ONLY if ctx.member else staff.link_first()
    if route.needs_staff and ctx.member is None:
        return staff.link_first()
    return route.handler(ctx)


def find_route(ctx: Context) -> tuple[Route | None, str]:
    """The matching route and the argument of a prefix command ("" otherwise)."""
    message = ctx.message
    if message.type == "event":
        key = message.key if message.event == "click" and isinstance(message.key, str) else None
        route = next((r for r in ROUTES if key is not None and key in r.click_keys), None)
        return route or next((r for r in ROUTES if message.event in r.events), None), ""
    if ctx.is_text and ctx.text:
        route, args = _command_route(ctx.text)
        if route is not None:
            return route, args
    return next((r for r in ROUTES if message.type in r.message_types), None), ""


def _command_route(text: str) -> tuple[Route | None, str]:
    folded = text.casefold()
    for route in ROUTES:
        if any(folded == k.casefold() for k in route.keywords):
            return route, ""
    for route in sorted((r for r in ROUTES if r.prefix), key=lambda r: -len(r.prefix)):
        if folded.startswith(route.prefix.casefold()):
            return route, text[len(route.prefix):].strip()
    return None, ""


def _is_officer(member: Staff | None) -> bool:
    return policy.is_officer(member)
