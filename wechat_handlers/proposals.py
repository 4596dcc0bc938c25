"""Proposals on the official account: "提案" tells a linked member the status of the proposals they wrote,
seconded or co-propose."""

from __future__ import annotations

from app.services.proposals import records
from wechat_handlers.context import Context


def status(ctx: Context) -> str:
    return records.status_text(ctx.staff)
