"""Our two WeChat clients (mini-program and official account), built once per Flask app from the config.

Every URL comes from `wechat.api_base_url`: the client's own API_BASE_URL is base + "cgi-bin/", and the wechatpy
APIs that carry their own base (wxa, template) or hard-code a URL (media.get_url) are replaced by subclasses that
read the client's base. wechatpy's `__new__` instantiates each class-level API attribute with the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis as redis_lib
from wechatpy.client.api import WeChatMedia, WeChatTemplate, WeChatWxa

from app.config import Config
from app.wechat.tokens import SharedTokenClient


class _BaseFromClient:
    """For wechatpy APIs whose API_BASE_URL is a class attribute holding the official host."""

    @property
    def API_BASE_URL(self) -> str:  # noqa: N802 - the name wechatpy reads
        return self._client.api_base_url


class ConfiguredWxa(_BaseFromClient, WeChatWxa):
    pass


class ConfiguredTemplate(_BaseFromClient, WeChatTemplate):
    pass


class ConfiguredMedia(WeChatMedia):
    def get_url(self, media_id: str) -> str:
        return f"{self._client.API_BASE_URL}media/get?access_token={self.access_token}&media_id={media_id}"


class ConfiguredClient(SharedTokenClient):
    wxa = ConfiguredWxa()
    template = ConfiguredTemplate()
    media = ConfiguredMedia()

    @classmethod
    def from_config(cls, cfg: Config, redis: redis_lib.Redis, appid: str, secret: str) -> "ConfiguredClient":
        w = cfg.wechat
        return cls(appid, secret, api_base_url=w.api_base_url, redis=redis, key_prefix=cfg.redis.key_prefix,
                   timeout=w.timeout_seconds, lock_seconds=w.token_lock_seconds,
                   force_refresh_interval=w.force_refresh_min_interval_seconds)


class MiniProgramClient(ConfiguredClient):
    """The mini-program (小程序): login, phone number, subscribe messages, content security."""

    def send_subscribe_message(self, openid: str, template_id: str, data: dict[str, Any], page: str | None = None,
                               miniprogram_state: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
        if page:
            body["page"] = page
        if miniprogram_state:
            body["miniprogram_state"] = miniprogram_state
        return self.post("message/subscribe/send", data=body)

    def msg_sec_check(self, openid: str, content: str, scene: int) -> dict[str, Any]:
        """Content security v2; read `result["suggest"]` ("pass", "review" or "risky")."""
        body = {"openid": openid, "content": content, "scene": scene, "version": 2}
        return self.post("wxa/msg_sec_check", data=body, api_base_url=self.api_base_url)


class OfficialAccountClient(ConfiguredClient):
    """The official account (公众号): template and customer-service messages, users, media, menu."""

    def send_template_message(self, openid: str, template_id: str, data: dict[str, Any], url: str | None = None,
                              mini_program: dict[str, Any] | None = None,
                              client_msg_id: str | None = None) -> dict[str, Any]:
        """A template message; WeChat drops a repeat of the same client_msg_id within 10 minutes."""
        body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
        if url:
            body["url"] = url
        if mini_program:
            body["miniprogram"] = mini_program
        if client_msg_id:
            body["client_msg_id"] = client_msg_id
        return self.post("message/template/send", data=body)


@dataclass(frozen=True)
class WeChatClients:
    mini: MiniProgramClient
    mp: OfficialAccountClient


def build_wechat_clients(cfg: Config, redis: redis_lib.Redis) -> WeChatClients:
    mini, mp = cfg.wechat.miniprogram, cfg.wechat.official_account
    return WeChatClients(
        mini=MiniProgramClient.from_config(cfg, redis, mini.appid, mini.secret),
        mp=OfficialAccountClient.from_config(cfg, redis, mp.appid, mp.secret),
    )
