"""Holiday notices and gift campaigns.

Each occasion of the built-in calendar (app.services.calendar) is announced `lead_days` before its first day off
(or before the day itself), at its configured time, to its configured audience; occasions that overlap (中秋
inside the 国庆 days off) share one notice. When a gift campaign for the occasion exists by send time, the notice
carries its pickup details and becomes a service notice; a campaign created after the notice sends its own.
"""

from __future__ import annotations

from datetime import date, datetime, time

from flask import current_app
from sqlalchemy import select

from app import clock
from app.errors import Refusal, Conflict
from app.extensions import db
from app.services import audit, notifications, policy
from app.services.audiences import Audience
from app.services.calendar import PlannedNotice, plan_notices
from models import GiftCampaign, Notice, Staff


def _settings():
    return current_app.config["SU"].holidays


def holiday_occasion(plan: PlannedNotice) -> str:
    return f"holiday:{plan.occasions[0].day.year}:{'+'.join(plan.keys)}"


def _published_days_off(year: int) -> dict[str, tuple[date, date]]:
    return dict(_settings().days_off.get(str(year), {}))


def planned_notices(year: int) -> list[PlannedNotice]:
    """This year's notices for the enabled occasions."""
    enabled = {key: o.lead_days for key, o in _settings().occasions.items() if o.enabled}
    return plan_notices(year, enabled, _published_days_off(year))


def send_due_holiday_notices(now: datetime) -> int:
    """Writes every holiday notice that is due and not yet written. A notice missed while the scheduler was down
    still goes out late, up to the occasion itself; after it, it is dropped."""
    local = now.astimezone(clock.zone())
    written = 0
    for year in (local.year, local.year + 1):      # 元旦's notice goes out in December
        for plan in planned_notices(year):
            if _is_due(plan, local) and not _already_written(plan):
                _write_holiday_notice(plan)
                written += 1
    return written


def _send_time(plan: PlannedNotice) -> time:
    return min(_settings().occasions[key].send_time for key in plan.keys)


def _is_due(plan: PlannedNotice, local: datetime) -> bool:
    last_day = min(o.day for o in plan.occasions)
    due_at = datetime.combine(plan.send_date, _send_time(plan), local.tzinfo)
    return due_at <= local and local.date() <= last_day


def _already_written(plan: PlannedNotice) -> bool:
    return db.session.scalar(select(Notice.id).where(Notice.occasion == holiday_occasion(plan))) is not None


def _write_holiday_notice(plan: PlannedNotice) -> Notice:
    occasions = [_settings().occasions[key] for key in plan.keys]
    title = occasions[0].title if len(occasions) == 1 else f"{plan.name}问候"
    body = "\n".join(o.body for o in occasions)
    campaign = _campaign_for(plan)
    if campaign is not None:
        body = f"{body}\n{pickup_details(campaign)}"
        return notifications.notify_audience("service", holiday_occasion(plan), _audience_of(campaign.audience),
                                             title, body, data={"summary": f"请领取{campaign.gift}"})
    audience = _combined_audience([o.audience for o in occasions])
    return notifications.notify_audience("greeting", holiday_occasion(plan), audience, title, body)


def _combined_audience(criteria: list[dict]) -> Audience:
    """Occasions sharing a notice share its audience: the broadest of theirs (everyone, if any is everyone)."""
    audiences = [_audience_of(c) for c in criteria]
    return Audience() if any(a == Audience() for a in audiences) else audiences[0]


def _audience_of(criteria: dict) -> Audience:
    return Audience.model_validate(criteria or {})


def _campaign_for(plan: PlannedNotice) -> GiftCampaign | None:
    year = plan.occasions[0].day.year
    return db.session.scalar(select(GiftCampaign).where(GiftCampaign.occasion.in_(plan.keys),
                                                        GiftCampaign.year == year).order_by(GiftCampaign.id))


def pickup_details(campaign: GiftCampaign) -> str:
    start, end = (t.astimezone(clock.zone()) for t in (campaign.pickup_start, campaign.pickup_end))
    return (f"慰问品：{campaign.gift}。领取地点：{campaign.pickup_place}。"
            f"领取时间：{start:%m月%d日 %H:%M} 至 {end:%m月%d日 %H:%M}。")


# --- campaigns ---------------------------------------------------------------------------------------------

def create_campaign(officer: Staff, occasion: str, year: int, gift: str, pickup_place: str,
                    pickup_start: datetime, pickup_end: datetime, audience: Audience) -> GiftCampaign:
    policy.ensure_union_officer(officer)
    if occasion not in _settings().occasions:
        raise Refusal("unknown_occasion", "未知的节日")
    if pickup_end <= pickup_start:
        raise Refusal("invalid_pickup_window", "领取结束时间必须晚于开始时间")
    if db.session.scalar(select(GiftCampaign.id).where(GiftCampaign.occasion == occasion, GiftCampaign.year == year)):
        raise Conflict("campaign_exists", "该节日本年度的慰问品发放已经创建")
    campaign = GiftCampaign(occasion=occasion, year=year, gift=gift, pickup_place=pickup_place,
                            pickup_start=pickup_start, pickup_end=pickup_end,
                            audience=audience.model_dump(mode="json"), created_by_id=officer.id)
    db.session.add(campaign)
    db.session.flush()
    audit.record(officer, "campaign.create", "gift_campaign", campaign.id, occasion=occasion, year=year)
    _notify_if_holiday_notice_went_out(campaign)
    return campaign


def _notify_if_holiday_notice_went_out(campaign: GiftCampaign) -> None:
    """Created after the holiday notice was written: the pickup details need a notice of their own."""
    plan = next((p for p in planned_notices(campaign.year) if campaign.occasion in p.keys), None)
    if plan is None or not _already_written(plan):
        return
    name = _settings().occasions[campaign.occasion].title
    notifications.notify_audience("service", f"campaign:{campaign.id}", _audience_of(campaign.audience),
                                  f"{name}慰问品领取通知", pickup_details(campaign),
                                  data={"summary": f"请领取{campaign.gift}"})


def list_campaigns(year: int | None = None) -> list[GiftCampaign]:
    stmt = select(GiftCampaign).order_by(GiftCampaign.year.desc(), GiftCampaign.id.desc())
    if year is not None:
        stmt = stmt.where(GiftCampaign.year == year)
    return list(db.session.scalars(stmt))

