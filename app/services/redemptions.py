"""Redeeming a voucher at the bakery's counter: the cashier scans the holder's QR or types the short code (or a
printed voucher's code), and the voucher goes valid → redeemed in one conditional UPDATE, so of any number of
cashiers redeeming it at once exactly one succeeds.

Each refusal has its own reason: a typo (the check character), an unknown code, a code past its window, a void or
expired voucher, one already used (when and where), another merchant's. Typed codes that name no voucher, or a
genuine voucher with a MAC that was never valid, are guesses: counted per cashier and per merchant and limited
(`limits.redeem_guesses_*`), so that guessing a 4-character MAC is hopeless. A genuine voucher refused as used or
expired is not a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update

from app import clock
from app.errors import Conflict, NotFound, Refusal
from app.extensions import db
from app.services import audit, notifications, policy, rate_limits, statements, voucher_codes, vouchers
from models import Cashier, Staff, Voucher, VoucherEvent, VoucherStatus

STALE_WINDOWS = 60          # a MAC valid within this many windows before is "past its window", not a guess


@dataclass
class Redeemed:
    voucher: Voucher
    masked_name: str


def mask_name(name: str) -> str:
    """张三 → 张*, 张小三 → 张*三, 欧阳小明 → 欧阳*明."""
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    if len(name) == 3:
        return name[0] + "*" + name[-1]
    return name[:2] + "*" + name[-1]


def redeem(cashier: Cashier, code: str) -> Redeemed:
    code = code.strip()
    if code.startswith(voucher_codes.TOKEN_PREFIX + "."):
        voucher = _by_qr_token(cashier, code)            # 80 bits of MAC: not guessable, not limited
    else:
        voucher = _by_typed_code(cashier, code)
    _check_usable(cashier, voucher)
    now = clock.now()
    won = db.session.execute(
        update(Voucher).where(Voucher.id == voucher.id, Voucher.status == VoucherStatus.VALID,
                              Voucher.valid_until >= now)
        .values(status=VoucherStatus.REDEEMED, redeemed_at=now, redeemed_by_id=cashier.id,
                redeemed_shop=cashier.shop).execution_options(synchronize_session=False)).rowcount
    # A locking read: MariaDB's plain read would still show the row as of this transaction's first read.
    voucher = db.session.scalar(select(Voucher).where(Voucher.id == voucher.id).with_for_update(read=True, of=Voucher)
                                .execution_options(populate_existing=True))
    if not won:
        _check_usable(cashier, voucher)            # someone else's redemption (or a void) got there first
        raise Conflict("voucher_not_usable", "该券当前不能使用")
    db.session.add(VoucherEvent(voucher_id=voucher.id, action="redeemed", detail={
        "merchant": cashier.merchant.name, "shop": cashier.shop, "cashier": cashier.name, "cashier_id": cashier.id}))
    notifications.notify_people(
        "service", f"voucher-redeemed:{voucher.id}:{voucher.serial}", [voucher.staff_id], "生日蛋糕券已使用",
        f"您的生日蛋糕券已于 {clock.local_text(now)} 在{cashier.merchant.name}{cashier.shop}使用。",
        data={"summary": "生日蛋糕券已使用"}, page=vouchers.VOUCHER_PAGE)
    return Redeemed(voucher, mask_name(voucher.staff.name))


def _by_qr_token(cashier: Cashier, token: str) -> Voucher:
    parts = token.split(".")
    voucher = db.session.scalar(select(Voucher).where(Voucher.serial == parts[1])) if len(parts) == 4 else None
    if voucher is None or not _window_match(voucher, token):
        raise Refusal("unknown_code", "无效的券码")
    return voucher


def _by_typed_code(cashier: Cashier, code: str) -> Voucher:
    guess_limits = [("redeem_guesses_per_cashier", cashier.id), ("redeem_guesses_per_merchant", cashier.merchant_id)]
    for name, key in guess_limits:
        rate_limits.ensure_within(name, key)
    compact = code.replace(" ", "").replace("-", "").upper()
    if len(compact) == voucher_codes.PRINTED_CODE_LENGTH:
        return _by_printed_code(compact, guess_limits)
    typed = voucher_codes.parse_short_code(compact)
    if typed is None:
        raise Refusal("code_mistyped", "券码输入有误（校验位不符），请核对后重新输入")
    voucher = db.session.get(Voucher, typed.voucher_id)
    if voucher is None or (voucher.status is VoucherStatus.VALID and not _window_match(voucher, typed.code)):
        if voucher is not None and _recently_valid(voucher, typed.code):
            raise Conflict("code_expired", "券码已过期，请会员刷新后重新出示")
        _count_guess(guess_limits)
        raise Refusal("unknown_code", "无效的券码")
    return voucher


def _by_printed_code(code: str, guess_limits) -> Voucher:
    if voucher_codes.check_character(code[:-1]) != code[-1]:
        raise Refusal("code_mistyped", "券码输入有误（校验位不符），请核对后重新输入")
    voucher_id = voucher_codes.voucher_id_of(code)
    voucher = db.session.get(Voucher, voucher_id) if voucher_id else None
    if voucher is None or voucher.printed_code_hash != vouchers.printed_code_hash(code):
        _count_guess(guess_limits)
        raise Refusal("unknown_code", "无效的券码")
    return voucher


def _count_guess(guess_limits) -> None:
    for name, key in guess_limits:
        rate_limits.hit(name, key)


def _window_seconds() -> int:
    return current_app.config["SU"].vouchers.show_window_seconds


def _window_match(voucher: Voucher, code: str) -> bool:
    if voucher.printed_at is not None:
        return False            # a printed voucher is redeemed with its printed code only
    window = voucher_codes.window_of(clock.now(), _window_seconds())
    return voucher_codes.matches(code, voucher.id, voucher.serial, voucher.secret, window)


def _recently_valid(voucher: Voucher, code: str) -> bool:
    window = voucher_codes.window_of(clock.now(), _window_seconds())
    return any(voucher_codes.matches(code, voucher.id, voucher.serial, voucher.secret, window - n)
               for n in range(2, STALE_WINDOWS))


def _check_usable(cashier: Cashier, voucher: Voucher) -> None:
    if voucher.status is VoucherStatus.REDEEMED:
        where = f"{voucher.redeemed_by.merchant.name if voucher.redeemed_by else ''}{voucher.redeemed_shop or ''}"
        raise Conflict("voucher_used", f"该券已于 {clock.local_text(voucher.redeemed_at)} 在{where}使用",
                       redeemed_at=clock.local(voucher.redeemed_at).isoformat(), shop=voucher.redeemed_shop)
    if voucher.status is VoucherStatus.VOID:
        raise Conflict("voucher_void", "该券已作废")
    if voucher.status is VoucherStatus.EXPIRED or voucher.valid_until < clock.now():
        raise Conflict("voucher_expired", f"该券已于 {clock.local_text(voucher.valid_until)} 过期")
    if voucher.merchant != cashier.merchant.name:
        raise Conflict("other_merchant", f"该券只能在{voucher.merchant}使用")


def todays_redemptions(cashier: Cashier) -> list[Voucher]:
    """What the cashier's shop redeemed today (Beijing time)."""
    start = datetime.combine(clock.today(), datetime.min.time(), clock.zone())
    return list(db.session.scalars(select(Voucher).join(Cashier, Voucher.redeemed_by_id == Cashier.id).where(
        Cashier.merchant_id == cashier.merchant_id, Voucher.redeemed_shop == cashier.shop,
        Voucher.redeemed_at >= start).order_by(Voucher.redeemed_at.desc())).unique())


# --- undoing a redemption ------------------------------------------------------------------------------------------

def undo(actor_cashier: Cashier | None, officer: Staff | None, voucher_id: int) -> Voucher:
    """The redeeming cashier, or a union officer, undoes a redemption within `vouchers.undo_minutes`: once (of any
    number at once, one wins), audited, never once the merchant's month is closed."""
    voucher = db.session.get(Voucher, voucher_id)
    if voucher is None or (actor_cashier is not None and voucher.redeemed_by_id != actor_cashier.id):
        raise NotFound("找不到该核销记录", code="redemption_not_found")
    if officer is not None:
        policy.ensure_union_officer(officer)
    if voucher.status is not VoucherStatus.REDEEMED:
        raise Conflict("not_redeemed", "该券没有待撤销的核销")
    redeemed_at, cashier = voucher.redeemed_at, voucher.redeemed_by
    if clock.now() - redeemed_at > timedelta(minutes=current_app.config["SU"].vouchers.undo_minutes):
        raise Conflict("undo_too_late", "已超过可撤销核销的时限")
    if cashier is not None and statements.is_closed(cashier.merchant_id, statements.month_of(redeemed_at)):
        raise Conflict("month_closed", "该月核销已结算，不能撤销")
    undone = db.session.execute(
        update(Voucher).where(Voucher.id == voucher.id, Voucher.status == VoucherStatus.REDEEMED,
                              Voucher.redeemed_at == redeemed_at)
        .values(status=VoucherStatus.VALID, redeemed_at=None, redeemed_by_id=None, redeemed_shop=None)
        .execution_options(synchronize_session=False)).rowcount
    if not undone:
        raise Conflict("not_redeemed", "该核销已被撤销")
    db.session.add(VoucherEvent(voucher_id=voucher.id, action="redemption_undone", actor_id=officer.id if officer
                                else None, detail={"cashier_id": actor_cashier.id if actor_cashier else None,
                                                   "redeemed_at": redeemed_at.isoformat()}))
    audit.record(officer, "voucher.undo_redemption", "voucher", voucher.id,
                 actor_label=f"cashier:{actor_cashier.id}" if actor_cashier else "")
    return db.session.scalar(select(Voucher).where(Voucher.id == voucher.id).with_for_update(read=True, of=Voucher)
                             .execution_options(populate_existing=True))
