"""Vouchers on the official account: "生日券" tells a linked member their vouchers' status and validity — never a
code (codes are shown only in the mini-program, renewed every minute)."""

from __future__ import annotations

from app.services import vouchers
from wechat_handlers.context import Context


def status(ctx: Context) -> str:
    return vouchers.status_text(ctx.staff)
