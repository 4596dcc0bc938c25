"""Mini-program login, binding a WeChat user to a roster entry, and the bearer tokens that follow.

A token is signed (not stored): it names the WeChat identity and, once bound, the staff member and their
`auth_version`. Unbinding, a role change or a status change bumps `auth_version`, so old tokens stop working at
once; 离职 staff are refused whatever their token says.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from wechatpy.exceptions import WeChatClientException

from app import clock
from app.errors import Conflict, Refusal, Unauthorized, WeChatUnavailable
from app.extensions import ScriptCall, db, this_app
from app.services import principals, rate_limits, roster
from app.services.principals import StaffCard
from app.wechat import mini_client
from models import Cashier, Staff, StaffStatus, WeChatApp, WeChatIdentity

log = logging.getLogger(__name__)

INVALID_CODE_ERRCODES = {40029, 40163, 40226}
BIND_MISMATCH = ("bind_mismatch", "工号、姓名与手机号（或绑定码）不匹配，请核对后再试")


@dataclass
class Principal:
    """Who is calling: always a WeChat identity; `card` once bound as a member (app.services.principals, no query),
    or `cashier` once bound to a merchant (never both). `staff` is the member's row, read on first use."""

    identity_id: int
    card: StaffCard | None
    cashier: Cashier | None = None
    _staff: Staff | None = field(default=None, repr=False)

    @property
    def staff(self) -> Staff | None:
        if self.card is not None and self._staff is None:
            self._staff = db.session.get(Staff, self.card.id, options=[joinedload(Staff.roles)])   # one query
        return self._staff


def _serializer() -> URLSafeTimedSerializer:
    """One per app: building it derives its signer's settings, which every request would pay again."""
    found = this_app().extensions.get("auth.serializer")
    if found is None:
        found = this_app().extensions["auth.serializer"] = URLSafeTimedSerializer(
            this_app().config["SU"].app.secret_key, salt="smart-union.token")
    return found


VERIFIED_KEPT = 8192


def _verified(token: str) -> dict:
    """The token's payload once its signature and age check out. A token whose signature verified once is kept
    with the time it was signed (per app, so per secret): a request that repeats it checks only its age, which
    the signature cannot change."""
    max_age = this_app().config["SU"].app.token_ttl_seconds
    kept = this_app().extensions.setdefault("auth.verified", {})
    found = kept.get(token)
    if found is None:
        payload, signed_at = _serializer().loads(token, max_age=max_age, return_timestamp=True)
        found = kept[token] = (payload, int(signed_at.timestamp()))
        if len(kept) > VERIFIED_KEPT:
            kept.clear()
    payload, signed_at = found
    age = int(time.time()) - signed_at
    if age > max_age or age < 0:
        raise SignatureExpired("token expired")
    return payload


def issue_token(identity: WeChatIdentity, staff: Staff | None) -> str:
    payload = {"i": identity.id}
    if staff is not None:
        payload.update(s=staff.id, v=staff.auth_version)
    return _serializer().dumps(payload)


def issue_cashier_token(identity: WeChatIdentity, cashier: Cashier) -> str:
    return _serializer().dumps({"i": identity.id, "c": cashier.id, "cv": cashier.auth_version})


def authenticate(token: str, prefetch: Callable[[int], ScriptCall | None] | None = None) -> Principal:
    """The caller behind a bearer token, or Unauthorized. `prefetch`: given a staff member's id, a Redis lookup the
    request will need, made in the card's round trip."""
    try:
        payload = _verified(token)
    except SignatureExpired:
        raise Unauthorized("token_expired", "登录已过期，请重新登录") from None
    except BadSignature:
        raise Unauthorized("invalid_token", "登录凭证无效，请重新登录") from None
    if "c" in payload:
        return Principal(identity_id=payload["i"], card=None, cashier=_cashier_of(payload))
    if "s" not in payload:
        return Principal(identity_id=payload["i"], card=None)
    card = principals.staff_card(payload["s"], prefetch(payload["s"]) if prefetch else None)
    if card is None or card.auth_version != payload["v"]:
        raise Unauthorized("token_revoked", "您的登录状态已变更，请重新登录")
    if card.status is StaffStatus.LEFT or card.died_on is not None:
        raise Unauthorized("staff_left", "您已不在会员名册中，无法继续使用")
    return Principal(identity_id=payload["i"], card=card)


def _cashier_of(payload: dict) -> Cashier:
    """A cashier's token dies at once when the cashier is revoked or the merchant deactivated."""
    cashier = db.session.get(Cashier, payload["c"])
    if cashier is None or cashier.auth_version != payload["cv"] or cashier.revoked_at is not None \
            or not cashier.merchant.active:
        raise Unauthorized("token_revoked", "您的收银员身份已停用，请联系工会")
    return cashier


def login(js_code: str, source: str) -> tuple[str, WeChatIdentity, Staff | None]:
    """Exchanges a wx.login() code for our token; returns (token, identity, bound staff or None)."""
    rate_limits.hit("logins_per_source", source)
    session_info = _code_to_session(js_code)
    identity = _find_or_create_identity(session_info["openid"], session_info.get("unionid"))
    identity.last_login_at = clock.now()
    staff = identity.staff if identity.staff_id else None
    if staff is not None and staff.status is StaffStatus.LEFT:
        staff = None
    return issue_token(identity, staff), identity, staff


def _code_to_session(js_code: str) -> dict:
    try:
        return mini_client().wxa.code_to_session(js_code)
    except WeChatClientException as exc:
        if exc.errcode in INVALID_CODE_ERRCODES:
            raise Unauthorized("invalid_code", "登录凭证无效或已过期，请重新进入小程序") from None
        log.warning("code2session failed: %s", exc.errcode)
        raise WeChatUnavailable("wechat_unavailable", "微信服务暂时不可用，请稍后再试") from None


def _find_or_create_identity(openid: str, unionid: str | None) -> WeChatIdentity:
    stmt = select(WeChatIdentity).where(WeChatIdentity.app == WeChatApp.MINI_PROGRAM,
                                        WeChatIdentity.openid == openid)
    identity = db.session.scalar(stmt)
    if identity is None:
        try:
            with db.session.begin_nested():
                identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=openid, unionid=unionid)
                db.session.add(identity)
        except IntegrityError:   # the same user's parallel first login won the insert
            identity = db.session.scalar(stmt)
    if unionid and identity.unionid != unionid:
        identity.unionid = unionid
    return identity


def bind(principal: Principal, employee_no: str, name: str, phone_code: str | None,
         bind_code: str | None, source: str) -> tuple[str, Staff]:
    """Links the caller's WeChat account to a roster entry when 工号, 姓名 and phone (or bind code) all match.

    Guessing is limited without locking the owner out: failures count per WeChat account and per source (never per
    工号 alone, which anyone may know). A phone proof comes from WeChat for the caller's own number and cannot be
    guessed, so a correct one binds even over the limits. A bind code can be guessed: every try counts first
    (atomically, so parallel guesses cannot slip past), also per 工号, and an officer's fresh code clears that."""
    identity = db.session.get(WeChatIdentity, principal.identity_id)
    if identity is None:
        raise Unauthorized("invalid_token", "登录凭证无效，请重新登录")
    if identity.staff_id is not None:
        raise Conflict("already_bound", "您的微信已绑定教职工身份，如需更换请联系工会解绑")
    if principal.cashier is not None or _is_cashier(identity):
        raise Conflict("cashier_account", "该微信已绑定为商户收银员，不能再绑定教职工身份")
    limits = _bind_limits(identity.openid, source, employee_no if bind_code else None)
    if bind_code:
        _count_failure(limits)        # counted before the check; taken back when the code is right
    phone = None if bind_code else _resolve_phone(phone_code)   # before the roster: its errors reveal nothing
    staff = roster.find_staff(employee_no)
    if not _proof_matches(staff, name, phone, bind_code):
        if not bind_code:
            _count_failure(limits)
        raise Refusal(*BIND_MISMATCH)
    if roster.mini_identity_of(staff) is not None:
        raise Conflict("staff_already_bound", "该工号已绑定其他微信，如需更换请联系工会解绑")
    _link(identity, staff)
    rate_limits.clear("bind_failures_per_account", identity.openid)
    if bind_code:
        rate_limits.clear("bind_code_failures_per_staff", employee_no)
    return issue_token(identity, staff), staff


def _proof_matches(staff: Staff | None, name: str, phone: str | None, bind_code: str | None) -> bool:
    """One answer for every kind of mismatch, so the reply tells a guesser nothing."""
    if staff is None or staff.status is StaffStatus.LEFT or staff.name != name.strip():
        return False
    if bind_code:
        return roster.consume_bind_code(staff, bind_code.strip())
    return staff.phone is not None and roster.normalize_phone(phone) == staff.phone


def _resolve_phone(phone_code: str | None) -> str | None:
    if not phone_code:
        return None
    try:
        result = mini_client().wxa.get_phone_number(phone_code)
    except WeChatClientException as exc:
        if exc.errcode in INVALID_CODE_ERRCODES:
            raise Refusal("invalid_phone_code", "手机号授权已失效，请重新点击获取手机号") from None
        log.warning("getuserphonenumber failed: %s", exc.errcode)
        raise WeChatUnavailable("wechat_unavailable", "微信服务暂时不可用，请稍后再试") from None
    return result.get("phone_info", {}).get("purePhoneNumber")


def _link(identity: WeChatIdentity, staff: Staff) -> None:
    identity.staff_id = staff.id
    identity.bound_at = clock.now()
    try:
        db.session.flush()
    except IntegrityError:   # another WeChat account bound this staff member in the same instant
        raise Conflict("staff_already_bound", "该工号已绑定其他微信，如需更换请联系工会解绑") from None


def _is_cashier(identity: WeChatIdentity) -> bool:
    return db.session.scalar(select(Cashier.id).where(Cashier.identity_id == identity.id)) is not None


def _bind_limits(openid: str, source: str, employee_no: str | None) -> list[tuple[str, str]]:
    limits = [("bind_failures_per_account", openid), ("bind_failures_per_source", source)]
    return limits + ([("bind_code_failures_per_staff", employee_no)] if employee_no else [])


def _count_failure(limits: list[tuple[str, str]]) -> None:
    for name, identity in limits:
        rate_limits.hit(name, identity)
