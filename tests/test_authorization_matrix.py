"""The authorization matrix: every route of `app.url_map` × every kind of caller × (for a route that takes a record)
one record the caller may see and one they may not.

Each API route has one row in ROUTES: its gate (the lowest kind of caller it admits) and how to build, for one
caller, the request on a record they may see (expects a 2xx with a valid body) and on one they may not (expects 404).
Below the gate a caller gets 401 (anonymous; a WeChat user not yet bound, on staff routes) or 403 (staff on officer
routes; a sub-union officer on union-officer-only actions). A route without a row, or a row without a route, fails
`test_every_route_has_a_row`: a new area adds its rows here. Routes that are not API operations are listed in
NOT_API_OPERATIONS.

The world every case starts from: sub-unions 甲, 乙 and 丙; the staff caller and the sub-union officer (of 甲) belong
to 甲, the union officer and the admin to 丙; plain members A0002 (甲) and B0001 (乙). What a caller may see: events
and announcements addressed to everyone (as staff); records addressed to 甲 and created by the sub-union officer (as
officers). What they may not: records addressed to 乙 (as staff); union-wide records of the union officer (the
sub-union officer); a missing id (union officers and admins, who see every record).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

import pytest
from sqlalchemy import select

from app.extensions import db
from app.unit_of_work import unit_of_work
from app import clock
from app.services import (
    announcements, attachments, auth, merchants, notifications, redemptions, roster, voucher_codes, vouchers,
)
from app.services.condolences import claims, filing, payments, rates, visits
from app.services.events import checkin, lifecycle, seats
from app.services.audiences import Audience
from app.services.policy import PROPOSAL_CALLERS, Caller
from models import (
    Cashier, ClaimStatus, CondolenceStatus, PaymentKind, Role, Signup, Staff, StaffStatus, Voucher, VoucherStatus, WeChatApp,
    WeChatIdentity,
)
from tests.events_support import event_body
from tests.helpers import bearer
from tests.test_proposal_matrix import PROPOSAL_ROUTES

ANON, WECHAT, STAFF, CASHIER = Caller.ANONYMOUS, Caller.WECHAT, Caller.STAFF, Caller.CASHIER
SUB, UNION, ADMIN = Caller.SUB_UNION_OFFICER, Caller.UNION_OFFICER, Caller.ADMIN
CALLERS = [c for c in Caller if c not in PROPOSAL_CALLERS.values()]   # theirs: tests/test_proposal_matrix.py
OFFICERS = (SUB, UNION, ADMIN)
RANKED = [ANON, WECHAT, STAFF, SUB, UNION, ADMIN]      # a cashier is a branch of its own


def admitted(caller: Caller, gate: Caller) -> bool:
    """Whether the endpoint's gate lets this kind of caller in (what happens next is the route's business)."""
    if gate is CASHIER:
        return caller is CASHIER
    if caller is CASHIER:
        return gate in (ANON, WECHAT)
    return RANKED.index(caller) >= RANKED.index(gate)
MISSING = 2**31 - 1          # an id no record has
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
NOT_API_OPERATIONS = {
    ("GET", "/healthz"), ("GET", "/readyz"),                       # health probes, no data
    ("GET", "/metrics"),                                           # internal networks or a token (test_operations.py)
    ("GET", "/wechat/mp"), ("POST", "/wechat/mp"),                 # WeChat's signed pushes (tests/test_wechat_mp.py)
    ("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/docs"),      # the public API description
    ("GET", "/api/v1/docs/assets/<path:name>"), ("GET", "/"),      # the docs page's files; the root: to the docs
    ("GET", "/static/<path:filename>"),                            # Flask's static folder (empty)
}


# --- the world -----------------------------------------------------------------------------------------------------

@dataclass
class World:
    sub_unions: dict[str, int]
    staff_ids: dict[Caller, int]
    tokens: dict[Caller, str]
    made: dict[str, Any] = field(default_factory=dict)

    def staff(self, caller: Caller) -> Staff:
        return db.session.get(Staff, self.staff_ids[caller])


def _person(employee_no: str, name: str, sub_union: str, **extra) -> Staff:
    fields = roster.StaffFields(name=name, sub_union=sub_union, **extra)
    return roster.upsert_staff(employee_no, fields, actor_label="matrix")[0]


def _identity(openid: str, staff: Staff | None) -> str:
    identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=openid, staff_id=staff.id if staff else None)
    db.session.add(identity)
    db.session.flush()
    return auth.issue_token(identity, staff)


def bound_cashier(officer: Staff) -> tuple[Any, Cashier, str]:
    """The bakery 指定蛋糕店 and a cashier bound to it: (merchant, cashier, the cashier's token)."""
    merchant = merchants.create_merchant(officer, merchants.MerchantIn(name="指定蛋糕店", shops=["总店"]))
    identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid="openid-cashier")
    db.session.add(identity)
    db.session.flush()
    cashier = Cashier(merchant_id=merchant.id, identity_id=identity.id, shop="总店", name="收银员小王")
    db.session.add(cashier)
    db.session.flush()
    return merchant, cashier, auth.issue_cashier_token(identity, cashier)


@pytest.fixture
def world(app) -> World:
    with app.app_context(), unit_of_work():
        people = {
            STAFF: _person("S0001", "普通会员", "甲分工会"),
            SUB: _person("O0001", "分工会主席", "甲分工会"),
            UNION: _person("U0001", "校工会干事", "丙分工会"),
            ADMIN: _person("D0001", "系统管理员", "丙分工会"),
        }
        _person("A0002", "甲会员", "甲分工会", phone="13800000002")
        _person("B0001", "乙会员", "乙分工会")
        _person("W0001", "待绑定", "甲分工会", phone="13800000001")
        sub_unions = {name: roster.ensure_sub_union(name)[0].id for name in ("甲分工会", "乙分工会", "丙分工会")}
        roster.grant_role(people[SUB], Role.SUB_UNION_OFFICER, sub_unions["甲分工会"], actor_label="matrix")
        roster.grant_role(people[UNION], Role.UNION_OFFICER, actor_label="matrix")
        roster.grant_role(people[ADMIN], Role.ADMIN, actor_label="matrix")
        db.session.flush()
        tokens = {caller: _identity(f"openid-{caller.value}", staff) for caller, staff in people.items()}
        tokens[WECHAT] = _identity("openid-unbound", None)
        merchant, cashier, tokens[CASHIER] = bound_cashier(people[UNION])
        cashier_code = merchants.issue_cashier_code(people[UNION], merchant.id, "总店", "新收银员")
        return World(sub_unions, {c: s.id for c, s in people.items()}, tokens,
                     {"merchant_id": merchant.id, "cashier_id": cashier.id, "cashier_code": cashier_code})


def build(app, w: World, make: Callable[[World], Any]) -> Any:
    with app.app_context(), unit_of_work():
        return make(w)


def audience_of(w: World, to: str) -> dict:
    return {} if to == "all" else {"sub_union_ids": [w.sub_unions[to]]}


def an_event(w: World, by: Caller, to: str, publish: bool = True, signed_up: str | None = None, **changes) -> int:
    officer = w.staff(by)
    event = lifecycle.create_event(officer, lifecycle.EventFields.model_validate(
        event_body(audience=audience_of(w, to), **changes)))
    if publish:
        lifecycle.publish_event(officer, event.id, notify=False)
    if signed_up:
        seats.sign_up(event.id, roster.get_staff(signed_up), {})
    return event.id


def an_announcement(w: World, by: Caller, to: str, publish: bool = True, attach: bool = False) -> tuple[int, int]:
    officer = w.staff(by)
    draft = announcements.create_draft(officer, title="工会通知", body="正文", audience=Audience(**audience_of(w, to)))
    file_id = attachments.attach(draft, "附件.png", PNG).id if attach else MISSING
    if publish:
        announcements.publish(officer, draft.id)
    return draft.id, file_id


def a_notice(w: World, to: str) -> int:
    return notifications.notify_audience("service", f"matrix:{to}", Audience(**audience_of(w, to)), "通知").id


def personal_notice(w: World, employee_no: str) -> int:
    return notifications.notify_people("service", f"matrix:{employee_no}", [roster.get_staff(employee_no).id],
                                       "通知").id


OWN_NO = {STAFF: "S0001", SUB: "O0001", UNION: "U0001", ADMIN: "D0001"}


def vouchers_issued(w: World) -> dict[str, int]:
    """Everyone's birthday is today: the issuing job gives each their voucher of this year; 工号 -> voucher id."""
    for employee_no in ("S0001", "O0001", "U0001", "D0001", "A0002", "B0001"):
        staff = roster.get_staff(employee_no)
        today = clock.today()
        staff.birthday = date(1980, 2, 28) if (today.month, today.day) == (2, 29) else today.replace(year=1980)
    db.session.flush()
    vouchers.issue_due_vouchers(clock.now())
    return {v.staff.employee_no: v.id for v in db.session.scalars(select(Voucher)).unique()}


def _own_voucher_cases(path: str) -> Callable:
    """A staff route on the caller's own voucher (seen) and on another member's (not seen)."""
    def cases(app, w, caller):
        ids = build(app, w, vouchers_issued)
        own = ids[OWN_NO.get(caller, "S0001")]
        return Req(path.format(own)), Req(path.format(ids["A0002"]))
    return cases


def _officer_voucher_cases(path: str, json: Any = None, voided: bool = False) -> Callable:
    """An officer route on A0002's voucher (甲: every officer's scope; `voided` first) and on B0001's (乙) or a
    missing one."""
    def issued(w):
        ids = vouchers_issued(w)
        if voided:
            db.session.get(Voucher, ids["A0002"]).status = VoucherStatus.VOID
        return ids

    def cases(app, w, caller):
        ids = build(app, w, issued) if caller in OFFICERS else {"A0002": MISSING, "B0001": MISSING}
        unseen = ids["B0001"] if caller is SUB else MISSING
        return Req(path.format(ids["A0002"]), json), Req(path.format(unseen), json)
    return cases


def _redeem_cases(app, w, caller):
    """The cashier redeems A0002's voucher by its short code of this minute."""
    def code_of(w):
        voucher = db.session.get(Voucher, vouchers_issued(w)["A0002"])
        window = voucher_codes.window_of(clock.now(), app.config["SU"].vouchers.show_window_seconds)
        return voucher_codes.short_code(voucher.id, voucher.secret, window)
    return Req("/api/v1/cashier/redeem", {"code": build(app, w, code_of)}), None


def _redeemed(w: World) -> int:
    """A0002's voucher, redeemed by the world's cashier."""
    voucher = db.session.get(Voucher, vouchers_issued(w)["A0002"])
    cashier = db.session.get(Cashier, w.made["cashier_id"])
    window = voucher_codes.window_of(clock.now(), 60)
    redemptions.redeem(cashier, voucher_codes.qr_token(voucher.serial, voucher.id, voucher.secret, window))
    return voucher.id


def _undo_cases(path: str) -> Callable:
    """An undo of the redemption the world's cashier made; and of a voucher nobody redeemed (not found)."""
    def cases(app, w, caller):
        if caller not in OFFICERS and caller is not CASHIER:
            return Req(path.format(MISSING)), None
        seen = build(app, w, _redeemed)
        return Req(path.format(seen)), Req(path.format(MISSING))
    return cases


MONTH = f"{datetime.now(timezone.utc) + timedelta(hours=8):%Y-%m}"


def _merchant_cases(path: str, json: Any = None) -> Callable:
    """An officer route on the world's merchant, and on a missing one."""
    return lambda app, w, caller: (Req(path.format(w.made["merchant_id"]), json), Req(path.format(MISSING), json))


def checkin_code(event_id: int, employee_no: str) -> str:
    signup = db.session.scalar(select(Signup).where(Signup.event_id == event_id,
                                                    Signup.staff_id == roster.get_staff(employee_no).id))
    return checkin.checkin_code(signup)


def a_condolence(w: World, employee_no: str, status: CondolenceStatus | None = None, attach: bool = False,
                 verified_by: str = "O0001", **values: Any) -> int | tuple[int, int]:
    """A member's own request (本人住院, today), moved to `status` (a verified one by `verified_by`) with `values`
    set, and a file."""
    member = roster.get_staff(employee_no)
    kind = next(k.id for k in rates.all_types() if k.name == "本人住院")
    request = filing.file_own(member, filing.RequestFields(type_id=kind, event_date=clock.today(), description="住院"))
    file_id = filing.attach(member, request.id, "发票.png", PNG).id if attach else None
    if status is not None:
        request.status = status
        if status is CondolenceStatus.VERIFIED:
            request.verified_by_id = roster.get_staff(verified_by).id
    for name, value in values.items():
        setattr(request, name, value)
    db.session.flush()
    return (request.id, file_id) if attach else request.id


def _own_condolence_cases(path: str, json: Any = None, status: CondolenceStatus | None = None, attach: bool = False,
                          files: Callable | None = None) -> Callable:
    """A member's route on the caller's own request (seen) and on another member's: A0002's (甲: unseen by staff
    and by an admin, who reads no request), B0001's (乙: the sub-union officer), none (union officers see all)."""
    def cases(app, w, caller):
        def make(w):
            seen = a_condolence(w, OWN_NO.get(caller, "S0001"), status, attach)
            other = {SUB: "B0001", UNION: None}.get(caller, "A0002")
            unseen = a_condolence(w, other, status, attach) if other else ((MISSING, MISSING) if attach else MISSING)
            return seen, unseen
        seen, unseen = build(app, w, make)
        return (Req(path.format(*_tuple(seen)), json, files() if files else None),
                Req(path.format(*_tuple(unseen)), json, files() if files else None))
    return cases


def _review_cases(path: str, json: Any = None, verified: bool = False) -> Callable:
    """A reviewer's route. Seen: A0002's request (甲) for the sub-union officer; for a union officer, the sub-union
    officer's own request, which nobody in 甲 is free to verify — or, to approve, A0002's, verified by O0001.
    Unseen: B0001's (乙) for the sub-union officer, none for union officers."""
    def cases(app, w, caller):
        if caller not in OFFICERS:
            return Req(path.format(MISSING), json), None
        status = CondolenceStatus.VERIFIED if verified else None

        def make(w):
            seen_no = "O0001" if caller is UNION and not verified else "A0002"
            return (a_condolence(w, seen_no, status),
                    a_condolence(w, "B0001", status) if caller is SUB else MISSING)
        seen, unseen = build(app, w, make)
        return Req(path.format(seen), json), Req(path.format(unseen), json)
    return cases


def _file_for_member_cases(app, w, caller):
    kind = build(app, w, lambda w: next(k.id for k in rates.all_types() if k.name == "本人住院"))
    body = {"consent_by": "家属", "consent_at": NOW.isoformat(), "type_id": kind,
            "event_date": f"{NOW + timedelta(hours=8):%Y-%m-%d}", "description": "住院"}
    return (Req("/api/v1/officer/condolences", {**body, "employee_no": "A0002"}),
            Req("/api/v1/officer/condolences", {**body, "employee_no": "B0001" if caller is SUB else "NOPE99"}))


def _file_own_cases(app, w, caller):
    kind = build(app, w, lambda w: next(k.id for k in rates.all_types() if k.name == "本人住院"))
    return Req("/api/v1/condolences", {"type_id": kind, "event_date": f"{NOW + timedelta(hours=8):%Y-%m-%d}",
                                       "description": "住院"}), None


GIFT_APPROVED = {"status": CondolenceStatus.APPROVED, "payment": PaymentKind.GIFT, "gift": "水果篮", "amount_fen": 30000}
BEIJING_NOW = datetime.now(timezone.utc) + timedelta(hours=8)
PREVIOUS_MONTH = f"{BEIJING_NOW.replace(day=1) - timedelta(days=1):%Y-%m}"     # past its cut-off day
FINANCE = {SUB: 403, ADMIN: 403}       # batches, the ledger, the figures, the 公示: the union officer role's


def _delivery_cases(app, w, caller):
    """A0002's request approved as a gift (every officer of 甲 delivers it); B0001's for the sub-union officer."""
    if caller not in OFFICERS:
        return Req(f"/api/v1/officer/condolences/{MISSING}/delivered", {"delivered_on": "2026-01-01"}), None

    def make(w):
        seen = a_condolence(w, "A0002", **GIFT_APPROVED)
        return seen, (a_condolence(w, "B0001", **GIFT_APPROVED) if caller is SUB else MISSING)
    seen, unseen = build(app, w, make)
    body = {"delivered_on": f"{BEIJING_NOW:%Y-%m-%d}"}
    return (Req(f"/api/v1/officer/condolences/{seen}/delivered", body),
            Req(f"/api/v1/officer/condolences/{unseen}/delivered", body))


def _batch_cases(path: str, json: Any = None) -> Callable:
    """The previous month's batch (closed by the union officer), and a missing one."""
    def cases(app, w, caller):
        if caller is not UNION:
            return Req(path.format(MISSING), json), None
        batch = build(app, w, lambda w: payments.close_batch(w.staff(UNION), PREVIOUS_MONTH).id)
        return Req(path.format(batch), json), Req(path.format(MISSING), json)
    return cases


def _type_cases(app, w, caller):
    kind = build(app, w, lambda w: rates.all_types()[0].id)
    return (Req(f"/api/v1/officer/condolence-types/{kind}", {"never_disclosed": True}),
            Req(f"/api/v1/officer/condolence-types/{MISSING}", {"never_disclosed": True}))


def _visit_plan(w: World) -> dict[str, int]:
    """This year's plan with a retiree in 甲 and one in 乙: their visit ids."""
    for employee_no, sub_union in (("R0001", "甲分工会"), ("R0002", "乙分工会")):
        roster.upsert_staff(employee_no, roster.StaffFields(name="退休教师", sub_union=sub_union,
                                                             status=StaffStatus.RETIRED), actor_label="matrix")
    plan = visits.create_plan(w.staff(UNION), visits.PlanFields(year=BEIJING_NOW.year))
    return {v.retiree.employee_no: v.id for v in visits.visits_of(w.staff(UNION), plan)}


def _visit_cases(action: str = "", json: Any = None) -> Callable:
    """A visit route on the 甲 retiree's visit (every officer's), and on the 乙 retiree's (the sub-union officer) or
    a missing one."""
    def cases(app, w, caller):
        path = f"/api/v1/officer/visit-plans/{BEIJING_NOW.year}/visits/{{}}" + (f"/{action}" if action else "")
        if caller not in OFFICERS:
            return Req(path.format(MISSING), json), None
        ids = build(app, w, _visit_plan)
        return Req(path.format(ids["R0001"]), json), Req(path.format(ids["R0002"] if caller is SUB else MISSING), json)
    return cases


def _plan_cases(app, w, caller):
    if caller in OFFICERS:
        build(app, w, _visit_plan)
    return (Req(f"/api/v1/officer/visit-plans/{BEIJING_NOW.year}"),
            Req(f"/api/v1/officer/visit-plans/{BEIJING_NOW.year + 1}"))


def a_claim(w: World, employee_no: str, status: ClaimStatus | None = None, document: bool = False) -> Any:
    """A claim filed by the union officer for a member (moved to `status`), with a document: its id, or (id, file)."""
    claim = claims.file_claim(w.staff(UNION), claims.ClaimFields(
        employee_no=employee_no, plan="住院医疗互助保障", filed_on=BEIJING_NOW.date(), description="住院"))
    file_id = claims.add_document(w.staff(UNION), claim.id, "诊断证明.png", PNG).id if document else None
    if status is not None:
        claim.status = status
    db.session.flush()
    return (claim.id, file_id) if document else claim.id


def _claim_cases(path: str, json: Any = None, status: ClaimStatus | None = None, document: bool = False,
                 files: Callable | None = None) -> Callable:
    """A claim route. Seen: staff and admins their own claim, officers A0002's (甲). Unseen: A0002's (staff,
    admins), B0001's (the sub-union officer), a missing one (union officers)."""
    def cases(app, w, caller):
        own = caller in (STAFF, ADMIN)
        missing = (MISSING, MISSING) if document else MISSING

        def make(w):
            seen = a_claim(w, OWN_NO[caller] if own else "A0002", status, document)
            other = "A0002" if own else ("B0001" if caller is SUB else None)
            return seen, (a_claim(w, other, status, document) if other else missing)
        seen, unseen = build(app, w, make) if caller in (STAFF, SUB, UNION, ADMIN) else (missing, None)
        return (Req(path.format(*_tuple(seen)), json, files() if files else None),
                Req(path.format(*_tuple(unseen)), json, files() if files else None) if unseen is not None else None)
    return cases


TRACKERS = {SUB: 403, ADMIN: 403}      # only union officers change a claim
PERIOD = f"start={BEIJING_NOW.year}-01-01&end={BEIJING_NOW.year}-12-31"
RATE = {"type": "本人住院", "member_category": "在职", "amount_fen": 60000, "ceiling_fen": 100000, "times_per_year": 2,
        "effective_from": "2027-01-01"}
REVIEWERS_ONLY = {ADMIN: 403}       # an admin alone manages rates and keys, and reads no request


# --- the rows ------------------------------------------------------------------------------------------------------

@dataclass
class Req:
    path: str
    json: Any = None
    files: dict | None = None


@dataclass
class Row:
    gate: Caller
    # (world, caller) -> (request on a record the caller may see, request on one they may not, or None)
    cases: Callable[[Any, World, Caller], tuple[Req, Req | None]]
    expect: dict[Caller, int] = field(default_factory=dict)   # a status other than 2xx for an admitted caller


def plain(path: str, json: Any = None) -> Callable:
    return lambda app, w, caller: (Req(path, json), None)


def staff_view(path: str, make: Callable[[World, str], Any], json: Any = None) -> Callable:
    """A staff route on a record addressed to everyone (seen) or to 乙 only (not seen)."""
    def cases(app, w, caller):
        seen, unseen = build(app, w, lambda w: (make(w, "all"), make(w, "乙分工会")))
        return Req(path.format(*_tuple(seen)), json), Req(path.format(*_tuple(unseen)), json)
    return cases


def managed(path: str, make: Callable[[World, Caller, str], Any], json: Any = None, files: Callable | None = None,
            missing: Any = MISSING) -> Callable:
    """An officer route on a record addressed to 甲 by the sub-union officer (seen by every officer), and on the
    union officer's union-wide record (the sub-union officer) or a missing one (union officers and admins)."""
    def cases(app, w, caller):
        def make_both(w):
            seen = make(w, SUB, "甲分工会")
            return seen, (make(w, UNION, "all") if caller is SUB else missing)
        seen, unseen = build(app, w, make_both) if caller in OFFICERS else (missing, missing)
        return (Req(path.format(*_tuple(seen)), json, files() if files else None),
                Req(path.format(*_tuple(unseen)), json, files() if files else None))
    return cases


def member_record(path: str, json: Any = None) -> Callable:
    """An officer route on a staff record: A0002 of 甲 (seen by every officer); B0001 of 乙 (the sub-union
    officer) or a missing 工号 (union officers and admins)."""
    return lambda app, w, caller: (Req(path.format("A0002"), json),
                                   Req(path.format("B0001" if caller is SUB else "NOPE99"), json))


def _tuple(value) -> tuple:
    return value if isinstance(value, tuple) else (value,)


def _inbox_cases(app, w, caller):
    own = {STAFF: "S0001", SUB: "O0001", UNION: "U0001", ADMIN: "D0001"}.get(caller, "S0001")
    seen, unseen = build(app, w, lambda w: (personal_notice(w, own), personal_notice(w, "A0002")))
    return Req(f"/api/v1/inbox/{seen}/read"), Req(f"/api/v1/inbox/{unseen}/read")


def _proxy_cancel_cases(app, w, caller):
    def make(w):
        seen = an_event(w, UNION, "all", signed_up="A0002")
        if caller is SUB:
            return seen, (an_event(w, UNION, "all", signed_up="B0001"), "B0001")
        return seen, (MISSING, "A0002")
    seen, (unseen, member) = build(app, w, make) if caller in OFFICERS else (MISSING, (MISSING, "A0002"))
    return (Req(f"/api/v1/officer/events/{seen}/signups/A0002/cancel"),
            Req(f"/api/v1/officer/events/{unseen}/signups/{member}/cancel"))


def _checkin_cases(app, w, caller):
    def make(w):
        seen = an_event(w, SUB, "甲分工会", signed_up="A0002", **STARTING_SOON)
        unseen = an_event(w, UNION, "all", signed_up="A0002", **STARTING_SOON) if caller is SUB else MISSING
        return (seen, checkin_code(seen, "A0002")), (unseen, checkin_code(seen, "A0002"))
    (seen, code), (unseen, _) = build(app, w, make) if caller in OFFICERS else ((MISSING, "x"), (MISSING, "x"))
    return (Req(f"/api/v1/officer/events/{seen}/checkin", {"code": code}),
            Req(f"/api/v1/officer/events/{unseen}/checkin", {"code": code}))


NOW = datetime.now(timezone.utc)
STARTING_SOON = {"signup_closes_at": (NOW + timedelta(minutes=30)).isoformat(),   # check-in is open
                 "starts_at": (NOW + timedelta(hours=1)).isoformat(), "ends_at": (NOW + timedelta(hours=3)).isoformat()}


def _png():
    return {"file": (io.BytesIO(PNG), "照片.png")}


def _campaign_body() -> dict:
    now = datetime.now(timezone.utc)
    return {"occasion": "mid_autumn", "year": now.year, "gift": "月饼一盒", "pickup_place": "工会办公室",
            "pickup_start": now.isoformat(), "pickup_end": (now + timedelta(days=3)).isoformat()}


def _role_cases(action: str) -> Callable:
    def cases(app, w, caller):
        body = {"role": "sub_union_officer", "sub_union_id": w.sub_unions["甲分工会"]}
        return (Req(f"/api/v1/officer/staff/A0002/roles/{action}", body),
                Req(f"/api/v1/officer/staff/NOPE99/roles/{action}", body))
    return cases


def _event_make(**kwargs) -> Callable:
    return lambda w, by, to: an_event(w, by, to, **kwargs)


def _announcement_make(**kwargs) -> Callable:
    return lambda w, by, to: an_announcement(w, by, to, **kwargs)[0]


def _announcement_file(w, by, to):
    return an_announcement(w, by, to, attach=True)


BIND_BODY = {"employee_no": "W0001", "name": "待绑定", "phone_code": "phone:13800000001"}
ALREADY_BOUND = {c: 409 for c in (STAFF, SUB, UNION, ADMIN, CASHIER)}   # members, and a cashier: never both

ROUTES: dict[tuple[str, str], Row] = {
    # login and binding; the caller's own profile
    ("POST", "/api/v1/auth/login"): Row(ANON, plain("/api/v1/auth/login", {"code": "code:openid-new"})),
    ("POST", "/api/v1/auth/bind"): Row(WECHAT, plain("/api/v1/auth/bind", BIND_BODY), ALREADY_BOUND),
    ("GET", "/api/v1/me"): Row(STAFF, plain("/api/v1/me")),
    ("PATCH", "/api/v1/me"): Row(STAFF, plain("/api/v1/me", {"birthday_calendar": "lunar"})),
    ("POST", "/api/v1/me/mp-link-code"): Row(STAFF, plain("/api/v1/me/mp-link-code")),
    # the inbox
    ("GET", "/api/v1/inbox"): Row(STAFF, plain("/api/v1/inbox")),
    ("GET", "/api/v1/inbox/unread-count"): Row(STAFF, plain("/api/v1/inbox/unread-count")),
    ("POST", "/api/v1/inbox/<int:notice_id>/read"): Row(STAFF, _inbox_cases),
    ("POST", "/api/v1/inbox/read-all"): Row(STAFF, plain("/api/v1/inbox/read-all")),
    ("POST", "/api/v1/subscriptions"): Row(STAFF, plain("/api/v1/subscriptions",
                                                        {"results": {"TPL-MINI-SERVICE": "accept"}})),
    # announcements, as staff
    ("GET", "/api/v1/announcements"): Row(STAFF, plain("/api/v1/announcements")),
    ("GET", "/api/v1/announcements/<int:announcement_id>"): Row(STAFF, staff_view(
        "/api/v1/announcements/{}", lambda w, to: an_announcement(w, UNION, to)[0])),
    ("GET", "/api/v1/announcements/<int:announcement_id>/attachments/<int:attachment_id>"): Row(STAFF, staff_view(
        "/api/v1/announcements/{}/attachments/{}", lambda w, to: an_announcement(w, UNION, to, attach=True))),
    # events, as staff
    ("GET", "/api/v1/events"): Row(STAFF, plain("/api/v1/events")),
    ("GET", "/api/v1/events/mine"): Row(STAFF, plain("/api/v1/events/mine")),
    ("GET", "/api/v1/events/<int:event_id>"): Row(STAFF, staff_view(
        "/api/v1/events/{}", lambda w, to: an_event(w, UNION, to))),
    ("POST", "/api/v1/events/<int:event_id>/signup"): Row(STAFF, staff_view(
        "/api/v1/events/{}/signup", lambda w, to: an_event(w, UNION, to), {"answers": {}})),
    ("POST", "/api/v1/events/<int:event_id>/cancel"): Row(STAFF, lambda app, w, caller: staff_view(
        "/api/v1/events/{}/cancel", lambda w, to: an_event(
            w, UNION, to, signed_up={STAFF: "S0001", SUB: "O0001", UNION: "U0001", ADMIN: "D0001"}.get(caller)
            if to == "all" else None))(app, w, caller)),
    # the roster
    ("GET", "/api/v1/officer/staff"): Row(SUB, plain("/api/v1/officer/staff")),
    ("POST", "/api/v1/officer/staff"): Row(UNION, plain("/api/v1/officer/staff",
                                                        {"employee_no": "N0001", "name": "新同事"})),
    ("PATCH", "/api/v1/officer/staff/<employee_no>"): Row(SUB, member_record(
        "/api/v1/officer/staff/{}", {"department": "新部门"})),
    ("POST", "/api/v1/officer/staff/<employee_no>/roles/grant"): Row(UNION, _role_cases("grant")),
    ("POST", "/api/v1/officer/staff/<employee_no>/roles/revoke"): Row(UNION, _role_cases("revoke")),
    ("POST", "/api/v1/officer/staff/<employee_no>/unbind"): Row(SUB, member_record(
        "/api/v1/officer/staff/{}/unbind")),
    ("POST", "/api/v1/officer/staff/<employee_no>/bind-code"): Row(SUB, member_record(
        "/api/v1/officer/staff/{}/bind-code")),
    ("GET", "/api/v1/officer/sub-unions"): Row(SUB, plain("/api/v1/officer/sub-unions")),
    ("POST", "/api/v1/officer/audiences/preview"): Row(SUB, plain("/api/v1/officer/audiences/preview",
                                                                  {"audience": {}})),
    # holiday gift campaigns
    ("POST", "/api/v1/officer/campaigns"): Row(UNION, lambda app, w, c: (Req("/api/v1/officer/campaigns",
                                                                             _campaign_body()), None)),
    ("GET", "/api/v1/officer/campaigns"): Row(SUB, plain("/api/v1/officer/campaigns")),
    # notices and their delivery
    ("GET", "/api/v1/officer/notices"): Row(SUB, plain("/api/v1/officer/notices")),
    ("POST", "/api/v1/officer/notices"): Row(SUB, plain("/api/v1/officer/notices", {"title": "体检安排"})),
    ("GET", "/api/v1/officer/notices/<int:notice_id>/report"): Row(SUB, managed(
        "/api/v1/officer/notices/{}/report", lambda w, by, to: a_notice(w, to))),
    ("POST", "/api/v1/officer/notices/<int:notice_id>/requeue"): Row(SUB, managed(
        "/api/v1/officer/notices/{}/requeue", lambda w, by, to: a_notice(w, to))),
    # announcements, as officers
    ("GET", "/api/v1/officer/announcements"): Row(SUB, plain("/api/v1/officer/announcements")),
    ("POST", "/api/v1/officer/announcements"): Row(SUB, plain("/api/v1/officer/announcements",
                                                              {"title": "通知", "body": "正文"})),
    ("GET", "/api/v1/officer/announcements/<int:announcement_id>"): Row(SUB, managed(
        "/api/v1/officer/announcements/{}", _announcement_make())),
    ("PATCH", "/api/v1/officer/announcements/<int:announcement_id>"): Row(SUB, managed(
        "/api/v1/officer/announcements/{}", _announcement_make(), {"pinned": True})),
    ("POST", "/api/v1/officer/announcements/<int:announcement_id>/publish"): Row(SUB, managed(
        "/api/v1/officer/announcements/{}/publish", _announcement_make(publish=False))),
    ("POST", "/api/v1/officer/announcements/<int:announcement_id>/withdraw"): Row(SUB, managed(
        "/api/v1/officer/announcements/{}/withdraw", _announcement_make())),
    ("GET", "/api/v1/officer/announcements/<int:announcement_id>/reads"): Row(SUB, managed(
        "/api/v1/officer/announcements/{}/reads", _announcement_make())),
    ("POST", "/api/v1/officer/announcements/<int:announcement_id>/attachments"): Row(SUB, managed(
        "/api/v1/officer/announcements/{}/attachments", _announcement_make(publish=False), files=_png)),
    ("GET", "/api/v1/officer/announcements/<int:announcement_id>/attachments/<int:attachment_id>"): Row(
        SUB, managed("/api/v1/officer/announcements/{}/attachments/{}", _announcement_file,
                     missing=(MISSING, MISSING))),
    # events, as officers
    ("GET", "/api/v1/officer/events"): Row(SUB, plain("/api/v1/officer/events")),
    ("POST", "/api/v1/officer/events"): Row(SUB, lambda app, w, c: (Req("/api/v1/officer/events", event_body()),
                                                                    None)),
    ("GET", "/api/v1/officer/events/<int:event_id>"): Row(SUB, managed(
        "/api/v1/officer/events/{}", _event_make())),
    ("PATCH", "/api/v1/officer/events/<int:event_id>"): Row(SUB, managed(
        "/api/v1/officer/events/{}", _event_make(), {"place": "新体育馆"})),
    ("POST", "/api/v1/officer/events/<int:event_id>/publish"): Row(SUB, managed(
        "/api/v1/officer/events/{}/publish", _event_make(publish=False), {"notify": False})),
    ("POST", "/api/v1/officer/events/<int:event_id>/close"): Row(SUB, managed(
        "/api/v1/officer/events/{}/close", _event_make())),
    ("POST", "/api/v1/officer/events/<int:event_id>/cancel"): Row(SUB, managed(
        "/api/v1/officer/events/{}/cancel", _event_make(), {"reason": "天气原因"})),
    ("GET", "/api/v1/officer/events/<int:event_id>/signups"): Row(SUB, managed(
        "/api/v1/officer/events/{}/signups", _event_make())),
    ("GET", "/api/v1/officer/events/<int:event_id>/signups.xlsx"): Row(SUB, managed(
        "/api/v1/officer/events/{}/signups.xlsx", _event_make())),
    ("POST", "/api/v1/officer/events/<int:event_id>/signups"): Row(SUB, lambda app, w, caller: staff_view(
        "/api/v1/officer/events/{}/signups", lambda w, to: an_event(w, UNION, to),
        {"employee_no": "A0002", "answers": {}})(app, w, caller)),
    ("POST", "/api/v1/officer/events/<int:event_id>/signups/<employee_no>/cancel"): Row(SUB, _proxy_cancel_cases),
    ("POST", "/api/v1/officer/events/<int:event_id>/checkin"): Row(SUB, _checkin_cases),
    # birthday cake vouchers
    ("GET", "/api/v1/vouchers"): Row(STAFF, plain("/api/v1/vouchers")),
    ("GET", "/api/v1/vouchers/<int:voucher_id>"): Row(STAFF, _own_voucher_cases("/api/v1/vouchers/{}")),
    ("POST", "/api/v1/vouchers/<int:voucher_id>/show"): Row(STAFF, _own_voucher_cases("/api/v1/vouchers/{}/show")),
    ("GET", "/api/v1/vouchers/<int:voucher_id>/qr.svg"): Row(STAFF, _own_voucher_cases(
        "/api/v1/vouchers/{}/qr.svg")),
    ("GET", "/api/v1/officer/vouchers"): Row(SUB, plain("/api/v1/officer/vouchers")),
    ("POST", "/api/v1/officer/vouchers/<int:voucher_id>/void"): Row(UNION, _officer_voucher_cases(
        "/api/v1/officer/vouchers/{}/void", {"reason": "重复发放"})),
    ("POST", "/api/v1/officer/vouchers/<int:voucher_id>/print"): Row(SUB, _officer_voucher_cases(
        "/api/v1/officer/vouchers/{}/print")),
    ("POST", "/api/v1/officer/vouchers/<int:voucher_id>/reissue"): Row(UNION, _officer_voucher_cases(
        "/api/v1/officer/vouchers/{}/reissue", {"reason": "核实后补发"}, voided=True)),
    ("POST", "/api/v1/officer/vouchers/move-to-current-merchant"): Row(UNION, plain(
        "/api/v1/officer/vouchers/move-to-current-merchant", {"year": NOW.year})),
    ("GET", "/api/v1/officer/vouchers/summary"): Row(UNION, plain(f"/api/v1/officer/vouchers/summary?year={NOW.year}")),
    ("GET", "/api/v1/officer/voucher-policy"): Row(SUB, plain("/api/v1/officer/voucher-policy")),
    # the bakery's counter
    ("POST", "/api/v1/cashier/bind"): Row(WECHAT, lambda app, w, c: (Req("/api/v1/cashier/bind",
                                                                          {"code": w.made["cashier_code"]}), None),
                                          ALREADY_BOUND),
    ("GET", "/api/v1/cashier/me"): Row(CASHIER, plain("/api/v1/cashier/me")),
    ("POST", "/api/v1/cashier/redeem"): Row(CASHIER, _redeem_cases),
    ("GET", "/api/v1/cashier/redemptions/today"): Row(CASHIER, plain("/api/v1/cashier/redemptions/today")),
    ("POST", "/api/v1/cashier/redemptions/<int:voucher_id>/undo"): Row(CASHIER, _undo_cases(
        "/api/v1/cashier/redemptions/{}/undo")),
    ("GET", "/api/v1/cashier/statements/<month>"): Row(CASHIER, plain(f"/api/v1/cashier/statements/{MONTH}")),
    ("POST", "/api/v1/officer/vouchers/<int:voucher_id>/undo-redemption"): Row(UNION, _undo_cases(
        "/api/v1/officer/vouchers/{}/undo-redemption")),
    ("GET", "/api/v1/officer/merchants/<int:merchant_id>/statements/<month>"): Row(SUB, _merchant_cases(
        "/api/v1/officer/merchants/{}/statements/" + MONTH)),
    ("GET", "/api/v1/officer/merchants/<int:merchant_id>/statements/<month>.xlsx"): Row(SUB, _merchant_cases(
        "/api/v1/officer/merchants/{}/statements/" + MONTH + ".xlsx")),
    ("POST", "/api/v1/officer/merchants/<int:merchant_id>/statements/<month>/close"): Row(UNION, _merchant_cases(
        "/api/v1/officer/merchants/{}/statements/" + MONTH + "/close")),
    ("GET", "/api/v1/officer/merchants"): Row(SUB, plain("/api/v1/officer/merchants")),
    ("POST", "/api/v1/officer/merchants"): Row(UNION, plain("/api/v1/officer/merchants",
                                                            {"name": "新蛋糕店", "shops": ["一店"]})),
    ("POST", "/api/v1/officer/merchants/<int:merchant_id>/deactivate"): Row(UNION, _merchant_cases(
        "/api/v1/officer/merchants/{}/deactivate")),
    ("POST", "/api/v1/officer/merchants/<int:merchant_id>/cashier-codes"): Row(UNION, _merchant_cases(
        "/api/v1/officer/merchants/{}/cashier-codes", {"shop": "总店", "name": "收银员小李"})),
    ("GET", "/api/v1/officer/merchants/<int:merchant_id>/cashiers"): Row(SUB, _merchant_cases(
        "/api/v1/officer/merchants/{}/cashiers")),
    ("POST", "/api/v1/officer/merchants/<int:merchant_id>/cashiers/<int:cashier_id>/revoke"): Row(
        UNION, lambda app, w, c: (Req(f"/api/v1/officer/merchants/{w.made['merchant_id']}/cashiers/"
                                      f"{w.made['cashier_id']}/revoke"),
                                  Req(f"/api/v1/officer/merchants/{w.made['merchant_id']}/cashiers/{MISSING}/revoke"))),
    ("PUT", "/api/v1/officer/voucher-policy"): Row(UNION, plain("/api/v1/officer/voucher-policy",
                                                                {"merchant": "好利来（学院路店）"})),
    # condolences, as members (tests/test_condolence_privacy.py adds the applicant, the member and the rest)
    ("GET", "/api/v1/condolences/types"): Row(STAFF, plain("/api/v1/condolences/types")),
    ("POST", "/api/v1/condolences"): Row(STAFF, _file_own_cases),
    ("GET", "/api/v1/condolences"): Row(STAFF, plain("/api/v1/condolences")),
    ("GET", "/api/v1/condolences/<int:request_id>"): Row(STAFF, _own_condolence_cases("/api/v1/condolences/{}")),
    ("POST", "/api/v1/condolences/<int:request_id>/attachments"): Row(STAFF, _own_condolence_cases(
        "/api/v1/condolences/{}/attachments", files=_png)),
    ("GET", "/api/v1/condolences/<int:request_id>/attachments/<int:file_id>"): Row(STAFF, _own_condolence_cases(
        "/api/v1/condolences/{}/attachments/{}", attach=True)),
    ("POST", "/api/v1/condolences/<int:request_id>/resubmit"): Row(STAFF, _own_condolence_cases(
        "/api/v1/condolences/{}/resubmit", {"description": "已补充"}, CondolenceStatus.RETURNED)),
    ("POST", "/api/v1/condolences/<int:request_id>/withdraw"): Row(STAFF, _own_condolence_cases(
        "/api/v1/condolences/{}/withdraw")),
    # condolences, as reviewers; rates and types, as admins
    ("GET", "/api/v1/officer/condolences"): Row(SUB, plain("/api/v1/officer/condolences"), REVIEWERS_ONLY),
    ("POST", "/api/v1/officer/condolences"): Row(SUB, _file_for_member_cases, {ADMIN: 404}),
    ("POST", "/api/v1/officer/condolences/<int:request_id>/verify"): Row(SUB, _review_cases(
        "/api/v1/officer/condolences/{}/verify"), {ADMIN: 404}),
    ("POST", "/api/v1/officer/condolences/<int:request_id>/return"): Row(SUB, _review_cases(
        "/api/v1/officer/condolences/{}/return", {"missing": "出院记录"}), {ADMIN: 404}),
    ("POST", "/api/v1/officer/condolences/<int:request_id>/reject"): Row(SUB, _review_cases(
        "/api/v1/officer/condolences/{}/reject", {"reason": "不符合"}), {ADMIN: 404}),
    ("POST", "/api/v1/officer/condolences/<int:request_id>/approve"): Row(SUB, _review_cases(
        "/api/v1/officer/condolences/{}/approve", {"payment": "money"}, verified=True), {SUB: 403, ADMIN: 404}),
    ("GET", "/api/v1/officer/condolence-rates"): Row(SUB, plain("/api/v1/officer/condolence-rates")),
    ("PUT", "/api/v1/officer/condolence-rates"): Row(ADMIN, plain("/api/v1/officer/condolence-rates", RATE)),
    ("POST", "/api/v1/officer/condolence-types"): Row(ADMIN, plain("/api/v1/officer/condolence-types", {
        "name": "子女重大疾病", "label": "大病慰问", "subject": "relative"})),
    ("PATCH", "/api/v1/officer/condolence-types/<int:type_id>"): Row(ADMIN, _type_cases),
    # condolences paid: batches, gifts delivered, the ledger, the figures, the 公示
    ("GET", "/api/v1/officer/condolence-batches"): Row(SUB, plain("/api/v1/officer/condolence-batches"), FINANCE),
    ("POST", "/api/v1/officer/condolence-batches"): Row(SUB, plain("/api/v1/officer/condolence-batches",
                                                                   {"month": PREVIOUS_MONTH}), FINANCE),
    ("GET", "/api/v1/officer/condolence-batches/<int:batch_id>"): Row(SUB, _batch_cases(
        "/api/v1/officer/condolence-batches/{}"), FINANCE),
    ("GET", "/api/v1/officer/condolence-batches/<int:batch_id>.xlsx"): Row(SUB, _batch_cases(
        "/api/v1/officer/condolence-batches/{}.xlsx"), FINANCE),
    ("POST", "/api/v1/officer/condolence-batches/<int:batch_id>/paid"): Row(SUB, _batch_cases(
        "/api/v1/officer/condolence-batches/{}/paid", {"paid_on": "2026-01-05", "method": "cash", "handled_by": "会计"}),
        FINANCE),
    ("POST", "/api/v1/officer/condolences/<int:request_id>/delivered"): Row(SUB, _delivery_cases, {ADMIN: 404}),
    ("GET", "/api/v1/officer/condolence-ledger.xlsx"): Row(SUB, plain(f"/api/v1/officer/condolence-ledger.xlsx?{PERIOD}"),
                                                           FINANCE),
    ("GET", "/api/v1/officer/condolence-figures"): Row(SUB, plain(f"/api/v1/officer/condolence-figures?{PERIOD}"),
                                                       FINANCE),
    ("POST", "/api/v1/officer/condolence-disclosures"): Row(SUB, plain("/api/v1/officer/condolence-disclosures",
                                                                       {"year": NOW.year, "quarter": 1}), FINANCE),
    # mutual-aid claims
    ("GET", "/api/v1/mutual-aid-claims"): Row(STAFF, plain("/api/v1/mutual-aid-claims")),
    ("GET", "/api/v1/officer/mutual-aid-claims"): Row(SUB, plain("/api/v1/officer/mutual-aid-claims"), REVIEWERS_ONLY),
    ("POST", "/api/v1/officer/mutual-aid-claims"): Row(SUB, plain("/api/v1/officer/mutual-aid-claims", {
        "employee_no": "A0002", "plan": "住院医疗互助保障", "filed_on": f"{BEIJING_NOW:%Y-%m-%d}"}), FINANCE),
    ("GET", "/api/v1/mutual-aid-claims/<int:claim_id>"): Row(STAFF, _claim_cases("/api/v1/mutual-aid-claims/{}")),
    ("GET", "/api/v1/mutual-aid-claims/<int:claim_id>/documents/<int:file_id>"): Row(STAFF, _claim_cases(
        "/api/v1/mutual-aid-claims/{}/documents/{}", document=True)),
    ("POST", "/api/v1/officer/mutual-aid-claims/<int:claim_id>/documents"): Row(SUB, _claim_cases(
        "/api/v1/officer/mutual-aid-claims/{}/documents", files=_png), TRACKERS),
    ("POST", "/api/v1/officer/mutual-aid-claims/<int:claim_id>/submitted"): Row(SUB, _claim_cases(
        "/api/v1/officer/mutual-aid-claims/{}/submitted", {"submitted_on": f"{BEIJING_NOW:%Y-%m-%d}"}), TRACKERS),
    ("POST", "/api/v1/officer/mutual-aid-claims/<int:claim_id>/paid"): Row(SUB, _claim_cases(
        "/api/v1/officer/mutual-aid-claims/{}/paid", {"paid_on": f"{BEIJING_NOW:%Y-%m-%d}", "amount_fen": 100000},
        ClaimStatus.SUBMITTED), TRACKERS),
    ("POST", "/api/v1/officer/mutual-aid-claims/<int:claim_id>/refused"): Row(SUB, _claim_cases(
        "/api/v1/officer/mutual-aid-claims/{}/refused", {"refused_on": f"{BEIJING_NOW:%Y-%m-%d}", "reason": "不符合"},
        ClaimStatus.SUBMITTED), TRACKERS),
    # retiree visits
    ("POST", "/api/v1/officer/visit-plans"): Row(SUB, plain("/api/v1/officer/visit-plans", {"year": NOW.year}), FINANCE),
    ("GET", "/api/v1/officer/visit-plans/<int:year>"): Row(SUB, _plan_cases, REVIEWERS_ONLY),
    ("GET", "/api/v1/officer/visit-plans/<int:year>/visits/<int:visit_id>"): Row(SUB, _visit_cases(), REVIEWERS_ONLY),
    ("POST", "/api/v1/officer/visit-plans/<int:year>/visits/<int:visit_id>/assign"): Row(SUB, _visit_cases(
        "assign", {"employee_no": "O0001"}), REVIEWERS_ONLY),
    ("POST", "/api/v1/officer/visit-plans/<int:year>/visits/<int:visit_id>/visited"): Row(SUB, _visit_cases(
        "visited", {"visited_on": f"{BEIJING_NOW:%Y-%m-%d}", "gift": "米、油各一份"}), REVIEWERS_ONLY),
    ("POST", "/api/v1/officer/visit-plans/<int:year>/visits/<int:visit_id>/skip"): Row(SUB, _visit_cases(
        "skip", {"reason": "已迁居外地"}), REVIEWERS_ONLY),
}


def api_routes(app) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_route_has_a_row(app):
    routes = api_routes(app)
    rows = set(ROUTES) | PROPOSAL_ROUTES
    assert sorted(routes - rows - NOT_API_OPERATIONS) == [], "routes without rows in the matrix"
    assert sorted(rows - routes) == [], "rows for routes that do not exist"


def test_routes_that_are_not_api_operations_answer_anyone(client):
    for method, path in sorted(NOT_API_OPERATIONS):
        if "<" in path or path == "/wechat/mp":      # /wechat/mp is for WeChat's signed pushes only
            continue
        assert client.open(path, method=method, follow_redirects=True).status_code == 200, path


def _refusal_below_gate(caller: Caller, gate: Caller) -> int:
    if caller is ANON or (caller is WECHAT and gate not in (WECHAT, CASHIER)):
        return 401
    return 403                      # members on cashier routes, cashiers on member and officer routes, ranks


def _send(client, method: str, req: Req, token: str | None):
    headers = bearer(token) if token else {}
    if req.files is not None:
        return client.open(req.path, method=method, data=req.files, headers=headers,
                           content_type="multipart/form-data")
    if req.json is None and method != "GET":
        return client.open(req.path, method=method, headers=headers)
    return client.open(req.path, method=method, json=req.json if method != "GET" else None, headers=headers)


MATRIX = [(method, rule, caller) for (method, rule) in ROUTES for caller in CALLERS]


@pytest.mark.parametrize(("method", "rule", "caller"), MATRIX,
                         ids=[f"{m} {r} as {c.value}" for m, r, c in MATRIX])
def test_matrix(app, client, world, method, rule, caller):
    row = ROUTES[(method, rule)]
    token = world.tokens.get(caller)
    let_in = admitted(caller, row.gate)
    seen, unseen = row.cases(app, world, caller if let_in or caller in OFFICERS else STAFF)
    response = _send(client, method, seen, token)
    if not let_in:
        assert response.status_code == _refusal_below_gate(caller, row.gate), response.get_data(as_text=True)
        return
    wanted = row.expect.get(caller)
    if wanted is not None:
        assert response.status_code == wanted, response.get_data(as_text=True)
        return
    assert 200 <= response.status_code < 300, response.get_data(as_text=True)
    if response.is_json:
        assert "error" not in response.json
    if unseen is not None:
        response = _send(client, method, unseen, token)
        assert response.status_code == 404, response.get_data(as_text=True)
        assert response.json["error"]["code"].endswith("not_found")
