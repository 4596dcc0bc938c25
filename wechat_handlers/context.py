"""What a handler is given: the parsed push, who sent it, and (once linked) the staff member behind them."""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy.orm import joinedload
from wechatpy.messages import BaseMessage

from app.extensions import db
from app.services.followers import Follower
from app.services.principals import StaffCard
from models import Staff


@dataclass
class Context:
    message: BaseMessage              # as wechatpy parsed it: TextMessage, ClickEvent, SubscribeEvent ...
    openid: str                       # the sender, in the official account's openid space
    follower: Follower | None         # our record of this follower (None before we ever heard of them)
    member: StaffCard | None          # the linked roster entry's cached card; None when not linked (or 离职)
    text: str = ""                    # a text message's content, stripped
    args: str = ""                    # what follows a prefix command: "123456" in "绑定 123456"

    @property
    def is_text(self) -> bool:
        return self.message.type == "text"

    @functools.cached_property
    def staff(self) -> Staff | None:
        """The linked staff row with its roles, read on first use: routing and 帮助 need only the card."""
        if self.member is None:
            return None
        return db.session.get(Staff, self.member.id, options=[joinedload(Staff.roles)])
