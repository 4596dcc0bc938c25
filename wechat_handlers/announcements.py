"""Announcements on the official account: staff ask for the latest (公告); officers post by chat (发布公告).

The posting conversation writes a draft row from the title onward (images sent meanwhile are attached to it);
Redis holds only the step and the draft's id. Steps: title → body (several messages, then 完成) → audience →
preview → 确认 publishes, 取消 discards the draft. Left idle, the conversation expires and the draft stays, to be
finished here or through the officer API.
"""

from __future__ import annotations

from flask import current_app
from wechatpy.exceptions import WeChatClientException

from app.errors import Refusal
from app.services import announcements, attachments, policy
from app.services.audiences import Audience, count_audience
from app.wechat import mp_client
from models import Gender, StaffStatus
from wechat_handlers.context import Context
from wechat_handlers.conversation import end_conversation, start_conversation

CONVERSATION = "post_announcement"
DONE_WORDS = {"完成", "好了", "结束"}
AUDIENCE_CHOICES = {
    "全体": lambda staff: Audience(),
    "本分工会": lambda staff: Audience(sub_union_ids=_own_sub_unions(staff)),
    "在职": lambda staff: Audience(statuses=[StaffStatus.ACTIVE]),
    "退休": lambda staff: Audience(statuses=[StaffStatus.RETIRED]),
    "女职工": lambda staff: Audience(genders=[Gender.FEMALE]),
}
PREVIEW_BODY_CHARS = 300


def _own_sub_unions(staff) -> list[int]:
    ids = policy.home_sub_unions(staff)
    if not ids:
        raise Refusal("no_sub_union", "您没有所属的分工会，请选择其他发布范围")
    return ids
LIST_SIZE = 5


def _ttl() -> int:
    return current_app.config["SU"].wechat.official_account.conversation_ttl_seconds


def _goto(ctx: Context, step: str, draft_id: int | None = None) -> None:
    start_conversation(ctx.openid, CONVERSATION, {"step": step, "draft": draft_id}, ttl=_ttl())


# --- staff: the latest announcements ---------------------------------------------------------------------------

def latest(ctx: Context) -> str:
    rows = announcements.latest_for_staff(ctx.staff, LIST_SIZE)
    if not rows:
        return "目前没有发给您的公告。"
    appid = current_app.config["SU"].wechat.miniprogram.appid
    lines = [f'· <a data-miniprogram-appid="{appid}" data-miniprogram-path="pages/announcements/detail?id={a.id}">'
             f"{_escape(a.title)}</a>" for a in rows]
    return "最新公告（点击在小程序中查看）：\n" + "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- officers: posting by chat -----------------------------------------------------------------------------------

def start_posting(ctx: Context) -> str:
    _goto(ctx, "title")
    return "开始发布公告。请发送公告标题（100 字以内）。\n随时回复“取消”放弃。"


def posting_step(ctx: Context, state: dict) -> str | None:
    """One message of the posting conversation. A service refusal rolls the message's unit of work back and becomes
    the reply (wechat_handlers.push); the step stays. A draft that was published, withdrawn or deleted meanwhile
    (through the API) ends the conversation."""
    if state.get("draft") and not _still_a_draft(ctx, state["draft"]):
        end_conversation(ctx.openid)
        return "这份草稿已在别处发布或删除，本次发布已结束。回复“发布公告”重新开始。"
    if ctx.message.type == "image":
        return _add_image(ctx, state)
    return STEPS[state.get("step", "title")](ctx, state)


def _still_a_draft(ctx: Context, draft_id: int) -> bool:
    return announcements.is_managed_draft(ctx.staff, draft_id)


def cancel_posting(ctx: Context, state: dict) -> str:
    if state.get("draft") and _still_a_draft(ctx, state["draft"]):
        announcements.discard_draft(ctx.staff, state["draft"])
        return "已取消，草稿已丢弃。"
    return "已取消。"


def _title_step(ctx: Context, state: dict) -> str:
    if not ctx.text or len(ctx.text) > 100:
        return "标题不能为空，且不超过 100 字，请重新发送。"
    draft = announcements.create_draft(ctx.staff, title=ctx.text)
    _goto(ctx, "body", draft.id)
    return "标题已记录。请发送正文，可以分多条发送，也可以发送图片；发送完毕后回复“完成”。"


def _body_step(ctx: Context, state: dict) -> str:
    draft = announcements.get_for_officer(ctx.staff, state["draft"])
    if ctx.text in DONE_WORDS:
        if not draft.body.strip():
            return "正文还是空的，请先发送正文。"
        _goto(ctx, "audience", draft.id)
        return "请选择发布范围，回复其中之一：" + " / ".join(AUDIENCE_CHOICES)
    announcements.edit(ctx.staff, draft.id, body=f"{draft.body}\n{ctx.text}".strip())
    _goto(ctx, "body", draft.id)
    return f"已收到（正文共 {len(draft.body)} 字）。继续发送，或回复“完成”。"


def _audience_step(ctx: Context, state: dict) -> str:
    choose = AUDIENCE_CHOICES.get(ctx.text)
    if choose is None:
        return "没有这个选项，请回复其中之一：" + " / ".join(AUDIENCE_CHOICES)
    draft = announcements.get_for_officer(ctx.staff, state["draft"])
    announcements.edit(ctx.staff, draft.id, audience=choose(ctx.staff))
    _goto(ctx, "confirm", draft.id)
    return _preview(draft, ctx.text)


def _preview(draft, label: str) -> str:
    body = draft.body if len(draft.body) <= PREVIEW_BODY_CHARS else draft.body[:PREVIEW_BODY_CHARS] + "……"
    reach = count_audience(Audience.model_validate(draft.audience))
    return (f"【预览】\n标题：{draft.title}\n正文：{body}\n图片：{len(draft.attachments)} 张\n"
            f"范围：{label}（{reach} 人）\n回复“确认”发布，回复“取消”放弃。")


def _confirm_step(ctx: Context, state: dict) -> str:
    draft = announcements.get_for_officer(ctx.staff, state["draft"])
    if ctx.text != "确认":
        return "回复“确认”发布，回复“取消”放弃。"
    announcements.publish(ctx.staff, draft.id)
    end_conversation(ctx.openid)
    return f"公告《{draft.title}》已发布，将陆续通知 {count_audience(Audience.model_validate(draft.audience))} 人。"


def _add_image(ctx: Context, state: dict) -> str:
    if not state.get("draft"):
        return "请先发送公告标题，再发送图片。"
    draft = announcements.get_for_officer(ctx.staff, state["draft"])
    try:
        data = mp_client().media.download(ctx.message.media_id).content
    except WeChatClientException:
        return "图片获取失败，请重新发送。"
    attachments.attach(draft, f"图片{len(draft.attachments) + 1}.jpg", data)
    _goto(ctx, state.get("step", "body"), draft.id)
    return f"已添加图片（共 {len(draft.attachments)} 张）。"


STEPS = {"title": _title_step, "body": _body_step, "audience": _audience_step, "confirm": _confirm_step}
