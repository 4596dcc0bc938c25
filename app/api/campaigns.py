"""Officer endpoints for holiday gift campaigns (节日慰问品发放)."""

from __future__ import annotations


from flask import Blueprint, g
from pydantic import BaseModel, ConfigDict, Field

from app.validation import BeijingTime, Moment, whole
from app.api.endpoint import READS_RECORDS, AuthLevel, endpoint
from app.services import holidays
from app.services.audiences import Audience

bp = Blueprint("campaigns", __name__)


class CampaignIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"occasion": "mid_autumn", "year": 2099, "gift": "月饼一盒", "pickup_place": "工会办公室（行政楼 302）",
         "pickup_start": "2099-09-20T09:00:00+08:00", "pickup_end": "2099-09-25T17:00:00+08:00"}]})
    occasion: str = Field(description="节日：new_year / spring_festival / mid_autumn / ...")
    year: whole(ge=2000, le=2099)
    gift: str = Field(min_length=1, max_length=200, description="慰问品，如“月饼一盒”")
    pickup_place: str = Field(min_length=1, max_length=200)
    pickup_start: Moment
    pickup_end: Moment
    audience: Audience = Field(default_factory=Audience)


class CampaignOut(BaseModel):
    model_config = READS_RECORDS
    id: int
    occasion: str
    year: int
    gift: str
    pickup_place: str
    pickup_start: BeijingTime
    pickup_end: BeijingTime
    audience: dict


class CampaignList(BaseModel):
    items: list[CampaignOut]


class CampaignQuery(BaseModel):
    year: int | None = None


def campaign_out(campaign) -> CampaignOut:
    return CampaignOut.model_validate(campaign)


@bp.post("/officer/campaigns")
@endpoint("创建节日慰问品发放（领取地点与时间会随节日通知发出）", auth=AuthLevel.OFFICER, body=CampaignIn,
          response=CampaignOut, status=201, tags=("officer",))
def create(body: CampaignIn):
    campaign = holidays.create_campaign(g.staff, body.occasion, body.year, body.gift, body.pickup_place,
                                        body.pickup_start, body.pickup_end, body.audience)
    return campaign_out(campaign)


@bp.get("/officer/campaigns")
@endpoint("节日慰问品发放列表", auth=AuthLevel.OFFICER, query=CampaignQuery, response=CampaignList, tags=("officer",))
def list_all(query: CampaignQuery):
    return CampaignList(items=[campaign_out(c) for c in holidays.list_campaigns(query.year)])
