"""The official account's custom menu (自定义菜单), as configured in `wechat.official_account.menu`."""

from __future__ import annotations

from typing import Any

from flask import current_app

from app.config import MenuButton
from app.wechat import mp_client


def menu_payload(buttons: list[MenuButton]) -> dict[str, Any]:
    """The body of `cgi-bin/menu/create`: WeChat's field names, without the ones a button does not use."""
    return {"button": [_button(b) for b in buttons]}


def _button(button: MenuButton) -> dict[str, Any]:
    data = button.model_dump(exclude_none=True, exclude={"sub_button"})
    if button.sub_button:
        data["sub_button"] = [_button(b) for b in button.sub_button]
    return data


def push_menu() -> dict[str, Any]:
    """Sends the configured menu to WeChat (it replaces the current one); returns what was sent."""
    payload = menu_payload(current_app.config["SU"].wechat.official_account.menu)
    mp_client().menu.create(payload)
    return payload
