"""What a handler is given: the parsed push, who sent it, and (once linked) the staff member behind them."""

from __future__ import annotations

from dataclasses import dataclass

from wechatpy.messages import BaseMessage

from models import Staff, WeChatIdentity


@dataclass
class Context:
    message: BaseMessage              # as wechatpy parsed it: TextMessage, ClickEvent, SubscribeEvent ...
    openid: str                       # the sender, in the official account's openid space
    identity: WeChatIdentity | None   # our record of this follower (None before we ever heard of them)
    staff: Staff | None               # the linked roster entry; None when not linked (or 离职)
    text: str = ""                    # a text message's content, stripped
    args: str = ""                    # what follows a prefix command: "123456" in "绑定 123456"

    @property
    def is_text(self) -> bool:
        return self.message.type == "text"
