"""Followers of the official account (公众号) and their link to the roster.

A follower is a WeChatIdentity with app=OFFICIAL_ACCOUNT; `following` says whether notifications may use it.
It is linked to a staff member in one of two ways:
- by unionid: the same person's mini-program identity, already bound to a staff member, has the same unionid
  (WeChat gives it once both apps belong to one open-platform account). Subscribe events carry none, so it is
  fetched with `cgi-bin/user/info`.
- by a one-time code: the staff member asks for a 6-digit code in the mini-program and sends "绑定 123456" to
  the official account. Codes live in Redis only (losing one means asking for a new one); tries count against
  `limits.link_failures_per_account` and `limits.link_failures_total`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Iterator

import requests
from flask import current_app, has_app_context
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import ORMExecuteState, Session, joinedload
from wechatpy.exceptions import WeChatClientException

from app import clock
from app.errors import Busy, Conflict, Refusal
from app.services import principals, rate_limits
from app.services.kept_records import KeptRecords
from app.services.principals import StaffCard
from app.extensions import ScriptCall, db, get_redis, redis_key
from app.wechat import mp_client
from models import Staff, StaffStatus, WeChatApp, WeChatIdentity

log = logging.getLogger(__name__)

CODE_DIGITS = 6
BAD_CODE = ("invalid_link_code", "绑定码不正确或已过期。请在小程序“我的”页面重新获取绑定码，再发送“绑定 绑定码”。")


def mask_openid(openid: str) -> str:
    return f"{openid[:4]}***{openid[-4:]}" if len(openid) > 8 else "***"


def find_identity(openid: str) -> WeChatIdentity | None:
    """The follower with their staff record and roles, in one query (every push needs all three)."""
    return db.session.scalars(select(WeChatIdentity).where(
        WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.openid == openid)
        .options(joinedload(WeChatIdentity.staff).joinedload(Staff.roles))).unique().first()


@dataclass(frozen=True)
class Follower:
    identity_id: int
    staff_id: int | None


_FOLLOWER_QUERY = select(WeChatIdentity.id, WeChatIdentity.staff_id).where(
    WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.openid == bindparam("openid"))
# openid -> Follower, kept right by the session events below; the staff id beside it lets a push read the card too
LINKS = KeptRecords("follower", "v1", ref_of=lambda follower: follower.staff_id)


def find_follower(openid: str) -> Follower | None:
    """The follower's identity and the staff member it is linked to (every push asks): kept in Redis per openid
    (app.services.kept_records), else two columns read, no ORM objects. The staff member comes from their cached
    card (linked_member). An unknown openid is not kept (the sync inserts rows without marks)."""
    return LINKS.get(openid, lambda: _read_follower(openid))


def link_lookup(openid: str) -> ScriptCall:
    """The Redis read of the follower's link and of the linked member's card, for a push to make with its claim
    (app.extensions.prefetched)."""
    return LINKS.lookup_through(openid, principals.CARDS)


def _read_follower(openid: str) -> Follower | None:
    row = db.lookup(_FOLLOWER_QUERY, {"openid": openid})
    return Follower(*row) if row is not None else None


def linked_member(follower: Follower | None) -> StaffCard | None:
    """The card of the staff member a follower speaks for (app.services.principals); 离职 staff speak for no one."""
    if follower is None or follower.staff_id is None:
        return None
    card = principals.staff_card(follower.staff_id)
    return None if card is None or card.status is StaffStatus.LEFT else card


def ensure_identity(openid: str) -> tuple[WeChatIdentity, bool]:
    """The follower's identity, created when missing (a parallel insert of the same openid is tolerated);
    the flag says whether it was created."""
    identity = find_identity(openid)
    if identity is not None:
        return identity, False
    try:
        with db.session.begin_nested():
            identity = WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid=openid, following=True)
            db.session.add(identity)
        return identity, True
    except IntegrityError:
        return find_identity(openid), False


def linked_staff(identity: WeChatIdentity | None) -> Staff | None:
    """The staff member a follower speaks for; 离职 staff speak for no one."""
    if identity is None or identity.staff_id is None:
        return None
    staff = identity.staff
    return None if staff is None or staff.status is StaffStatus.LEFT else staff


def follow(openid: str) -> WeChatIdentity:
    """A subscribe event: the follower is marked following and, when possible, linked by unionid."""
    identity, _ = ensure_identity(openid)
    identity.following = True
    if identity.staff_id is None:
        link_by_unionid(identity, fetch_unionid(openid))
    return identity


def unfollow(openid: str) -> None:
    """An unsubscribe event: notifications stop using the official account for this person."""
    db.session.execute(update(WeChatIdentity).where(
        WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.openid == openid).values(following=False))


def fetch_unionid(openid: str) -> str | None:
    """The follower's unionid from `cgi-bin/user/info`; None when WeChat has none or cannot be reached."""
    try:
        info = mp_client().user.get(openid)
    except (WeChatClientException, requests.RequestException) as exc:
        log.warning("user/info for %s failed: %s", mask_openid(openid), exc)
        return None
    unionid = info.get("unionid") if isinstance(info, dict) else None
    return unionid if isinstance(unionid, str) and unionid else None


def link_by_unionid(identity: WeChatIdentity, unionid: str | None) -> Staff | None:
    """Links the follower to the staff member whose mini-program identity has the same unionid. A staff member
    who already linked another WeChat account by code keeps that one."""
    if unionid and identity.unionid != unionid:
        identity.unionid = unionid
    if not unionid or identity.staff_id is not None:
        return linked_staff(identity)
    staff = db.session.scalar(select(Staff).join(WeChatIdentity, WeChatIdentity.staff_id == Staff.id).where(
        WeChatIdentity.app == WeChatApp.MINI_PROGRAM, WeChatIdentity.unionid == unionid))
    if staff is None or staff.status is StaffStatus.LEFT or _mp_identity_of(staff) is not None:
        return None
    try:
        with db.session.begin_nested():
            _attach(identity, staff)
    except IntegrityError:   # linked elsewhere in the same instant
        return None
    return staff


# ---- one-time codes --------------------------------------------------------------------------------------------

def issue_link_code(staff: Staff) -> tuple[str, int]:
    """A fresh 6-digit code for this staff member, and its lifetime in seconds; their older code stops working."""
    if staff.status is StaffStatus.LEFT:
        raise Conflict("staff_left", "您已不在会员名册中，无法绑定公众号")
    rate_limits.hit("link_codes_per_staff", staff.id)
    ttl = current_app.config["SU"].wechat.official_account.link_code_ttl_seconds
    r = get_redis()
    previous = r.get(_staff_code_key(staff.id))
    if previous is not None:
        _delete_code_of(previous.decode(), staff.id)
    for _ in range(20):
        code = f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"
        if r.set(_code_key(code), staff.id, nx=True, ex=ttl):
            r.set(_staff_code_key(staff.id), code, ex=ttl)
            return code, ttl
    raise Busy("link_code_busy", "系统繁忙，请稍后再试")


def link_by_code(openid: str, code: str) -> Staff:
    """Links the follower to the staff member who was given this code. The code is taken from Redis atomically
    (GETDEL), so it works once; a staff member's previous official-account link moves to this WeChat account.
    Each try counts first, per follower and for all followers together, so codes cannot be guessed from many
    accounts; a right code takes its follower's count back."""
    rate_limits.hit("link_failures_per_account", openid)
    rate_limits.hit("link_failures_total", "all")
    raw = get_redis().getdel(_code_key(code))
    staff = db.session.get(Staff, int(raw)) if raw is not None else None
    if staff is None or staff.status is StaffStatus.LEFT:
        raise Refusal(*BAD_CODE)
    get_redis().delete(_staff_code_key(staff.id))
    identity, _ = ensure_identity(openid)
    identity.following = True
    if identity.staff_id != staff.id:
        previous = _mp_identity_of(staff)
        if previous is not None:
            previous.staff_id, previous.bound_at = None, None
            db.session.flush()
        _attach(identity, staff)
    rate_limits.clear("link_failures_per_account", openid)
    return staff


def _attach(identity: WeChatIdentity, staff: Staff) -> None:
    identity.staff_id = staff.id
    identity.staff = staff
    identity.bound_at = clock.now()
    db.session.flush()


def _mp_identity_of(staff: Staff) -> WeChatIdentity | None:
    return db.session.scalar(select(WeChatIdentity).where(
        WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.staff_id == staff.id))


def _delete_code_of(code: str, staff_id: int) -> None:
    r = get_redis()
    if r.get(_code_key(code)) == str(staff_id).encode():
        r.delete(_code_key(code))


def _code_key(code: str) -> str:
    return redis_key("mp-link-code", code)


def _staff_code_key(staff_id: int) -> str:
    return redis_key("mp-link-code-of", staff_id)


# ---- synchronising with WeChat's follower list -------------------------------------------------------------------

@dataclass
class SyncReport:
    followers: int = 0        # openids WeChat listed
    created: int = 0          # identities we had not seen before
    linked: int = 0           # linked by unionid in this run
    already_linked: int = 0
    not_linked: int = 0
    unfollowed: int = 0       # marked following=True here but no longer in WeChat's list

    def lines(self) -> list[str]:
        return [f"公众号关注者 {self.followers} 人：新记录 {self.created}，本次按 unionid 绑定 {self.linked}，"
                f"此前已绑定 {self.already_linked}，未绑定 {self.not_linked}；已取消关注 {self.unfollowed}"]


def follower_pages() -> Iterator[list[str]]:
    """WeChat's follower list (`cgi-bin/user/get`), one page of openids at a time (up to 10,000 each)."""
    next_openid = None
    while True:
        page = mp_client().user.get_followers(next_openid)
        openids = [o for o in (page.get("data") or {}).get("openid") or [] if isinstance(o, str)]
        if openids:
            yield openids
        next_openid = page.get("next_openid")
        if not openids or not next_openid:
            return


USER_BATCH = 100       # WeChat's cgi-bin/user/info/batchget takes at most 100 openids


def sync_follower_page(openids: list[str], report: SyncReport) -> None:
    """Marks each listed follower following and links the unlinked ones by unionid, in bulk: one read of the page's
    identities, one INSERT of the new ones, one UPDATE of those not marked following, and per 100 unlinked
    followers one WeChat batch call (`user/info/batchget`) and one read of the staff their unionids name."""
    page = list(dict.fromkeys(openids))
    known = _page_identities(page)
    new = [o for o in page if o not in known]
    if new:
        _insert_followers(new)
        known = _page_identities(page)
    stale = [row.id for row in known.values() if not row.following]
    if stale:
        db.session.execute(update(WeChatIdentity).where(WeChatIdentity.id.in_(stale)).values(following=True))
    unlinked = [o for o in page if known[o].staff_id is None]
    report.followers += len(page)
    report.created += len(new)
    report.already_linked += len(page) - len(unlinked)
    for start in range(0, len(unlinked), USER_BATCH):
        chunk = unlinked[start:start + USER_BATCH]
        linked = _link_in_bulk({o: known[o].id for o in chunk}, fetch_unionids(chunk))
        report.linked += linked
        report.not_linked += len(chunk) - linked


def _page_identities(openids: list[str]) -> dict:
    return {row.openid: row for row in db.session.execute(
        select(WeChatIdentity.openid, WeChatIdentity.id, WeChatIdentity.staff_id, WeChatIdentity.following).where(
            WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.openid.in_(openids)))}


def _insert_followers(openids: list[str]) -> None:
    rows = [{"app": WeChatApp.OFFICIAL_ACCOUNT, "openid": o, "following": True, "created_at": clock.now()}
            for o in openids]
    try:
        with db.session.begin_nested():
            db.session.execute(insert(WeChatIdentity), rows)
    except IntegrityError:          # one of them subscribed meanwhile: one by one
        for openid in openids:
            ensure_identity(openid)
        db.session.flush()


def fetch_unionids(openids: list[str]) -> dict[str, str]:
    """openid -> unionid for up to 100 followers in one call; those WeChat gives none for (or all of them, when it
    cannot be reached: the next sync tries again) are left out."""
    try:
        answers = mp_client().user.get_batch(openids)
    except (WeChatClientException, requests.RequestException) as exc:
        log.warning("user/info/batchget for %d followers failed: %s", len(openids), exc)
        return {}
    return {a["openid"]: a["unionid"] for a in answers if isinstance(a, dict)
            and isinstance(a.get("openid"), str) and isinstance(a.get("unionid"), str) and a["unionid"]}


def _link_in_bulk(identity_ids: dict[str, int], unionids: dict[str, str]) -> int:
    """Links each follower to the staff member whose mini-program identity has its unionid (as link_by_unionid
    does one by one: not 离职, not linked to another follower already). Returns how many it linked."""
    if not unionids:
        return 0
    # (the app is checked here, not in SQL: the unionid index alone then answers, whatever the table's statistics)
    staff_of = {unionid: sid for unionid, app, sid in db.session.execute(
        select(WeChatIdentity.unionid, WeChatIdentity.app, Staff.id).join(Staff, Staff.id == WeChatIdentity.staff_id)
        .where(WeChatIdentity.unionid.in_(set(unionids.values())), Staff.status != StaffStatus.LEFT))
        if app is WeChatApp.MINI_PROGRAM}
    now, taken, rows = clock.now(), set(), []
    for openid, unionid in unionids.items():
        staff_id = staff_of.get(unionid)
        if staff_id in taken:
            staff_id = None
        taken.add(staff_id)
        rows.append({"iid": identity_ids[openid], "uid": unionid, "sid": staff_id,
                     "at": now if staff_id else None})
    identities = WeChatIdentity.__table__.c
    # on the table (one executemany), through the session so that the unit of work knows it wrote
    by_id = (update(WeChatIdentity.__table__).where(identities.id == bindparam("iid"), identities.staff_id.is_(None))
             .values(unionid=bindparam("uid"), staff_id=bindparam("sid"), bound_at=bindparam("at")))
    try:
        with db.session.begin_nested():
            db.session.execute(by_id, rows)
    except IntegrityError:          # one of them speaks for someone another follower speaks for: one by one
        return sum(link_by_unionid(db.session.get(WeChatIdentity, identity_ids[o]), u) is not None
                   for o, u in unionids.items())
    return sum(1 for row in rows if row["sid"])


def clear_unfollowed(seen: set[str], report: SyncReport, batch: int = 1000) -> None:
    """Identities marked following that WeChat no longer lists stop being used for notifications."""
    following = db.session.scalars(select(WeChatIdentity.openid).where(
        WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.following.is_(True))).all()
    gone = [o for o in following if o not in seen]
    for start in range(0, len(gone), batch):
        chunk = gone[start:start + batch]
        db.session.execute(update(WeChatIdentity).where(
            WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT, WeChatIdentity.openid.in_(chunk))
            .values(following=False))
    report.unfollowed += len(gone)


# --- the unit of work's session events (app.services.kept_records) ----------------------------------------------

@event.listens_for(Session, "after_flush")
def _mark_changed_links(session: Session, _context) -> None:
    """A follower's identity came, changed or went: its kept link is dropped before the commit, and none is kept
    until the transaction ends (not even the new row, read in this transaction, which may yet roll back)."""
    changed = {obj.openid for obj in (*session.new, *session.dirty, *session.deleted)
               if isinstance(obj, WeChatIdentity) and obj.app is WeChatApp.OFFICIAL_ACCOUNT
               and (obj not in session.dirty or session.is_modified(obj, include_collections=False))}
    LINKS.mark(session, changed)


@event.listens_for(Session, "do_orm_execute")
def _mark_bulk_link_changes(state: ORMExecuteState) -> None:
    """A Core UPDATE or DELETE of identities may change any follower's link: every kept link is dropped."""
    if state.is_select or state.is_insert or not has_app_context():
        return
    if getattr(getattr(state.statement, "table", None), "name", None) == WeChatIdentity.__tablename__:
        LINKS.mark(state.session, set(), everyone=True)
