"""Linking the caller's official-account (公众号) follower to their roster entry: the one-time code."""

from __future__ import annotations

from flask import Blueprint, g
from pydantic import BaseModel, Field

from app.api.endpoint import endpoint
from app.services import followers

bp = Blueprint("followers", __name__)


class LinkCodeOut(BaseModel):
    code: str = Field(description="6 位绑定码，只能使用一次")
    expires_in: int = Field(description="有效期（秒）")
    instructions: str = Field(description="给教职工看的操作说明")


@bp.post("/me/mp-link-code")
@endpoint("获取公众号绑定码：在公众号发送“绑定 绑定码”即可收到工会通知", response=LinkCodeOut, limited=True, tags=("me",))
def issue_link_code():
    code, ttl = followers.issue_link_code(g.staff)
    minutes = max(1, ttl // 60)
    return LinkCodeOut(code=code, expires_in=ttl,
                       instructions=f"请关注工会公众号，并在 {minutes} 分钟内向公众号发送“绑定 {code}”。")
