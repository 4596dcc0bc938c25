"""WeChat clients of the current Flask app: `mini_client()` (mini-program) and `mp_client()` (official account)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from app.wechat.client import MiniProgramClient, OfficialAccountClient


def mini_client() -> "MiniProgramClient":
    return current_app._get_current_object().extensions["wechat"].mini


def mp_client() -> "OfficialAccountClient":
    return current_app._get_current_object().extensions["wechat"].mp
