"""Announcements and information disclosure: drafts, content check, publishing to an audience, reading,
withdrawal and read statistics. Posting by chat (wechat_handlers) and the officer API both come here."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from wechatpy.exceptions import WeChatClientException

from app import clock
from app.errors import Conflict, Invalid, NotFound, Refusal
from app.extensions import ScriptCall, db
from app.validation import labelled
from app.services import announcement_pages, audit, notifications, policy
from app.services.audiences import Audience, address, audience_condition, count_audience, member_kind
from app.wechat import mini_client
from models import (
    Announcement, AnnouncementCategory, AnnouncementRead, AnnouncementStatus, Staff, WeChatApp, WeChatIdentity,
)

log = logging.getLogger(__name__)
CONTENT_CHECK_SCENE = 3          # msg_sec_check scene 3: 论坛 (public posts)
NO_RECENT_LOGIN = 61010


CATEGORY_LABELS = {AnnouncementCategory.NOTICE: "通知", AnnouncementCategory.ACTIVITY: "活动",
                   AnnouncementCategory.WELFARE: "福利", AnnouncementCategory.DISCLOSURE: "公示"}
CategoryChoice = labelled(AnnouncementCategory, CATEGORY_LABELS)


def publication_notice_id(announcement: Announcement) -> int | None:
    return notifications.notice_id_of(occasion_of(announcement))


def occasion_of(announcement: Announcement) -> str:
    return f"announcement:{announcement.id}"


# --- officers: drafts, publishing, withdrawal ---------------------------------------------------------------

def create_draft(author: Staff, title: str = "", body: str = "",
                 category: AnnouncementCategory = AnnouncementCategory.NOTICE, audience: Audience | None = None,
                 pinned: bool = False, disclosure_ends_at: datetime | None = None) -> Announcement:
    policy.ensure_officer(author)
    announcement = Announcement(title=title, body=body, category=category, pinned=pinned, author_id=author.id,
                                disclosure_ends_at=disclosure_ends_at, status=AnnouncementStatus.DRAFT)
    db.session.add(announcement)
    set_audience(author, announcement, audience or Audience())
    audit.record(author, "announcement.create", "announcement", announcement.id)
    return announcement


def set_audience(officer: Staff, announcement: Announcement, audience: Audience) -> None:
    address(announcement, policy.restrict_audience(officer, audience))


def get_for_officer(officer: Staff, announcement_id: int) -> Announcement:
    """An announcement the officer manages (app.services.policy); any other is not found."""
    policy.ensure_manages(Announcement, officer, announcement_id)
    return db.session.get(Announcement, announcement_id)


def is_managed_draft(officer: Staff, announcement_id: int) -> bool:
    """Whether this is still a draft the officer manages (one they posted by chat may have been published or
    discarded through the API meanwhile)."""
    return policy.manages(Announcement, officer, announcement_id) and db.session.scalar(
        select(Announcement.status).where(Announcement.id == announcement_id)) is AnnouncementStatus.DRAFT


def edit(officer: Staff, announcement_id: int, **changes) -> Announcement:
    announcement = get_for_officer(officer, announcement_id)
    if announcement.status is AnnouncementStatus.WITHDRAWN:
        raise Conflict("announcement_withdrawn", "公告已撤回，不能再修改")
    if "audience" in changes:
        audience = changes.pop("audience")
        if announcement.status is AnnouncementStatus.PUBLISHED:
            raise Conflict("audience_fixed", "公告发布后不能更改发布范围")
        set_audience(officer, announcement, audience)
    for key, value in changes.items():
        setattr(announcement, key, value)
    if announcement.status is AnnouncementStatus.PUBLISHED and {"title", "body"} & set(changes):
        check_content(officer, announcement)     # what staff read was checked, also after an edit
    audit.record(officer, "announcement.edit", "announcement", announcement.id, fields=sorted(changes))
    return announcement


def publish(officer: Staff, announcement_id: int) -> Announcement:
    """Checks the text with WeChat, then publishes and notifies the audience through one fan-out row."""
    announcement = get_for_officer(officer, announcement_id)
    if announcement.status is not AnnouncementStatus.DRAFT:
        raise Conflict("not_a_draft", "只有草稿可以发布")
    if not announcement.title.strip() or not announcement.body.strip():
        raise Refusal("announcement_incomplete", "公告的标题和正文都不能为空")
    check_content(officer, announcement)
    announcement.status = AnnouncementStatus.PUBLISHED
    announcement.published_at = clock.now()
    notifications.notify_audience(
        "announcement", occasion_of(announcement), Audience.model_validate(announcement.audience),
        announcement.title, announcement.body[:200], data={"announcement_id": announcement.id},
        page=f"pages/announcements/detail?id={announcement.id}")
    audit.record(officer, "announcement.publish", "announcement", announcement.id)
    return announcement


def discard_draft(officer: Staff, announcement_id: int) -> None:
    """A draft the officer gave up on goes away with its files' rows; the scheduler removes the files themselves
    (app.services.attachments.remove_orphan_files)."""
    announcement = get_for_officer(officer, announcement_id)
    if announcement.status is not AnnouncementStatus.DRAFT:
        raise Conflict("not_a_draft", "只有草稿可以丢弃")
    audit.record(officer, "announcement.discard", "announcement", announcement.id, title=announcement.title)
    db.session.delete(announcement)


def withdraw(officer: Staff, announcement_id: int) -> Announcement:
    announcement = get_for_officer(officer, announcement_id)
    if announcement.status is not AnnouncementStatus.PUBLISHED:
        raise Conflict("not_published", "只有已发布的公告可以撤回")
    announcement.status = AnnouncementStatus.WITHDRAWN
    notifications.cancel_notice(occasion_of(announcement))
    audit.record(officer, "announcement.withdraw", "announcement", announcement.id)
    return announcement


# --- the content check (msg_sec_check, version 2) --------------------------------------------------------

def check_content(officer: Staff, announcement: Announcement) -> None:
    openid = db.session.scalar(select(WeChatIdentity.openid).where(
        WeChatIdentity.app == WeChatApp.MINI_PROGRAM, WeChatIdentity.staff_id == officer.id))
    if openid is None:
        _hold(announcement, "need_mini_program", "请先在小程序中登录一次，再发布公告（微信内容安全检查需要）")
    try:
        result = mini_client().msg_sec_check(openid, f"{announcement.title}\n{announcement.body}",
                                             CONTENT_CHECK_SCENE)
    except WeChatClientException as exc:
        if exc.errcode == NO_RECENT_LOGIN:
            _hold(announcement, "need_mini_program", "请先打开一次小程序（两小时内），再确认发布，草稿已保存")
        log.warning("msg_sec_check failed: %s", exc.errcode)
        _hold(announcement, "content_check_unavailable", "微信内容安全检查暂时不可用，草稿已保存，请稍后再发布")
    verdict = result.get("result", {})
    if verdict.get("suggest", "pass") != "pass":
        _hold(announcement, "content_risky",
              f"公告内容未通过微信内容安全检查（标签 {verdict.get('label')}），请修改后再发布，草稿已保存")


def _hold(announcement: Announcement, code: str, message: str) -> None:
    """Not published: the draft stays as it was, and the officer is told why."""
    raise Invalid(code, message)


# --- staff: reading ------------------------------------------------------------------------------------------

COUNTED_UP_TO = 1000     # the list's total counts this far and no further: its cost stays bounded at 100,000 staff


LISTED = (Announcement.id, Announcement.title, Announcement.category, Announcement.pinned, Announcement.published_at)


class Listed(NamedTuple):
    id: int
    title: str
    category: AnnouncementCategory
    pinned: bool
    published_at: datetime | None
    read: bool = False


def list_for_staff(staff: Staff, page: int, page_size: int) -> tuple[list[Listed], int, bool]:
    """Published announcements whose audience includes me: pinned first, newest first, with my `read` flag; and how
    many there are, counted up to COUNTED_UP_TO (the flag says whether the count is exact). The page and the
    count are the same for every member of my kind and kept per kind, my read flags per member
    (app.services.announcement_pages)."""
    (rows, total, exact), read = announcement_pages.page_for(
        member_kind(staff), staff.id, page, page_size, lambda: _page_for_kind(staff, page, page_size),
        lambda ids: _read_among(staff, ids))
    return [Listed(*row, read=row[0] in read) for row in rows], total, exact


def page_lookup(staff_id: int, page: int, page_size: int) -> ScriptCall | None:
    """What `list_for_staff` will ask Redis, for the request to ask ahead, with the caller's card."""
    return announcement_pages.lookup_call(staff_id, page, page_size)


def _page_for_kind(staff: Staff, page: int, page_size: int) -> tuple[list[tuple], int, bool]:
    """Two Core queries whatever the page size, neither of which reads more than the page or the capped count."""
    where = policy.announcement_visible_condition(staff)
    stmt = (select(*LISTED).where(where)
            .order_by(Announcement.pinned.desc(), Announcement.published_at.desc(), Announcement.id.desc())
            .limit(page_size).offset((page - 1) * page_size))
    counted = db.session.scalar(select(func.count()).select_from(
        select(Announcement.id).where(where).limit(COUNTED_UP_TO + 1).subquery()))
    rows = [tuple(row) for row in db.session.execute(stmt)]
    return rows, min(counted, COUNTED_UP_TO), counted <= COUNTED_UP_TO


def _read_among(staff: Staff, announcement_ids: list[int]) -> frozenset[int]:
    if not announcement_ids:
        return frozenset()
    return frozenset(db.session.scalars(select(AnnouncementRead.announcement_id).where(
        AnnouncementRead.staff_id == staff.id, AnnouncementRead.announcement_id.in_(announcement_ids))))


def get_for_staff(staff: Staff, announcement_id: int) -> Announcement:
    announcement = db.session.scalar(select(Announcement).where(
        Announcement.id == announcement_id, policy.announcement_visible_condition(staff)))
    if announcement is None:
        raise NotFound(*policy.NOT_FOUND[Announcement])
    return announcement


def record_read(staff: Staff, announcement: Announcement) -> None:
    """Reads are rows (once per person); opening an announcement also marks its inbox entry read."""
    already = db.session.scalar(select(AnnouncementRead.id).where(
        AnnouncementRead.announcement_id == announcement.id, AnnouncementRead.staff_id == staff.id))
    if already is None:
        try:
            with db.session.begin_nested():
                db.session.add(AnnouncementRead(announcement_id=announcement.id, staff_id=staff.id))
        except IntegrityError:   # the same person opened it twice at once
            pass
    notifications.mark_read_by_occasion(staff, occasion_of(announcement))


def latest_for_staff(staff: Staff, limit: int = 5) -> list[Listed]:
    return list_for_staff(staff, 1, limit)[0]


# --- officers: statistics ------------------------------------------------------------------------------------

def read_statistics(officer: Staff, announcement_id: int, page: int = 1, page_size: int = 50) -> dict:
    """How many of the audience read it, and a page of who has not (unread = audience minus readers)."""
    announcement = get_for_officer(officer, announcement_id)
    condition = audience_condition(Audience.model_validate(announcement.audience))
    read_by = exists().where(AnnouncementRead.announcement_id == announcement.id,
                             AnnouncementRead.staff_id == Staff.id)
    audience_size = count_audience(Audience.model_validate(announcement.audience))
    readers = db.session.scalar(select(func.count()).select_from(Staff).where(condition, read_by))
    unread = db.session.scalars(select(Staff).where(condition, ~read_by).order_by(Staff.employee_no)
                                .limit(page_size).offset((page - 1) * page_size)).unique().all()
    return {"audience": audience_size, "read": readers, "unread": audience_size - readers, "unread_staff": unread}


def list_for_officer(officer: Staff, status: AnnouncementStatus | None, page: int,
                     page_size: int) -> tuple[list[Announcement], int]:
    policy.ensure_officer(officer)
    stmt = select(Announcement).where(policy.managed_condition(Announcement, officer))
    if status is not None:
        stmt = stmt.where(Announcement.status == status)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(stmt.options(selectinload(Announcement.attachments))     # one query for all of them
                              .order_by(Announcement.id.desc()).limit(page_size).offset((page - 1) * page_size))
    return list(rows), total
