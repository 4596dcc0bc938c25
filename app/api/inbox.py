"""The in-app inbox, subscribe-message consents, and officers' delivery reports."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, g
from pydantic import BaseModel, ConfigDict, Field, computed_field

from app.validation import BeijingTime
from app.api.endpoint import READS_RECORDS, AuthLevel, Merged, endpoint
from app.services import audiences, notifications
from app.services.audiences import Audience
from models import NoticeStatus

bp = Blueprint("inbox", __name__)


class InboxQuery(BaseModel):
    before: int | None = Field(default=None, ge=1, le=2**31 - 1, description="上一页最后一条的 id（翻页用）")
    limit: int = Field(default=20, ge=1, le=50)


class InboxItemOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    kind: str
    title: str
    body: str
    page: str | None
    created_at: BeijingTime
    read: bool


class InboxPage(BaseModel):
    items: list[InboxItemOut]
    next_before: int | None
    unread: int


class UnreadOut(BaseModel):
    unread: int


class SubscriptionsIn(BaseModel):
    model_config = ConfigDict(extra="forbid",
                              json_schema_extra={"examples": [{"results": {"TPL-MINI-SERVICE": "accept"}}]})
    results: dict[str, Literal["accept", "reject", "ban", "filter"]] = Field(
        min_length=1, max_length=10, description="wx.requestSubscribeMessage 的返回：模板 id → accept/reject/ban")


class SubscriptionsOut(BaseModel):
    remaining: dict[str, int]


class ReportOut(BaseModel):
    notice_id: int
    occasion: str
    title: str
    counts: dict[str, int]
    reasons: list[dict]
    fanout_done: bool


class RequeueOut(BaseModel):
    requeued: int


@bp.get("/inbox")
@endpoint("我的消息（最新在前）", query=InboxQuery, response=InboxPage, tags=("inbox",))
def inbox(query: InboxQuery):
    items, next_before = notifications.inbox_page(g.staff, query.before, query.limit)
    return InboxPage(items=[InboxItemOut.model_validate(Merged(i.notice, read=i.read)) for i in items],
                     next_before=next_before, unread=notifications.unread_count(g.staff))


@bp.get("/inbox/unread-count")
@endpoint("未读消息数", response=UnreadOut, tags=("inbox",))
def unread():
    return UnreadOut(unread=notifications.unread_count(g.staff))


@bp.post("/inbox/<int:notice_id>/read")
@endpoint("标记一条消息已读", response=UnreadOut, tags=("inbox",))
def mark_read(notice_id: int):
    notifications.mark_read(g.staff, notice_id)
    return UnreadOut(unread=notifications.unread_count(g.staff))


@bp.post("/inbox/read-all")
@endpoint("全部标为已读", response=UnreadOut, tags=("inbox",))
def mark_all_read():
    notifications.mark_all_read(g.staff)
    return UnreadOut(unread=0)


@bp.post("/subscriptions")
@endpoint("记录订阅消息授权结果（每次同意可发送一条）", body=SubscriptionsIn, response=SubscriptionsOut,
          tags=("inbox",))
def record_subscriptions(body: SubscriptionsIn):
    return SubscriptionsOut(remaining=notifications.record_subscribe_results(g.staff, body.results))


class NoticeSummary(BaseModel):
    model_config = READS_RECORDS
    id: int
    kind: str = Field(description="announcement 公告 / service 服务通知 / greeting 祝福")
    title: str
    status: NoticeStatus
    created_at: BeijingTime
    send_after: BeijingTime

    @computed_field
    @property
    def status_label(self) -> str:
        return notifications.STATUS_LABELS[self.status]


class NoticePage(BaseModel):
    items: list[NoticeSummary]
    total: int
    page: int


class PageQuery(BaseModel):
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=20, ge=1, le=100)


@bp.get("/officer/notices")
@endpoint("我可以查看送达情况的通知（发给受众的，最新在前；报告见 /officer/notices/{notice_id}/report）",
          auth=AuthLevel.OFFICER, query=PageQuery, response=NoticePage, tags=("officer",))
def notice_list(query: PageQuery):
    rows, total = notifications.notices_for_officer(g.staff, query.page, query.page_size)
    return NoticePage(items=[NoticeSummary.model_validate(n) for n in rows], total=total, page=query.page)


@bp.get("/officer/notices/<int:notice_id>/report")
@endpoint("通知送达情况（已发送 / 仅站内 / 跳过 / 失败 / 未知）", auth=AuthLevel.OFFICER, response=ReportOut,
          tags=("officer",))
def report(notice_id: int):
    notice, report = notifications.delivery_report(g.staff, notice_id)
    return ReportOut(notice_id=notice.id, occasion=notice.occasion, title=notice.title, **report)


@bp.post("/officer/notices/<int:notice_id>/requeue")
@endpoint("重新发送失败的通知", auth=AuthLevel.OFFICER, response=RequeueOut, tags=("officer",))
def requeue(notice_id: int):
    return RequeueOut(requeued=notifications.requeue_failed(g.staff, notice_id))


class NoticeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"title": "体检安排", "body": "今年的教职工体检 5 月 10 日开始，请按分工会通知的时间参加。"}]})
    title: str = Field(min_length=1, max_length=100)
    body: str = Field(default="", max_length=2000)
    audience: Audience = Field(default_factory=Audience)


class NoticeOut(BaseModel):
    notice_id: int
    occasion: str
    audience_size: int


@bp.post("/officer/notices")
@endpoint("向受众发送一条服务通知（一次写入，发送进程分批送达）", auth=AuthLevel.OFFICER, body=NoticeIn, limited=True,
          response=NoticeOut, status=201, tags=("officer",))
def send_notice(body: NoticeIn):
    notice = notifications.send_officer_notice(g.staff, body.title, body.body, body.audience)
    return NoticeOut(notice_id=notice.id, occasion=notice.occasion,
                     audience_size=audiences.count_audience(Audience.model_validate(notice.audience)))
