"""Birthday cake vouchers (生日蛋糕券), part 1: the policy, issuing one voucher per member per year, expiry and
reminders, what the holder shows, and what officers see and void. (Redeeming at the bakery's counter is part 2.)

- The policy lives in the database, one row per version; the first is copied from [vouchers] in the config when
  the table is empty. Each voucher keeps the merchant, face value and cost it was issued with.
- A voucher belongs to a solar year in Beijing time. Lunar birthdays: the lunar birthday that falls in that year
  (the first, when it falls twice; the solar date, when it falls in none).
- Issuing is a job: whatever is due and not yet issued (catching up after downtime; a late voucher is valid for
  the full period from the day it is issued). The unique (staff, year) constraint makes it exactly once, whoever
  runs it at the same time.
- Every change of state is a row of the voucher's history.
"""

from __future__ import annotations

import hashlib
import io
import secrets
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import segno
from flask import current_app
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from app import clock
from app.errors import Conflict, NotFound
from app.extensions import db
from app.money import yuan
from app.services import audit, notifications, policy, voucher_codes
from app.services.calendar import lunar_birthday_in_year, solar_birthday_in_year
from app.validation import validate_model, whole
from models import (
    BirthdayCalendar, IssueMode, Notice, Staff, StaffStatus, Voucher, VoucherEvent, VoucherPolicy, VoucherStatus,
)

STATUS_LABELS = {VoucherStatus.VALID: "有效", VoucherStatus.REDEEMED: "已使用", VoucherStatus.EXPIRED: "已过期",
                 VoucherStatus.VOID: "已作废"}
VOUCHER_PAGE = "pages/vouchers/index"
NOT_FOUND = ("找不到该生日蛋糕券", "voucher_not_found")


def _settings():
    return current_app.config["SU"].vouchers


# --- the policy -------------------------------------------------------------------------------------------------

class PolicyFields(BaseModel):
    """What a union officer sets (money in fen, 分)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, json_schema_extra={"examples": [
        {"face_value_fen": 20000, "cost_fen": 18000, "merchant": "好利来（学院路店）", "issue_mode": "days_before",
         "issue_days_before": 7, "valid_days": 60, "retirees_eligible": True, "yearly_cap_fen": 30000}]})
    face_value_fen: whole(ge=1, le=1_000_000) = Field(description="面值（分）")
    cost_fen: whole(le=1_000_000) = Field(description="工会为每张券支付的费用（分）")
    merchant: str = Field(min_length=1, max_length=100, description="指定蛋糕店")
    issue_mode: IssueMode = Field(description="days_before 生日前 N 天 / month_start 生日当月 1 日")
    issue_days_before: whole(le=60) = 0
    valid_days: whole(ge=1, le=366) = Field(description="自发放之日起有效天数")
    retirees_eligible: bool = True
    yearly_cap_fen: whole(ge=1, le=1_000_000) = Field(description="每人每年面值上限（分）")

    @model_validator(mode="after")
    def _within_the_cap(self):
        given = None not in (self.face_value_fen, self.yearly_cap_fen)     # a PATCH may give only one of them
        if given and self.face_value_fen > self.yearly_cap_fen:
            raise ValueError("面值不能超过每人每年的面值上限")
        return self


def current_policy() -> VoucherPolicy:
    """The policy in force: the newest version (the config's values become version 1 of an empty table)."""
    found = _newest_policy()
    if found is not None:
        return found
    seed = _settings().model_dump(exclude={"show_window_seconds", "reminder_days_before_expiry", "undo_minutes"})
    # Another process may seed it at the same moment: then read its row with a locking read, which sees rows
    # committed after this transaction began (MariaDB's REPEATABLE READ would show the empty table again).
    return _add_version(validate_model(PolicyFields, seed), 1, None) or _newest_policy(locking=True)


def _newest_policy(locking: bool = False) -> VoucherPolicy | None:
    stmt = select(VoucherPolicy).order_by(VoucherPolicy.version.desc()).limit(1)
    if locking:
        stmt = stmt.with_for_update(read=True).execution_options(populate_existing=True)
    return db.session.scalar(stmt)


def change_policy(officer: Staff, changes: dict) -> VoucherPolicy:
    """A new version with some fields changed (union officers only); vouchers already issued keep theirs."""
    policy.ensure_union_officer(officer)
    now_in_force = current_policy()
    fields = validate_model(PolicyFields, {**PolicyFields.model_validate(now_in_force, from_attributes=True)
                                           .model_dump(), **changes})
    added = _add_version(fields, now_in_force.version + 1, officer.id)
    if added is None:
        raise Conflict("policy_changed_meanwhile", "政策刚被其他人修改，请刷新后再试")
    audit.record(officer, "voucher.policy", "voucher_policy", added.version, **fields.model_dump(mode="json"))
    return added


def _add_version(fields: PolicyFields, version: int, officer_id: int | None) -> VoucherPolicy | None:
    row = VoucherPolicy(version=version, created_by_id=officer_id, **fields.model_dump())
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:     # another version with this number was written at the same time
        return None
    return row


# --- which birthday, which day --------------------------------------------------------------------------------

def birthday_in_year(staff: Staff, year: int) -> date | None:
    """The birthday a voucher of this solar year is for."""
    if staff.birthday is None:
        return None
    if staff.birthday_calendar is BirthdayCalendar.LUNAR:
        falls = sorted(d for d in (lunar_birthday_in_year(staff.birthday, y) for y in (year - 1, year))
                       if d.year == year)
        if falls:
            return falls[0]
    return solar_birthday_in_year(staff.birthday, year)


def issue_date(rule: VoucherPolicy, birthday: date) -> date:
    if rule.issue_mode is IssueMode.MONTH_START:
        return birthday.replace(day=1)
    return birthday - timedelta(days=rule.issue_days_before)


# --- issuing, expiring, reminding (the scheduler) ----------------------------------------------------------------

def issue_due_vouchers(now: datetime) -> int:
    """Issues every voucher that is due and not yet issued; returns how many it issued."""
    today = clock.local(now).date()
    rule = current_policy()
    years = {today.year, (today + timedelta(days=rule.issue_days_before)).year}
    issued = 0
    for year in sorted(years):
        for staff in _without_a_voucher(year, rule):
            birthday = birthday_in_year(staff, year)
            if birthday is None or issue_date(rule, birthday) > today:
                continue
            if staff.member_since is not None and staff.member_since > birthday:
                continue              # joined after this year's birthday
            issued += _issue(staff, year, birthday, rule, now)
    return issued


def _without_a_voucher(year: int, rule: VoucherPolicy) -> list[Staff]:
    statuses = [StaffStatus.ACTIVE] + ([StaffStatus.RETIRED] if rule.retirees_eligible else [])
    has_one = select(Voucher.id).where(Voucher.staff_id == Staff.id, Voucher.year == year).exists()
    return list(db.session.scalars(select(Staff).where(
        Staff.birthday.is_not(None), Staff.status.in_(statuses), Staff.died_on.is_(None), ~has_one)).unique())


def _issue(staff: Staff, year: int, birthday: date, rule: VoucherPolicy, now: datetime) -> int:
    voucher = Voucher(staff_id=staff.id, year=year, birthday=birthday, status=VoucherStatus.VALID,
                      merchant=rule.merchant, face_value_fen=rule.face_value_fen, cost_fen=rule.cost_fen,
                      policy_version=rule.version, issued_at=now, valid_until=_valid_until(now, rule.valid_days),
                      **_new_codes())
    try:
        with db.session.begin_nested():
            db.session.add(voucher)
    except IntegrityError:        # issued at the same moment by another run: one voucher per member per year
        return 0
    _record(voucher, "issued", None, year=year, birthday=birthday.isoformat())
    notifications.notify_people(
        "service", f"voucher-issued:{voucher.id}", [staff.id], "生日蛋糕券已发放",
        f"工会为您准备了生日蛋糕券：{voucher.merchant}，面值 {yuan(voucher.face_value_fen)} 元，"
        f"有效期至 {clock.local_text(voucher.valid_until)}。请在小程序“生日券”中出示。",
        data={"summary": "生日蛋糕券已发放"}, page=VOUCHER_PAGE)
    return 1


def _valid_until(issued_at: datetime, days: int) -> datetime:
    last_day = clock.local(issued_at).date() + timedelta(days=days)
    return datetime.combine(last_day, time(23, 59, 59), clock.zone())


def _new_codes() -> dict[str, str]:
    return {"serial": secrets.token_hex(8).upper(), "secret": secrets.token_hex(32)}


def expire_vouchers(now: datetime) -> int:
    """Unused vouchers past their validity become expired (a conditional UPDATE: a redemption racing it wins)."""
    due = list(db.session.scalars(select(Voucher).where(Voucher.status == VoucherStatus.VALID,
                                                        Voucher.valid_until < now).limit(1000)))
    expired = 0
    for voucher in due:
        if _transition(voucher, VoucherStatus.VALID, VoucherStatus.EXPIRED):
            _record(voucher, "expired", None)
            notifications.cancel_notice(_reminder_occasion(voucher))
            expired += 1
    return expired


def remind_expiring(now: datetime) -> int:
    """One reminder per unused voucher, `reminder_days_before_expiry` days before it expires."""
    days = _settings().reminder_days_before_expiry
    if not days:
        return 0
    due = {_reminder_occasion(v): v for v in db.session.scalars(select(Voucher).where(
        Voucher.status == VoucherStatus.VALID, Voucher.valid_until <= now + timedelta(days=days),
        Voucher.valid_until > now))}
    done = set(db.session.scalars(select(Notice.occasion).where(Notice.occasion.in_(due)))) if due else set()
    for occasion, voucher in due.items():
        if occasion not in done:
            notifications.notify_people(
                "service", occasion, [voucher.staff_id], "生日蛋糕券即将过期",
                f"您的生日蛋糕券（{voucher.merchant}）将于 {clock.local_text(voucher.valid_until)} 过期，请尽快使用。",
                data={"summary": "生日蛋糕券即将过期"}, page=VOUCHER_PAGE)
    return len(set(due) - done)


def _reminder_occasion(voucher: Voucher) -> str:
    return f"voucher-expiring:{voucher.id}:{voucher.serial}"


def _transition(voucher: Voucher, old: VoucherStatus, new: VoucherStatus, **values) -> bool:
    changed = db.session.execute(update(Voucher).where(Voucher.id == voucher.id, Voucher.status == old)
                                 .values(status=new, **values).execution_options(synchronize_session=False))
    db.session.scalar(select(Voucher).where(Voucher.id == voucher.id).with_for_update(read=True, of=Voucher)
                      .execution_options(populate_existing=True))      # the row as it is now (MariaDB too)
    return bool(changed.rowcount)


def _record(voucher: Voucher, action: str, actor: Staff | None, **detail) -> None:
    db.session.add(VoucherEvent(voucher_id=voucher.id, action=action, actor_id=actor.id if actor else None,
                                detail=detail))


def void_unused(staff: Staff, reason: str) -> int:
    """A member who left or died: their unused vouchers become void, and nothing more is said about them."""
    voided = 0
    for voucher in db.session.scalars(select(Voucher).where(Voucher.staff_id == staff.id,
                                                            Voucher.status == VoucherStatus.VALID)):
        if _transition(voucher, VoucherStatus.VALID, VoucherStatus.VOID, void_reason=reason):
            _record(voucher, "voided", None, reason=reason)
            _cancel_notices(voucher)
            voided += 1
    return voided


def _cancel_notices(voucher: Voucher) -> None:
    notifications.cancel_notice(f"voucher-issued:{voucher.id}")
    notifications.cancel_notice(_reminder_occasion(voucher))


# --- the holder ----------------------------------------------------------------------------------------------------

def my_vouchers(staff: Staff) -> list[Voucher]:
    return list(db.session.scalars(select(Voucher).where(Voucher.staff_id == staff.id)
                                   .order_by(Voucher.year.desc())).unique())


def voucher_for(staff: Staff, voucher_id: int) -> Voucher:
    """The holder's own voucher; anyone else's is not found."""
    voucher = db.session.get(Voucher, voucher_id)
    if voucher is None or not policy.holds_voucher(staff, voucher):
        raise NotFound(*NOT_FOUND)
    return voucher


@dataclass
class Shown:
    voucher: Voucher
    short_code: str
    token: str
    expires_at: datetime


def show(staff: Staff, voucher_id: int) -> Shown:
    """The codes to show the cashier now; they stop working after the next window (at most two minutes)."""
    voucher = voucher_for(staff, voucher_id)
    now = clock.now()
    if voucher.status is not VoucherStatus.VALID or now > voucher.valid_until:
        raise Conflict("voucher_not_usable", f"该券{STATUS_LABELS[voucher.status]}，不能出示")
    if voucher.printed_at is not None:
        raise Conflict("voucher_printed", "该券已打印为纸质券，请出示纸质券")
    if voucher.first_shown_at is None:
        marked = db.session.execute(update(Voucher).where(Voucher.id == voucher.id, Voucher.first_shown_at.is_(None))
                                    .values(first_shown_at=now).execution_options(synchronize_session=False))
        if marked.rowcount:
            _record(voucher, "shown", staff)
    seconds = _settings().show_window_seconds
    window = voucher_codes.window_of(now, seconds)
    return Shown(voucher, voucher_codes.short_code(voucher.id, voucher.secret, window),
                 voucher_codes.qr_token(voucher.serial, voucher.id, voucher.secret, window),
                 datetime.fromtimestamp((window + 2) * seconds, tz=now.tzinfo))


def qr_svg(staff: Staff, voucher_id: int) -> str:
    buffer = io.BytesIO()
    segno.make(show(staff, voucher_id).token, error="m").save(buffer, kind="svg", scale=6, border=2)
    return buffer.getvalue().decode("utf-8")


# --- officers -------------------------------------------------------------------------------------------------

def list_for_officer(officer: Staff, year: int | None, sub_union_id: int | None, status: VoucherStatus | None,
                     page: int, page_size: int) -> tuple[list[Voucher], int]:
    policy.ensure_officer(officer)
    stmt = select(Voucher).join(Voucher.staff).where(policy.staff_condition(officer))
    if year is not None:
        stmt = stmt.where(Voucher.year == year)
    if sub_union_id is not None:
        stmt = stmt.where(Staff.sub_union_id == sub_union_id)
    if status is not None:
        stmt = stmt.where(Voucher.status == status)
    total = db.session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = db.session.scalars(stmt.order_by(Voucher.year.desc(), Voucher.id).limit(page_size)
                              .offset((page - 1) * page_size)).unique()
    return list(rows), total


def get_for_officer(officer: Staff, voucher_id: int) -> Voucher:
    voucher = db.session.get(Voucher, voucher_id)
    if voucher is None or not policy.sees_voucher(officer, voucher):
        raise NotFound(*NOT_FOUND)
    return voucher


def void(officer: Staff, voucher_id: int, reason: str) -> Voucher:
    """Voids an unused voucher (union officers); its notices still unsent are withdrawn."""
    voucher = get_for_officer(officer, voucher_id)
    policy.ensure_union_officer(officer)
    if not _transition(voucher, VoucherStatus.VALID, VoucherStatus.VOID, void_reason=reason):
        raise Conflict("voucher_not_valid", f"该券{STATUS_LABELS[voucher.status]}，不能作废")
    _record(voucher, "voided", officer, reason=reason)
    _cancel_notices(voucher)
    audit.record(officer, "voucher.void", "voucher", voucher.id, reason=reason)
    return voucher


REISSUABLE = (VoucherStatus.VOID, VoucherStatus.EXPIRED)


def reissue(officer: Staff, voucher_id: int, reason: str) -> Voucher:
    """A void or expired voucher made valid again (union officers): a new serial and secret on the same row, so the
    yearly constraint holds and the cap is not counted twice; the old serial stays in its history. A redeemed
    voucher is never reissued."""
    voucher = get_for_officer(officer, voucher_id)
    policy.ensure_union_officer(officer)
    if voucher.status not in REISSUABLE:
        raise Conflict("voucher_not_reissuable", f"该券{STATUS_LABELS[voucher.status]}，只有已作废或已过期的券可以补发")
    rule, now, old_serial = current_policy(), clock.now(), voucher.serial
    if not _transition(voucher, voucher.status, VoucherStatus.VALID, issued_at=now, void_reason=None,
                       valid_until=_valid_until(now, rule.valid_days), printed_at=None, printed_code_hash=None,
                       first_shown_at=None, **_new_codes()):
        raise Conflict("voucher_changed_meanwhile", "该券刚被其他人修改，请刷新后再试")
    _record(voucher, "reissued", officer, old_serial=old_serial, reason=reason)
    _notify_reissued(voucher)
    audit.record(officer, "voucher.reissue", "voucher", voucher.id, reason=reason)
    return voucher


def move_to_current_merchant(officer: Staff, year: int) -> int:
    """When the designated bakery changes: every unused voucher of the year is reissued for the policy in force
    (its merchant, face value and cost), with a new serial and secret. Returns how many moved."""
    policy.ensure_union_officer(officer)
    rule = current_policy()
    moved = 0
    for voucher in db.session.scalars(select(Voucher).where(
            Voucher.year == year, Voucher.status == VoucherStatus.VALID, Voucher.merchant != rule.merchant)).unique():
        old_serial, old_merchant = voucher.serial, voucher.merchant
        if _transition(voucher, VoucherStatus.VALID, VoucherStatus.VALID, merchant=rule.merchant,
                       face_value_fen=rule.face_value_fen, cost_fen=rule.cost_fen, policy_version=rule.version,
                       printed_at=None, printed_code_hash=None, **_new_codes()):
            _record(voucher, "reissued", officer, old_serial=old_serial, old_merchant=old_merchant)
            _notify_reissued(voucher)
            moved += 1
    audit.record(officer, "voucher.move_merchant", "voucher_year", year, merchant=rule.merchant, moved=moved)
    return moved


def _notify_reissued(voucher: Voucher) -> None:
    notifications.notify_people(
        "service", f"voucher-reissued:{voucher.id}:{voucher.serial}", [voucher.staff_id], "生日蛋糕券已补发",
        f"您的生日蛋糕券已补发：{voucher.merchant}，面值 {yuan(voucher.face_value_fen)} 元，"
        f"有效期至 {clock.local_text(voucher.valid_until)}。", data={"summary": "生日蛋糕券已补发"}, page=VOUCHER_PAGE)


def print_voucher(officer: Staff, voucher_id: int) -> str:
    """A printed voucher for a member without WeChat: its one-time code is shown this once (only a hash is kept),
    and the mini-program stops showing the voucher. Printing again replaces the code."""
    voucher = get_for_officer(officer, voucher_id)
    if voucher.status is not VoucherStatus.VALID:
        raise Conflict("voucher_not_valid", f"该券{STATUS_LABELS[voucher.status]}，不能打印")
    code = voucher_codes.printed_code(voucher.id)
    voucher.printed_at = clock.now()
    voucher.printed_code_hash = printed_code_hash(code)
    _record(voucher, "printed", officer)
    audit.record(officer, "voucher.print", "voucher", voucher.id)
    return code


def printed_code_hash(code: str) -> str:
    secret = current_app.config["SU"].app.secret_key
    return hashlib.sha256(f"{secret}:printed-voucher:{code.upper()}".encode()).hexdigest()


def status_text(staff: Staff) -> str:
    """For the official account's 生日券 keyword: each voucher's status and validity, never a code."""
    mine = my_vouchers(staff)
    if not mine:
        return "您还没有生日蛋糕券。生日前会自动发放，届时会通知您。"
    lines = [f"· {v.year} 年：{STATUS_LABELS[v.status]}，{v.merchant}，面值 {yuan(v.face_value_fen)} 元"
             + (f"，有效期至 {clock.local_text(v.valid_until)}" if v.status is VoucherStatus.VALID else "")
             for v in mine]
    return "您的生日蛋糕券：\n" + "\n".join(lines) + "\n请在工会小程序“生日券”中出示使用。"


def yearly_summary(officer: Staff, year: int) -> dict[str, int]:
    policy.ensure_union_officer(officer)
    return yearly_counts(year)


def yearly_counts(year: int) -> dict[str, int]:
    """The year's figures for the work report: vouchers per status, face value and cost of all issued."""
    rows = db.session.execute(select(Voucher.status, func.count(), func.coalesce(func.sum(Voucher.face_value_fen), 0),
                                     func.coalesce(func.sum(Voucher.cost_fen), 0))
                              .where(Voucher.year == year).group_by(Voucher.status)).all()
    counts = {status.value: 0 for status in VoucherStatus}
    face = cost = 0
    for status, n, face_fen, cost_fen in rows:
        counts[status.value] = n
        face, cost = face + int(face_fen), cost + int(cost_fen)
    return {"issued": sum(counts.values()), **counts, "face_value_fen": face, "cost_fen": cost}
