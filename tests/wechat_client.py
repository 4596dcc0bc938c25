"""A test client that pushes to /wechat/mp exactly as WeChat's servers do.

It builds the XML of every message and event, signs the query (`signature` over token, timestamp and nonce),
and in compatible / safe mode encrypts the body (<Encrypt> + `msg_signature`, `encrypt_type=aes`) and checks
and decrypts the reply. It talks to a Flask test client or, given a base URL, over real HTTP.

    wechat = WeChatPusher(client)                      # plaintext, the default token
    reply = wechat.push(wechat.text("o-wang", "帮助"))
    assert "帮助" in reply.content
"""

from __future__ import annotations

import base64
import itertools
import time
from dataclasses import dataclass
from typing import Any

import requests
from wechatpy.events import EVENT_TYPES
from wechatpy.fields import Base64DecodeField, DateTimeField, FloatField, IntegerField, StringField
from wechatpy.messages import MESSAGE_TYPES

from app.wechat.simulated_push import ACCOUNT, Account, opened_reply, sign, signed, to_xml

PATH = "/wechat/mp"
_sequence = itertools.count(int(time.time()) * 1000)


@dataclass
class PushReply:
    status: int
    body: str                          # as received
    xml: str                           # the reply in plaintext (decrypted in AES mode), or "success" / ""
    data: dict[str, Any] | None        # the reply XML as a dict, when it is XML

    @property
    def content(self) -> str | None:
        return (self.data or {}).get("Content")


class WeChatPusher:
    def __init__(self, target, token: str = "smartunion", appid: str = "wxmpdemo000000001",
                 encoding_aes_key: str = "", encrypt: bool = False, compatible: bool = False):
        self.target = target                 # a Flask test client, or a base URL like "http://127.0.0.1:5001"
        self.token = token
        self.appid = appid
        self.encoding_aes_key = encoding_aes_key
        self.encrypt = encrypt
        self.compatible = compatible         # compatible mode: plaintext fields and <Encrypt> in one body

    # ---- messages --------------------------------------------------------------------------------------------

    def message(self, msg_type: str, openid: str, fields: dict[str, Any] | None = None,
                create_time: int | None = None, msg_id: int | None = None, event: bool = False) -> bytes:
        head = {"ToUserName": ACCOUNT, "FromUserName": openid,
                "CreateTime": create_time or int(time.time()), "MsgType": msg_type}
        tail = {} if event else {"MsgId": msg_id or next(_sequence)}
        return f"<xml>{to_xml({**head, **(fields or {}), **tail})}</xml>".encode("utf-8")

    def text(self, openid: str, content: str, **kw) -> bytes:
        return self.message("text", openid, {"Content": content}, **kw)

    def image(self, openid: str, **kw) -> bytes:
        return self.message("image", openid, {"PicUrl": "http://mmbiz.qpic.cn/demo.jpg", "MediaId": "media-img"}, **kw)

    def voice(self, openid: str, **kw) -> bytes:
        return self.message("voice", openid, {"MediaId": "media-voice", "Format": "amr", "Recognition": "帮助"}, **kw)

    def video(self, openid: str, **kw) -> bytes:
        return self.message("video", openid, {"MediaId": "media-video", "ThumbMediaId": "media-thumb"}, **kw)

    def shortvideo(self, openid: str, **kw) -> bytes:
        return self.message("shortvideo", openid, {"MediaId": "media-sv", "ThumbMediaId": "media-thumb"}, **kw)

    def location(self, openid: str, **kw) -> bytes:
        fields = {"Location_X": "23.134521", "Location_Y": "113.358803", "Scale": 20, "Label": "广州市天河区"}
        return self.message("location", openid, fields, **kw)

    def link(self, openid: str, **kw) -> bytes:
        fields = {"Title": "工会活动", "Description": "一篇文章", "Url": "https://example.org/a"}
        return self.message("link", openid, fields, **kw)

    # ---- events ----------------------------------------------------------------------------------------------

    def event(self, openid: str, event: str, fields: dict[str, Any] | None = None,
              create_time: int | None = None) -> bytes:
        return self.message("event", openid, {"Event": event, **(fields or {})}, create_time=create_time, event=True)

    def subscribe(self, openid: str, scene: str | None = None, **kw) -> bytes:
        fields = {"EventKey": f"qrscene_{scene}", "Ticket": "ticket-1"} if scene else {"EventKey": ""}
        return self.event(openid, "subscribe", fields, **kw)

    def unsubscribe(self, openid: str, **kw) -> bytes:
        return self.event(openid, "unsubscribe", {"EventKey": ""}, **kw)

    def scan(self, openid: str, scene: str = "123", **kw) -> bytes:
        return self.event(openid, "SCAN", {"EventKey": scene, "Ticket": "ticket-1"}, **kw)

    def location_event(self, openid: str, **kw) -> bytes:
        fields = {"Latitude": "23.137466", "Longitude": "113.352425", "Precision": "119.385040"}
        return self.event(openid, "LOCATION", fields, **kw)

    def click(self, openid: str, key: str, **kw) -> bytes:
        return self.event(openid, "CLICK", {"EventKey": key}, **kw)

    def view(self, openid: str, url: str = "https://example.org/", **kw) -> bytes:
        return self.event(openid, "VIEW", {"EventKey": url, "MenuId": "1"}, **kw)

    # ---- sending ---------------------------------------------------------------------------------------------

    @property
    def account(self) -> Account:
        return Account(self.token, self.appid, self.encoding_aes_key, self.encrypt, self.compatible)

    def query(self, body: bytes, timestamp: str | None = None, nonce: str | None = None) -> tuple[dict[str, str], bytes]:
        """The signed query WeChat puts on the URL, and the body it posts (encrypted in AES mode). WeChat stamps
        each push with the time and a fresh nonce; a test may give its own (an old capture, a reused nonce)."""
        return signed(self.account, body, timestamp, nonce)

    def push(self, body: bytes, params: dict[str, str] | None = None, raw: bool = False,
             headers: dict[str, str] | None = None, timestamp: str | None = None,
             nonce: str | None = None) -> PushReply:
        """Signs (and encrypts) `body` unless `raw`; `params` then overrides the query (e.g. a bad signature)."""
        signed, payload = (self.query(body, timestamp, nonce) if not raw else ({}, body))
        status, text = self.post({**signed, **(params or {})}, payload, headers)
        return self._reply(status, text)

    def post(self, params: dict[str, str], payload, headers: dict[str, str] | None = None) -> tuple[int, str]:
        headers = {"Content-Type": "text/xml", **(headers or {})}
        if isinstance(self.target, str):
            response = requests.post(self.target + PATH, params=params, data=payload, headers=headers, timeout=15)
            return response.status_code, response.text
        response = self.target.post(PATH, query_string=params, data=payload, headers=headers)
        return response.status_code, response.get_data(as_text=True)

    def verify(self, echostr: str, signature: str | None = None) -> tuple[int, str]:
        timestamp, nonce = str(int(time.time())), "12345"
        params = {"signature": signature or sign(self.token, timestamp, nonce), "timestamp": timestamp,
                  "nonce": nonce, "echostr": echostr}
        if isinstance(self.target, str):
            response = requests.get(self.target + PATH, params=params, timeout=15)
            return response.status_code, response.text
        response = self.target.get(PATH, query_string=params)
        return response.status_code, response.get_data(as_text=True)

    def _reply(self, status: int, body: str) -> PushReply:
        if status != 200:
            return PushReply(status, body, body, None)
        xml, data = opened_reply(self.account, body)
        return PushReply(status, body, xml, data)


# ---- one push of every type wechatpy parses ------------------------------------------------------------------

NESTED_SAMPLES: dict[str, Any] = {
    "ScanCodeInfo": {"ScanType": "qrcode", "ScanResult": "https://example.org/qr"},
    "SendPicsInfo": {"Count": 1, "PicList": {"item": {"PicMd5Sum": "1b5f7c23b5bf75682a53e7b6d163e185"}}},
    "SendLocationInfo": {"Location_X": "23", "Location_Y": "113", "Scale": "15", "Label": "广州市海珠区",
                         "Poiname": "工会活动中心"},
    "SubscribeMsgPopupEvent": {"List": {"TemplateId": "tpl-1", "SubscribeStatusString": "accept",
                                        "PopupScene": "2"}},
    "SubscribeMsgChangeEvent": {"List": {"TemplateId": "tpl-1", "SubscribeStatusString": "reject"}},
    "SubscribeMsgSentEvent": {"List": {"TemplateId": "tpl-1", "MsgID": "1700827132819554304",
                                       "ErrorCode": "0", "ErrorStatus": "success"}},
    "ChosenBeacon": {"Uuid": "uuid-1", "Major": "1", "Minor": "2", "Distance": "0.5"},
    "AroundBeacons": {"AroundBeacon": [{"Uuid": "uuid-2", "Major": "1", "Minor": "3", "Distance": "1.5"}]},
}
HEADER_TAGS = {"MsgId", "MsgID", "FromUserName", "ToUserName", "CreateTime"}
EVENT_KEYS = {"subscribe_scan": "qrscene_123", "subscribe_scan_product": "scanbarcode|EAN13|6901234567892",
              "view": "https://example.org/", "click": "HELP"}
UPPER_CASE_EVENTS = {"click", "view", "scan", "location"}


def sample_fields(cls) -> dict[str, Any]:
    """Plausible values for every field a wechatpy message or event class reads."""
    fields: dict[str, Any] = {}
    for field in cls._fields.values():
        tag = field.name
        if tag in HEADER_TAGS:
            continue
        if isinstance(field, Base64DecodeField):
            fields[tag] = base64.b64encode("设备数据".encode()).decode()
        elif isinstance(field, (IntegerField, DateTimeField)):
            fields[tag] = int(time.time()) if isinstance(field, DateTimeField) else 1
        elif isinstance(field, FloatField):
            fields[tag] = 23.137466
        elif isinstance(field, StringField):
            fields[tag] = f"示例{tag}"
        else:
            fields[tag] = NESTED_SAMPLES[tag]
    return fields


def sample_push(pusher: WeChatPusher, kind: str, name: str, openid: str) -> bytes:
    """A push of the registered message type or event `name` (kind "message" or "event")."""
    if kind == "message":
        return pusher.message(name, openid, sample_fields(MESSAGE_TYPES[name]))
    fields = sample_fields(EVENT_TYPES[name])
    if name in EVENT_KEYS:
        fields["EventKey"] = EVENT_KEYS[name]
    if name.startswith("device_"):   # device pushes name themselves in MsgType
        return pusher.message(name, openid, fields, event=True)
    wire_name = {"subscribe_scan": "subscribe", "subscribe_scan_product": "subscribe"}.get(name, name)
    wire_name = wire_name.upper() if wire_name in UPPER_CASE_EVENTS else wire_name
    return pusher.message("event", openid, {"Event": wire_name, **fields}, event=True)
