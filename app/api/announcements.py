"""Announcements: staff read them in the mini-program; officers draft, publish, withdraw and follow reading."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, g, request
from pydantic import AliasPath, BaseModel, ConfigDict, Field, computed_field

from app.validation import BeijingTime, Moment
from app.api.endpoint import (
    READS_RECORDS, AuthLevel, Merged, ascii_or, endpoint, file_download, list_response, partial_of, uploaded_file,
)
from app.errors import NotFound
from app.extensions import ScriptCall
from app.services import announcements, attachments
from app.services.audiences import Audience
from models import Announcement, AnnouncementCategory, AnnouncementStatus

bp = Blueprint("announcements", __name__)
OFFICER = AuthLevel.OFFICER


class PageQuery(BaseModel):
    page: int = Field(default=1, ge=1, le=100_000)
    page_size: int = Field(default=20, ge=1, le=50)


class AttachmentOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    announcement_id: int = Field(exclude=True)
    filename: str
    content_type: str
    size: int

    @computed_field
    @property
    def url(self) -> str:
        return f"/api/v1/announcements/{self.announcement_id}/attachments/{self.id}"


class CategoryLabelled(BaseModel):
    category: AnnouncementCategory

    @computed_field
    @property
    def category_label(self) -> str:
        return announcements.CATEGORY_LABELS[self.category]


class AnnouncementSummary(CategoryLabelled):
    model_config = READS_RECORDS
    id: int
    title: str
    pinned: bool
    published_at: BeijingTime | None
    read: bool


class AnnouncementList(BaseModel):
    items: list[AnnouncementSummary]
    total: int = Field(description="公告条数，最多数到 1000（total_exact 为 false 时表示“1000 条以上”）")
    total_exact: bool = Field(description="total 是否为确切条数")
    page: int


class AnnouncementDetail(CategoryLabelled):
    model_config = READS_RECORDS
    id: int
    title: str
    body: str
    pinned: bool
    status: AnnouncementStatus
    published_at: BeijingTime | None
    disclosure_ends_at: BeijingTime | None
    attachments: list[AttachmentOut]
    audience: dict


class OfficerList(BaseModel):
    items: list[AnnouncementDetail]
    total: int
    page: int


class OfficerListQuery(PageQuery):
    status: AnnouncementStatus | None = None


class AnnouncementIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"title": "关于开展春季健步走活动的通知", "body": "请各分工会组织会员报名。", "category": "activity"}]})
    title: str = Field(default="", max_length=100)
    body: str = Field(default="", max_length=20000)
    category: announcements.CategoryChoice = Field(default=AnnouncementCategory.NOTICE,
                                                   description="notice 通知 / activity 活动 / welfare 福利 / disclosure 公示")
    audience: Audience = Field(default_factory=Audience)
    pinned: bool = False
    disclosure_ends_at: Moment | None = Field(default=None, description="公示期截止（公示类）")


AnnouncementPatch = partial_of(AnnouncementIn, "AnnouncementPatch", "Fields left out stay as they are; an explicit "
                               "null is refused (422), except for disclosure_ends_at.")


class StaffBrief(BaseModel):
    model_config = READS_RECORDS
    employee_no: str
    name: str
    sub_union: str | None = Field(default=None, validation_alias=AliasPath("sub_union", "name"))


class ReadStats(BaseModel):
    audience: int
    read: int
    unread: int
    unread_staff: list[StaffBrief]


class PublishedAnnouncement(AnnouncementDetail):
    notice_id: int | None = Field(description="发布通知的编号，用于 /officer/notices/{notice_id}/report 查看送达")


def detail_out(announcement: Announcement) -> AnnouncementDetail:
    return AnnouncementDetail.model_validate(announcement)


# --- staff ---------------------------------------------------------------------------------------------------

def _page_lookup(staff_id: int) -> ScriptCall | None:
    """The list's lookup in Redis, made with the caller's card. The query is only read here (the endpoint validates
    it): a page that does not match what the view asks for is simply not used."""
    try:
        args = request._get_current_object().args           # not through the proxy: app.extensions.this_app
        page, page_size = int(args.get("page", 1)), int(args.get("page_size", 20))
    except ValueError:
        return None
    return announcements.page_lookup(staff_id, page, page_size)


@bp.get("/announcements")
@endpoint("我能看到的公告（置顶在前，最新在前）", query=PageQuery, response=AnnouncementList, tags=("announcements",),
          prefetch=_page_lookup)
def list_mine(query: PageQuery):
    rows, total, exact = announcements.list_for_staff(g.member, query.page, query.page_size)
    return list_response(AnnouncementList(items=[], total=total, total_exact=exact, page=query.page),
                         "items", AnnouncementSummary, rows)


@bp.get("/announcements/<int:announcement_id>")
@endpoint("公告详情（记为已读）", response=AnnouncementDetail, tags=("announcements",))
def show(announcement_id: int):
    announcement = announcements.get_for_staff(g.member, announcement_id)
    announcements.record_read(g.member, announcement)
    return detail_out(announcement)


@bp.get("/announcements/<int:announcement_id>/attachments/<int:attachment_id>")
@endpoint("下载公告附件", tags=("announcements",))
def download(announcement_id: int, attachment_id: int):
    announcement = announcements.get_for_staff(g.member, announcement_id)
    return _send(announcement, attachment_id)


def _send(announcement: Announcement, attachment_id: int):
    attachment = next((f for f in announcement.attachments if f.id == attachment_id), None)
    if attachment is None:
        raise NotFound("找不到该附件", code="attachment_not_found")
    return file_download(attachments.path_of(attachment), attachment.filename, attachment.content_type,
                         ascii_name=ascii_or(attachment.filename,
                                             f"attachment-{attachment.id}{Path(attachment.filename).suffix}"))


# --- officers ------------------------------------------------------------------------------------------------

@bp.get("/officer/announcements")
@endpoint("公告管理列表", auth=OFFICER, query=OfficerListQuery, response=OfficerList, tags=("officer",))
def officer_list(query: OfficerListQuery):
    rows, total = announcements.list_for_officer(g.staff, query.status, query.page, query.page_size)
    return OfficerList(items=[detail_out(a) for a in rows], total=total, page=query.page)


@bp.post("/officer/announcements")
@endpoint("新建公告草稿", auth=OFFICER, body=AnnouncementIn, response=AnnouncementDetail, status=201,
          tags=("officer",))
def create(body: AnnouncementIn):
    announcement = announcements.create_draft(g.staff, **body.model_dump(exclude={"audience"}),
                                              audience=body.audience)
    return detail_out(announcement)


@bp.get("/officer/announcements/<int:announcement_id>")
@endpoint("公告（管理视图）", auth=OFFICER, response=AnnouncementDetail, tags=("officer",))
def officer_show(announcement_id: int):
    return detail_out(announcements.get_for_officer(g.staff, announcement_id))


@bp.patch("/officer/announcements/<int:announcement_id>")
@endpoint("修改公告", auth=OFFICER, body=AnnouncementPatch, response=AnnouncementDetail, tags=("officer",))
def edit(announcement_id: int, body: AnnouncementPatch):
    changes = {k: getattr(body, k) for k in body.model_fields_set}
    return detail_out(announcements.edit(g.staff, announcement_id, **changes))


@bp.post("/officer/announcements/<int:announcement_id>/publish")
@endpoint("发布公告（经微信内容安全检查，并通知受众）", auth=OFFICER, response=PublishedAnnouncement,
          tags=("officer",))
def publish(announcement_id: int):
    announcement = announcements.publish(g.staff, announcement_id)
    return PublishedAnnouncement.model_validate(
        Merged(announcement, notice_id=announcements.publication_notice_id(announcement)))


@bp.post("/officer/announcements/<int:announcement_id>/withdraw")
@endpoint("撤回公告（未送达的通知一并取消）", auth=OFFICER, response=AnnouncementDetail, tags=("officer",))
def withdraw(announcement_id: int):
    return detail_out(announcements.withdraw(g.staff, announcement_id))


@bp.get("/officer/announcements/<int:announcement_id>/reads")
@endpoint("阅读统计：已读人数与未读名单", auth=OFFICER, query=PageQuery, response=ReadStats, tags=("officer",))
def reads(announcement_id: int, query: PageQuery):
    stats = announcements.read_statistics(g.staff, announcement_id, query.page, query.page_size)
    return ReadStats.model_validate(stats)


@bp.post("/officer/announcements/<int:announcement_id>/attachments")
@endpoint("上传公告附件（图片或 PDF，multipart 字段名 file）", auth=OFFICER, response=AttachmentOut, status=201,
          tags=("officer",), upload="file")
def upload(announcement_id: int):
    announcement = announcements.get_for_officer(g.staff, announcement_id)
    attachment = attachments.attach(announcement, *uploaded_file())
    return AttachmentOut.model_validate(attachment)


@bp.get("/officer/announcements/<int:announcement_id>/attachments/<int:attachment_id>")
@endpoint("下载公告附件（管理视图）", auth=OFFICER, tags=("officer",))
def officer_download(announcement_id: int, attachment_id: int):
    return _send(announcements.get_for_officer(g.staff, announcement_id), attachment_id)
