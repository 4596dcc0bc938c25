"""The bakery's side of the vouchers (生日蛋糕券, part 2): merchants and their shops, cashiers bound with a one-time
code, revoking a cashier and deactivating a merchant (both end the cashiers' tokens at once).

A WeChat account is either a member or a cashier, never both (app.services.auth refuses the other binding).
"""

from __future__ import annotations

import secrets

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import Conflict, NotFound, Refusal
from app.extensions import db, get_redis, redis_key
from app.services import audit, auth, policy, rate_limits
from models import Cashier, Merchant, Staff, WeChatIdentity

CODE_TTL_SECONDS = 24 * 3600
NOT_FOUND = ("找不到该商户", "merchant_not_found")


class MerchantIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"name": "好利来（学院路店）", "shops": ["学院路店", "中关村店"]}]})
    name: str = Field(min_length=1, max_length=100, description="商户名称（须与生日蛋糕券政策中的指定蛋糕店一致）")
    shops: list[str] = Field(min_length=1, max_length=50, description="门店名称")

    @field_validator("shops")
    @classmethod
    def _named_shops(cls, value: list[str]) -> list[str]:
        shops = [s.strip() for s in value]
        if any(not s or len(s) > 100 for s in shops) or len(set(shops)) != len(shops):
            raise ValueError("门店名称不能为空、不能重复，且不超过 100 字")
        return shops


def create_merchant(officer: Staff, fields: MerchantIn) -> Merchant:
    policy.ensure_union_officer(officer)
    merchant = Merchant(name=fields.name, shops=fields.shops, active=True)
    try:
        with db.session.begin_nested():
            db.session.add(merchant)
    except IntegrityError:
        raise Conflict("merchant_exists", "已有同名商户") from None
    audit.record(officer, "merchant.create", "merchant", merchant.id, name=merchant.name)
    return merchant


def list_merchants(officer: Staff) -> list[Merchant]:
    policy.ensure_officer(officer)
    return list(db.session.scalars(select(Merchant).order_by(Merchant.name)))


def get_merchant(officer: Staff, merchant_id: int) -> Merchant:
    policy.ensure_officer(officer)
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound(*NOT_FOUND)
    return merchant


def deactivate(officer: Staff, merchant_id: int) -> Merchant:
    """The merchant's cashiers' tokens end at once (app.services.auth checks `active`)."""
    merchant = get_merchant(officer, merchant_id)
    policy.ensure_union_officer(officer)
    merchant.active = False
    audit.record(officer, "merchant.deactivate", "merchant", merchant.id)
    return merchant


def issue_cashier_code(officer: Staff, merchant_id: int, shop: str, name: str) -> str:
    """A one-time code (12 characters, a day) with which one cashier binds their own WeChat to this shop."""
    merchant = get_merchant(officer, merchant_id)
    policy.ensure_union_officer(officer)
    if not merchant.active:
        raise Conflict("merchant_inactive", "该商户已停用")
    if shop not in merchant.shops:
        raise Refusal("unknown_shop", f"该商户没有门店“{shop}”")
    code = secrets.token_urlsafe(9)
    get_redis().set(_code_key(code), f"{merchant.id}|{shop}|{name}", ex=CODE_TTL_SECONDS)
    audit.record(officer, "merchant.cashier_code", "merchant", merchant.id, shop=shop, name=name)
    return code


def bind_cashier(principal: auth.Principal, code: str, source: str) -> tuple[str, Cashier]:
    """A WeChat account (logged in, not a member) becomes a cashier with the code an officer gave; the code works
    once. Returns the cashier's token."""
    identity = db.session.get(WeChatIdentity, principal.identity_id)
    if identity.staff_id is not None:
        raise Conflict("member_account", "该微信已绑定教职工身份，不能再绑定为收银员")
    if principal.cashier is not None:
        raise Conflict("already_cashier", "该微信已是收银员")
    rate_limits.hit("bind_failures_per_source", source)
    raw = get_redis().getdel(_code_key(code.strip()))
    if raw is None:
        raise Refusal("invalid_cashier_code", "绑定码不正确或已过期，请向工会索取新的绑定码")
    merchant_id, shop, name = raw.decode().split("|", 2)
    cashier = Cashier(merchant_id=int(merchant_id), identity_id=identity.id, shop=shop, name=name, auth_version=1)
    try:
        with db.session.begin_nested():
            db.session.add(cashier)
    except IntegrityError:
        raise Conflict("already_cashier", "该微信已是收银员") from None
    return auth.issue_cashier_token(identity, cashier), cashier


def list_cashiers(officer: Staff, merchant_id: int) -> list[Cashier]:
    merchant = get_merchant(officer, merchant_id)
    return list(db.session.scalars(select(Cashier).where(Cashier.merchant_id == merchant.id)
                                   .order_by(Cashier.id)).unique())


def revoke_cashier(officer: Staff, merchant_id: int, cashier_id: int) -> Cashier:
    """The cashier's next request is refused: their token's version no longer matches."""
    merchant = get_merchant(officer, merchant_id)
    policy.ensure_union_officer(officer)
    cashier = db.session.get(Cashier, cashier_id)
    if cashier is None or cashier.merchant_id != merchant.id:
        raise NotFound("找不到该收银员", code="cashier_not_found")
    if cashier.revoked_at is None:
        cashier.revoked_at = clock.now()
        cashier.auth_version += 1
        audit.record(officer, "merchant.cashier_revoke", "cashier", cashier.id)
    return cashier


def _code_key(code: str) -> str:
    return redis_key("cashier-code", code)
