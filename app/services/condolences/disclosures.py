"""The quarter's 公示 of condolences paid: drafted by the system as an announcement to all members, reviewed and
published by a union officer through the announcements' own steps. It names the person, their sub-union, the type's
disclosure label and the amount: never the type, a description, a relative, a place or a diagnosis; types marked
never disclosed are left out."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from app.extensions import db
from app.money import yuan
from app.services import announcements, audit
from app.services.audiences import Audience
from app.services.condolences.payments import by_sub_union, ensure_handles_payments
from app.validation import whole
from models import Announcement, AnnouncementCategory, CondolenceRequest, CondolenceStatus, CondolenceType, Staff


class QuarterFields(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"year": 2027, "quarter": 1}]})
    year: whole(ge=2000, le=2099) = Field(description="年度")
    quarter: whole(ge=1, le=4) = Field(description="季度（1–4）")


def quarter_bounds(year: int, quarter: int) -> tuple[date, date]:
    first = date(year, 3 * quarter - 2, 1)
    last = date(year + (quarter == 4), (3 * quarter) % 12 + 1, 1)
    return first, date.fromordinal(last.toordinal() - 1)


def draft(officer: Staff, fields: QuarterFields) -> Announcement:
    """A draft announcement listing what was paid or delivered in the quarter (by that day)."""
    ensure_handles_payments(officer)
    start, end = quarter_bounds(fields.year, fields.quarter)
    paid = list(db.session.scalars(select(CondolenceRequest).join(CondolenceType).where(
        CondolenceRequest.status == CondolenceStatus.CLOSED, CondolenceRequest.paid_on >= start,
        CondolenceRequest.paid_on <= end, CondolenceType.never_disclosed.is_(False))
        .order_by(CondolenceRequest.paid_on, CondolenceRequest.id)).unique())
    lines = [f"{n}. {r.member.name}｜{by_sub_union(r)}｜{r.type.label}｜{yuan(r.amount_fen or 0)} 元"
             for n, r in enumerate(paid, start=1)]
    total = sum(r.amount_fen or 0 for r in paid)
    body = (f"根据工会经费管理规定，现将 {fields.year} 年第 {fields.quarter} 季度（{start:%m 月 %d 日}至{end:%m 月 %d 日}）"
            f"发放的慰问公示如下（姓名｜分工会｜慰问项目｜金额）：\n\n" + ("\n".join(lines) or "本季度没有发放慰问。")
            + f"\n\n合计 {len(paid)} 人次，{yuan(total)} 元。如有疑问，请与校工会联系。")
    announcement = announcements.create_draft(
        officer, title=f"{fields.year} 年第 {fields.quarter} 季度慰问公示", body=body,
        category=AnnouncementCategory.DISCLOSURE, audience=Audience())
    audit.record(officer, "condolence.disclosure_draft", "announcement", announcement.id, year=fields.year,
                 quarter=fields.quarter, rows=len(paid))
    return announcement
