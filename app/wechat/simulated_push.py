"""Pushes made the way WeChat's servers make them — the XML of a message, the signed query, the AES envelope of
compatible and safe mode — and their replies opened. For `smart-union mp say` and the tests; never for talking to
a production service (`mp say` refuses when the configured WeChat API is WeChat's own)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto

ACCOUNT = "gh_0123456789ab"          # the official account's original id (ToUserName)


@dataclass(frozen=True)
class Account:
    """What WeChat and our service share about the official account."""

    token: str
    appid: str
    encoding_aes_key: str = ""
    encrypt: bool = False            # compatible and safe mode: the body travels in <Encrypt>
    compatible: bool = False         # compatible mode: the plaintext fields beside <Encrypt>


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def cdata(value: str) -> str:
    return f"<![CDATA[{value}]]>"


def to_xml(fields: dict[str, Any]) -> str:
    """Elements in WeChat's style: text in CDATA, numbers bare, dicts nested, lists as repeated elements."""
    parts = []
    for tag, value in fields.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                inner = to_xml(item)
            elif isinstance(item, (int, float)):
                inner = str(item)
            else:
                inner = cdata(str(item))
            parts.append(f"<{tag}>{inner}</{tag}>")
    return "".join(parts)


def text_message(openid: str, content: str, msg_id: int | None = None) -> bytes:
    fields = {"ToUserName": ACCOUNT, "FromUserName": openid, "CreateTime": int(time.time()), "MsgType": "text",
              "Content": content, "MsgId": msg_id or time.time_ns() // 1000}
    return f"<xml>{to_xml(fields)}</xml>".encode("utf-8")


def signed(account: Account, body: bytes, timestamp: str | None = None,
           nonce: str | None = None) -> tuple[dict[str, str], bytes]:
    """The signed query WeChat puts on the URL, and the body it posts (encrypted in AES mode)."""
    timestamp = timestamp or str(int(time.time()))
    nonce = nonce or str(secrets.randbelow(10 ** 10))
    params = {"signature": sign(account.token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
              "openid": "o-query"}
    if not account.encrypt:
        return params, body
    key = base64.b64decode(account.encoding_aes_key + "=")
    encrypted = PrpCrypto(key).encrypt(body.decode("utf-8"), account.appid).decode("ascii")
    plain = body.decode("utf-8")[len("<xml>"):-len("</xml>")] if account.compatible else to_xml({"ToUserName": ACCOUNT})
    params.update(encrypt_type="aes", msg_signature=sign(account.token, timestamp, nonce, encrypted))
    return params, f"<xml>{plain}<Encrypt>{cdata(encrypted)}</Encrypt></xml>".encode("utf-8")


def opened_reply(account: Account, body: str) -> tuple[str, dict[str, Any] | None]:
    """A reply as WeChat reads it: (its XML, decrypted in AES mode, or "success" / ""; that XML as a dict)."""
    xml = body
    if account.encrypt and body.startswith("<xml>"):
        outer = xmltodict.parse(body)["xml"]
        crypto = WeChatCrypto(account.token, account.encoding_aes_key, account.appid)
        xml = crypto.decrypt_message(body, outer["MsgSignature"], outer["TimeStamp"], outer["Nonce"])
    return xml, (xmltodict.parse(xml)["xml"] if xml.startswith("<xml>") else None)
