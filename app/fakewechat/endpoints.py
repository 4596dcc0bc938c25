"""The fake WeChat API endpoints: each takes the state and the call, returns the JSON body (or a Response).

ENDPOINTS maps a path (as WeChat names it, e.g. "cgi-bin/stable_token") to its HTTP method, the kind of app
whose access token it needs ("mini", "mp", or None when it checks appid/secret itself) and its handler.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable

from werkzeug.wrappers import Request, Response

from app.fakewechat.state import FakeApp, FakeState, FakeWeChatError

THING_MAX_CHARS = 20
USER_PAGE_SIZE = 10000
RISKY_MARKER = "违规"
FAKE_JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"


@dataclass
class Call:
    request: Request
    app: FakeApp | None = None  # the app whose access token authorized the call

    @property
    def args(self) -> dict[str, str]:
        return self.request.args

    def body(self) -> dict[str, Any]:
        raw = self.request.get_data()
        if not raw:
            raise FakeWeChatError(44002, "empty post data")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise FakeWeChatError(47001, "data format error") from None
        if not isinstance(data, dict):
            raise FakeWeChatError(47001, "data format error")
        return data


def ok(**fields: Any) -> dict[str, Any]:
    return {"errcode": 0, "errmsg": "ok", **fields}


def _token_answer(token) -> dict[str, Any]:
    return {"access_token": token.value, "expires_in": max(int(token.expires_at - time.time()), 0)}


# ---- access tokens --------------------------------------------------------------------------------------------

def stable_token(state: FakeState, call: Call) -> dict[str, Any]:
    body = call.body()
    if body.get("grant_type") != "client_credential":
        raise FakeWeChatError(40002, "invalid grant_type")
    app = state.check_app(body.get("appid"), body.get("secret"))
    return _token_answer(state.stable_token(app.appid, bool(body.get("force_refresh"))))


def classic_token(state: FakeState, call: Call) -> dict[str, Any]:
    if call.args.get("grant_type") != "client_credential":
        raise FakeWeChatError(40002, "invalid grant_type")
    app = state.check_app(call.args.get("appid"), call.args.get("secret"))
    return _token_answer(state.new_token(app.appid))


# ---- mini-program ---------------------------------------------------------------------------------------------

def code_to_session(state: FakeState, call: Call) -> dict[str, Any]:
    """js_code "code:<openid>" or "code:<openid>:<unionid>"; an access_token parameter is ignored."""
    state.check_app(call.args.get("appid"), call.args.get("secret"), kind="mini")
    parts = (call.args.get("js_code") or "").split(":")
    if parts[0] != "code" or len(parts) not in (2, 3) or not all(parts[1:]):
        raise FakeWeChatError(40029, "invalid code")
    answer = {"openid": parts[1], "session_key": f"fake-session-{parts[1]}"}
    if len(parts) == 3:
        answer["unionid"] = parts[2]
    return answer


def phone_number(state: FakeState, call: Call) -> dict[str, Any]:
    code = str(call.body().get("code") or "")
    number = code.removeprefix("phone:")
    if not code.startswith("phone:") or not number:
        raise FakeWeChatError(40029, "invalid code")
    watermark = {"timestamp": int(time.time()), "appid": call.app.appid}
    info = {"phoneNumber": number, "purePhoneNumber": number, "countryCode": "86", "watermark": watermark}
    return ok(phone_info=info)


def subscribe_send(state: FakeState, call: Call) -> dict[str, Any]:
    body = call.body()
    _require_message_fields(body)
    data = body["data"]
    for key, item in data.items():
        if not isinstance(item, dict) or not isinstance(item.get("value"), str):
            raise FakeWeChatError(47003, f"argument invalid! data.{key}.value invalid")
        if key.startswith("thing") and len(item["value"]) > THING_MAX_CHARS:
            raise FakeWeChatError(47003, f"argument invalid! data.{key}.value exceeds {THING_MAX_CHARS}")
    msgid = state.deliver(_record("cgi-bin/message/subscribe/send", call.app, body))
    return ok(msgid=msgid)


def msg_sec_check(state: FakeState, call: Call) -> dict[str, Any]:
    body = call.body()
    if body.get("version") != 2:
        raise FakeWeChatError(40097, "invalid args: version must be 2")
    if not body.get("openid"):
        raise FakeWeChatError(40003, "invalid openid")
    if body.get("scene") not in (1, 2, 3, 4):
        raise FakeWeChatError(40097, "invalid args: scene must be 1-4")
    content = body.get("content")
    if not isinstance(content, str) or not content:
        raise FakeWeChatError(47001, "data format error: content")
    suggest, label = ("risky", 20001) if RISKY_MARKER in content else ("pass", 100)
    return ok(result={"suggest": suggest, "label": label},
              detail=[{"strategy": "content_model", "errcode": 0, "suggest": suggest, "label": label}],
              trace_id=f"fake-trace-{int(time.time() * 1000)}")


# ---- official account -----------------------------------------------------------------------------------------

def template_send(state: FakeState, call: Call) -> dict[str, Any]:
    body = call.body()
    _require_message_fields(body)
    msgid = state.deliver_once(_record("cgi-bin/message/template/send", call.app, body))
    return ok(msgid=msgid)


def custom_send(state: FakeState, call: Call) -> dict[str, Any]:
    body = call.body()
    if not body.get("touser"):
        raise FakeWeChatError(40003, "invalid openid")
    msgtype = body.get("msgtype")
    if not msgtype or not isinstance(body.get(msgtype), dict):
        raise FakeWeChatError(40008, "invalid message type")
    record = _record("cgi-bin/message/custom/send", call.app, body)
    record["content"] = body[msgtype].get("content") if msgtype == "text" else json.dumps(body[msgtype])
    state.deliver(record)
    return ok()


def user_info(state: FakeState, call: Call) -> dict[str, Any]:
    openid = call.args.get("openid")
    if not openid:
        raise FakeWeChatError(40003, "invalid openid")
    return _user_answer(state, openid)


USER_BATCH_MAX = 100


def user_info_batch(state: FakeState, call: Call) -> dict[str, Any]:
    """`cgi-bin/user/info/batchget`: up to 100 openids in one call."""
    wanted = call.body().get("user_list")
    if not isinstance(wanted, list) or not 1 <= len(wanted) <= USER_BATCH_MAX:
        raise FakeWeChatError(40032, "invalid openid list size")
    openids = [item.get("openid") if isinstance(item, dict) else None for item in wanted]
    if not all(isinstance(o, str) and o for o in openids):
        raise FakeWeChatError(40003, "invalid openid")
    return {"user_info_list": [_user_answer(state, openid) for openid in openids]}


def _user_answer(state: FakeState, openid: str) -> dict[str, Any]:
    user = state.get_user(openid)
    answer: dict[str, Any] = {"subscribe": user.subscribe, "openid": user.openid}
    if user.subscribe:
        answer.update(language="zh_CN", subscribe_time=int(time.time()), remark="", groupid=0,
                      tagid_list=[], subscribe_scene="ADD_SCENE_QR_CODE", qr_scene=0, qr_scene_str="")
    if user.unionid:
        answer["unionid"] = user.unionid
    return answer


def user_list(state: FakeState, call: Call) -> dict[str, Any]:
    total, openids = state.user_page(call.args.get("next_openid"), USER_PAGE_SIZE)
    answer: dict[str, Any] = {"total": total, "count": len(openids), "next_openid": openids[-1] if openids else ""}
    if openids:
        answer["data"] = {"openid": openids}
    return answer


def media_get(state: FakeState, call: Call) -> Response:
    media_id = call.args.get("media_id") or ""
    if not media_id or media_id.startswith("bad"):
        raise FakeWeChatError(40007, "invalid media_id")
    return Response(FAKE_JPEG, mimetype="image/jpeg",
                    headers={"Content-Disposition": f'attachment; filename="{media_id}.jpg"'})


def menu_create(state: FakeState, call: Call) -> dict[str, Any]:
    body = call.body()
    buttons = body.get("button")
    if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
        raise FakeWeChatError(40016, "invalid button size")
    state.set_menu(body)
    return ok()


# ---- helpers --------------------------------------------------------------------------------------------------

def _require_message_fields(body: dict[str, Any]) -> None:
    if not body.get("touser"):
        raise FakeWeChatError(40003, "invalid openid")
    if not body.get("template_id"):
        raise FakeWeChatError(40037, "invalid template_id")
    if not isinstance(body.get("data"), dict) or not body["data"]:
        raise FakeWeChatError(47003, "argument invalid! data is empty")


def _record(endpoint: str, app: FakeApp, body: dict[str, Any]) -> dict[str, Any]:
    return {"endpoint": endpoint, "appid": app.appid, "touser": body.get("touser"),
            "template_id": body.get("template_id"), "data": body.get("data"),
            "client_msg_id": body.get("client_msg_id"), "content": None,
            "page": body.get("page"), "url": body.get("url")}


Handler = Callable[[FakeState, Call], Any]

ENDPOINTS: dict[str, tuple[str, str | None, Handler]] = {
    "cgi-bin/stable_token": ("POST", None, stable_token),
    "cgi-bin/token": ("GET", None, classic_token),
    "sns/jscode2session": ("GET", None, code_to_session),
    "wxa/business/getuserphonenumber": ("POST", "mini", phone_number),
    "cgi-bin/message/subscribe/send": ("POST", "mini", subscribe_send),
    "wxa/msg_sec_check": ("POST", "mini", msg_sec_check),
    "cgi-bin/message/template/send": ("POST", "mp", template_send),
    "cgi-bin/message/custom/send": ("POST", "mp", custom_send),
    "cgi-bin/user/info": ("GET", "mp", user_info),
    "cgi-bin/user/info/batchget": ("POST", "mp", user_info_batch),
    "cgi-bin/user/get": ("GET", "mp", user_list),
    "cgi-bin/media/get": ("GET", "mp", media_get),
    "cgi-bin/menu/create": ("POST", "mp", menu_create),
}
