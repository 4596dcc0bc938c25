"""What every follower can do: follow and unfollow, link to the roster, see who they are linked as."""

from __future__ import annotations

import re

from flask import current_app

from app.services import followers, roster
from app.services.principals import StaffCard
from models import Staff
from wechat_handlers.context import Context

LINK_HOWTO = ("绑定方法：打开工会小程序，在“我的”页面点“绑定公众号”获取 6 位绑定码，"
              "然后在这里发送“绑定 123456”（换成您的绑定码），{minutes} 分钟内有效。")
OFFICERS_ONLY = "该功能仅限工会干部使用。回复“帮助”查看您可以使用的功能。"
WELCOME = "欢迎关注智慧工会！工会的公告、活动和各类通知会通过本公众号送达。"
UNKNOWN_TEXT = "抱歉，没有看懂您的消息。回复“帮助”查看公众号能做什么。"
MENU_NOT_READY = "该功能即将开放，敬请期待。回复“帮助”查看目前可以使用的功能。"
CODE_PATTERN = re.compile(r"\d{6}")


def _howto() -> str:
    ttl = current_app.config["SU"].wechat.official_account.link_code_ttl_seconds
    return LINK_HOWTO.format(minutes=max(1, ttl // 60))


def link_first() -> str:
    """The answer to a follower who is not linked yet and asks for something personal."""
    return "您还没有绑定教职工身份，暂时无法使用此功能。\n" + _howto()


def _linked_as(staff: Staff | StaffCard) -> str:
    return f"{staff.name}（工号 {staff.employee_no}）"


def subscribe(ctx: Context) -> str:
    identity = followers.follow(ctx.openid)
    staff = followers.linked_staff(identity)
    if staff is not None:
        return f"{WELCOME}\n已识别您为 {_linked_as(staff)}，无需再绑定。回复“帮助”查看公众号能做什么。"
    return f"{WELCOME}\n{_howto()}\n回复“帮助”查看公众号能做什么。"


def unsubscribe(ctx: Context) -> None:
    followers.unfollow(ctx.openid)
    return None


def link_by_code(ctx: Context) -> str:
    """"绑定 123456": a service refusal (wrong code, too many tries) becomes the reply through its Refusal."""
    if not CODE_PATTERN.fullmatch(ctx.args):
        return "请发送“绑定”加 6 位绑定码，例如“绑定 123456”。\n" + _howto()
    staff = followers.link_by_code(ctx.openid, ctx.args)
    return f"绑定成功！您已绑定为 {_linked_as(staff)}，今后工会的通知会通过本公众号发送给您。"


def link_help(ctx: Context) -> str:
    if ctx.member is not None:
        return f"您已绑定为 {_linked_as(ctx.member)}。如需改绑其他教职工身份，可重新获取绑定码后发送。"
    return _howto()


def me(ctx: Context) -> str:
    staff = ctx.member
    lines = [f"姓名：{staff.name}", f"工号：{staff.employee_no}", f"部门：{staff.department or '—'}",
             f"分工会：{staff.sub_union.name if staff.sub_union else '—'}",
             f"状态：{roster.STATUS_LABELS[staff.status]}"]
    return "您绑定的教职工信息：\n" + "\n".join(lines)


def menu_not_ready(ctx: Context) -> str:
    return MENU_NOT_READY


def unknown_text(ctx: Context) -> str:
    return UNKNOWN_TEXT
