"""Events on the official account: "活动" (or the 活动 menu button) lists what the follower can sign up for now.
Signing up itself happens in the mini-program (answers, check-in code)."""

from __future__ import annotations

from app import clock
from app.services.events import cards as event_cards
from app.services.events.records import SIGNUP_LABELS
from models import SignupStatus
from wechat_handlers.context import Context

LIST_SIZE = 8


def _seats(card: event_cards.EventCard) -> str:
    if card.seats_left:
        return f"剩余 {card.seats_left} 个名额"
    return "名额已满，可报名候补" if card.event.waitlist_enabled else "名额已满"


def _mine(card: event_cards.EventCard) -> str:
    if card.signup is None or card.signup.status is SignupStatus.CANCELLED:
        return ""
    return f"（您已{SIGNUP_LABELS[card.signup.status]}）"


def open_events(ctx: Context) -> str:
    cards = event_cards.open_events_for(ctx.staff)
    if not cards:
        return "目前没有您可以报名的活动。新活动开始报名时，会通知您。"
    lines = ["正在报名的活动："]
    for n, card in enumerate(cards[:LIST_SIZE], start=1):
        e = card.event
        lines.append(f"{n}. {e.title}\n   {clock.local_text(e.starts_at)}，{e.place or '地点见详情'}；"
                     f"{_seats(card)}{_mine(card)}\n   报名截止：{clock.local_text(e.signup_closes_at)}")
    if len(cards) > LIST_SIZE:
        lines.append(f"……共 {len(cards)} 个活动")
    lines.append("请在工会小程序的“活动”页面报名或取消。")
    return "\n".join(lines)
