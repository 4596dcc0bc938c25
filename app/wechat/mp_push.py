"""Official-account pushes on the wire: URL verification, signatures, freshness, AES in compatible and safe mode,
and refusing hostile bodies before any XML parser sees them.

WeChat signs a plaintext push with `signature` = sha1(sorted token, timestamp, nonce): it never covers the body, so a
signed query string copied from a log would let anyone post as anyone. Hence:
- a timestamp further than `timestamp_tolerance_seconds` from our clock is refused;
- a (timestamp, nonce) is bound to the first push that used it: WeChat's retry of the same push (same MsgId or event
  key) passes and gets the stored reply, any other body is refused (`bind_nonce_and_claim`);
- handled pushes and bound nonces are remembered for twice the tolerance, so a captured push never runs again;
- in compatible and safe mode only an encrypted push (`encrypt_type=aes`) with a valid `msg_signature`, which also
  covers the <Encrypt> payload, is read, and only its decrypted XML; the reply is encrypted and signed the same way.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from typing import Mapping

from xml.etree import ElementTree

from wechatpy.crypto import WeChatCrypto
from wechatpy.events import EVENT_TYPES
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.messages import MESSAGE_TYPES, BaseMessage, UnknownMessage
from wechatpy.utils import check_signature

from app import clock
from app.config import OfficialAccountSection
from app.extensions import ScriptCall, keep_prefetched, redis_key, run_scripts

log = logging.getLogger(__name__)

# A DOCTYPE is the only way to declare entities (billion laughs, XXE); WeChat never sends one.
HOSTILE_MARKUP = re.compile(rb"<!\s*(doctype|entity)", re.IGNORECASE)


class PushRefused(Exception):
    """A push we do not read: `status` is the HTTP answer, `code`/`message` the JSON error."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


BAD_SIGNATURE = (403, "invalid_signature", "签名校验失败")
HOSTILE = (400, "hostile_xml", "不接受含 DOCTYPE 或 ENTITY 的 XML")
NOT_ENCRYPTED = (400, "encryption_required", "兼容模式和安全模式下只接受加密消息")
STALE = (403, "stale_timestamp", "请求时间戳不在有效期内")
REPLAYED = (403, "replayed_nonce", "该签名已被另一条消息使用")
UNDECRYPTABLE = (400, "undecryptable", "消息无法解密")


@dataclass(frozen=True)
class OpenedPush:
    """The push's XML in plaintext, and how to answer it (encrypted when it came encrypted)."""

    xml: bytes
    encrypted: bool
    timestamp: str
    nonce: str


def verify_url(cfg: OfficialAccountSection, args: Mapping[str, str]) -> str:
    """The `echostr` to echo when WeChat's GET carries a valid, fresh signature."""
    _check_plain_signature(cfg, args)
    _check_fresh(cfg, args.get("timestamp", ""))
    return args.get("echostr", "")


def open_push(cfg: OfficialAccountSection, args: Mapping[str, str], body: bytes) -> OpenedPush:
    """Checks the signature, refuses hostile markup and decrypts; the XML itself is not parsed here."""
    refuse_hostile(body)
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    if cfg.message_mode == "plaintext":
        _check_plain_signature(cfg, args)
        _check_fresh(cfg, timestamp)
        return OpenedPush(body, False, timestamp, nonce)
    if args.get("encrypt_type", "").lower() != "aes":
        raise PushRefused(*NOT_ENCRYPTED)
    xml = _decrypt(cfg, body, args.get("msg_signature", ""), timestamp, nonce)
    _check_fresh(cfg, timestamp)
    refuse_hostile(xml)
    return OpenedPush(xml, True, timestamp, nonce)


CLAIMED = b"claimed"

# One round trip for the two checks every push needs: KEYS[1] the signed (timestamp, nonce), bound to the push's
# identity ARGV[1] (another push under them is refused); KEYS[2] the push's claim, taken as ARGV[2] when free.
_BIND_AND_CLAIM = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then
  local bound = redis.call('GET', KEYS[1])
  if bound and bound ~= ARGV[1] then return {'replayed', false} end
end
if redis.call('SET', KEYS[2], ARGV[2], 'NX', 'EX', ARGV[4]) then return {'claimed', false} end
return {'held', redis.call('GET', KEYS[2])}
"""


def bind_nonce_and_claim(cfg: OfficialAccountSection, push: OpenedPush, push_key: str, pending: bytes,
                         claim_seconds: int, also: tuple[ScriptCall, ...] = (),
                         before: ScriptCall | None = None) -> bytes | None:
    """Binds the push's (timestamp, nonce) to the push it signed — a different push reusing them is refused
    (PushRefused) — and claims the push under `push_key`. Returns CLAIMED when this delivery is the first, else
    what the first one stored there (None when that just expired). `also`: lookups the handler will need, made in
    the same round trip (app.extensions.prefetched). `before`: a write to make first in that round trip (earlier
    pushes' replies, wechat_handlers.kept_replies)."""
    nonce_key = redis_key("mp-nonce", hashlib.sha1(f"{push.timestamp}|{push.nonce}".encode()).hexdigest())
    claim = ScriptCall(_BIND_AND_CLAIM, (nonce_key, push_key),
                       (push_key, pending, remember_seconds(cfg), claim_seconds))
    results = run_scripts([before, claim, *also] if before is not None else [claim, *also])
    (outcome, stored), *more = results[1:] if before is not None else results
    if outcome == b"replayed":
        log.warning("a signed (timestamp, nonce) was reused for another push; refused")
        raise PushRefused(*REPLAYED)
    if outcome != b"claimed":
        return stored                # a retry: its handler does not run, so nothing it would read is kept
    for call, result in zip(also, more):
        keep_prefetched(call, result)
    return CLAIMED


def remember_seconds(cfg: OfficialAccountSection) -> int:
    """How long a handled push and a bound nonce are remembered: longer than any timestamp we accept."""
    return 2 * cfg.timestamp_tolerance_seconds


def _check_fresh(cfg: OfficialAccountSection, timestamp: str) -> None:
    try:
        moment = int(timestamp)
    except ValueError:
        raise PushRefused(*STALE) from None
    if abs(clock.now().timestamp() - moment) > cfg.timestamp_tolerance_seconds:
        raise PushRefused(*STALE)


def seal_reply(cfg: OfficialAccountSection, reply_xml: str, push: OpenedPush) -> str:
    """The reply as WeChat expects it: encrypted for an encrypted push; "success" always stays plain."""
    if not push.encrypted or not reply_xml.startswith("<xml>"):
        return reply_xml
    return _crypto(cfg).encrypt_message(reply_xml, push.nonce, push.timestamp)


def refuse_hostile(raw: bytes) -> None:
    """Checked on the raw bytes, so no entity is ever declared to (let alone expanded by) a parser."""
    if HOSTILE_MARKUP.search(raw):
        raise PushRefused(*HOSTILE)


def _check_plain_signature(cfg: OfficialAccountSection, args: Mapping[str, str]) -> None:
    try:
        check_signature(cfg.token, args.get("signature", ""), args.get("timestamp", ""), args.get("nonce", ""))
    except InvalidSignatureException:
        raise PushRefused(*BAD_SIGNATURE) from None


def _crypto(cfg: OfficialAccountSection) -> WeChatCrypto:
    return WeChatCrypto(cfg.token, cfg.encoding_aes_key, cfg.appid)


def _decrypt(cfg: OfficialAccountSection, body: bytes, msg_signature: str, timestamp: str, nonce: str) -> bytes:
    try:
        xml = _crypto(cfg).decrypt_message(body, msg_signature, timestamp, nonce)
    except InvalidSignatureException:
        raise PushRefused(*BAD_SIGNATURE) from None
    except InvalidAppIdException:
        log.warning("encrypted push for another appid refused")
        raise PushRefused(*UNDECRYPTABLE) from None
    except Exception as exc:   # no <Encrypt>, bad base64, bad padding, not XML: wechatpy raises all kinds
        log.warning("undecryptable push refused: %s", type(exc).__name__)
        raise PushRefused(*UNDECRYPTABLE) from None
    return xml.encode("utf-8")


# --- reading a push's XML ------------------------------------------------------------------------------------------

def parse_message(xml: str) -> BaseMessage:
    """wechatpy.parse_message, its XML read by ElementTree (expat in C) into the dict xmltodict gives wechatpy: a
    text push took 53 µs through xmltodict's Python callbacks and takes 21 here (bench/, 2026-12-01). The message
    or event class is chosen by wechatpy's own rules, as in its parse_message. Raises on malformed XML, a root that
    is not <xml> (KeyError) or a missing MsgType, as wechatpy's does."""
    root = ElementTree.fromstring(xml)
    if root.tag != "xml":
        raise KeyError("xml")
    message = _element_value(root) or {}
    message_type = message["MsgType"].lower()
    if message_type != "event" and not message_type.startswith("device_"):
        return MESSAGE_TYPES.get(message_type, UnknownMessage)(message)
    event_type = message["Event"].lower() if "Event" in message else None
    if event_type is None and message_type.startswith("device_"):
        event_type = message_type
    elif message_type.startswith("device_"):
        event_type = f"device_{event_type}"
    if event_type == "subscribe" and message.get("EventKey"):
        key = message["EventKey"]
        if key.startswith(("scanbarcode|", "scanimage|")):
            event_type = message["Event"] = "subscribe_scan_product"
        elif key.startswith("qrscene_"):
            event_type = message["Event"] = "subscribe_scan"
            message["EventKey"] = key[len("qrscene_"):]
    return EVENT_TYPES.get(event_type, UnknownMessage)(message)


def _element_value(element: ElementTree.Element) -> dict | str | None:
    """As xmltodict reads it: attributes as "@name", children as keys (a repeated one as a list), text stripped
    (None when empty), an element with children or attributes as a dict (its text under "#text")."""
    if not len(element) and not element.attrib:
        return (element.text or "").strip() or None
    value: dict = {f"@{name}": attribute for name, attribute in element.attrib.items()}
    for child in element:
        item = _element_value(child)
        if child.tag not in value:
            value[child.tag] = item
        elif isinstance(value[child.tag], list):
            value[child.tag].append(item)
        else:
            value[child.tag] = [value[child.tag], item]
    text = (element.text or "").strip()
    if text:
        value["#text"] = text
    return value
