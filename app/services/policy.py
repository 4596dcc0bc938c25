"""Who may see and do what, for every area: the one place that decides.

Kinds of caller (`Caller`): someone anonymous, a WeChat user not yet bound to the roster, staff, sub-union officers,
union officers and admins. A new kind of caller (a bakery's cashier, a department liaison) is one entry in `Caller`
(and `RANKS` when it is a role), plus the rules below that name it.

Each rule has one form per use, over the same facts:
- `ensure_*` for one record or one action, called by services (never only by views): `NotFound` when the caller may
  not see the record at all (a record outside their audience or scope answers 404, so ids reveal nothing),
  `Forbidden` when they may see it but not do this (`higher_role`, union-officer-only actions);
- `*_condition` for lists: a WHERE clause, so a list never shows what a detail would refuse.

Staff-congress proposals have callers of their own beside the ranks: representatives (of a congress term), the
proposal committee and department liaisons (of a department); see that section.

Condolences hold sensitive personal information (PIPL) and follow stricter rules of their own (see that section):
whom a request concerns and the officers who review it, nobody else; an admin alone reads none.

Officers' scope: union officers and admins act for the whole union; a sub-union officer for their sub-unions, and
manages a record (an event, an announcement) only when it is addressed only to those sub-unions *and* was created by
an officer of no higher rank. The sub-unions a record addresses are rows of its join table
(`TargetsAudience.sub_union_links`), so the rule is one portable query.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

from sqlalchemy import and_, exists, false, or_, select, true
from sqlalchemy.sql.elements import BindParameter, ColumnElement

from app.errors import Forbidden, NotFound
from app.extensions import db
from app.services.audiences import Audience, member_kind, visible_to, visible_to_kind
from models import (
    Announcement, AnnouncementStatus, Assignment, CondolenceRequest, CongressSession, CoProposer, Event, EventStatus,
    Notice, Proposal, ProposalStatus, Role, RoleAssignment, Second, Signup, Staff, StaffStatus,
)

if TYPE_CHECKING:
    from app.services.auth import Principal


class Caller(enum.Enum):
    """Kinds of caller, lowest first; the authorization matrix test covers every one of them."""

    ANONYMOUS = "anonymous"
    WECHAT = "wechat"                        # logged in through WeChat, not bound to the roster
    STAFF = "staff"
    SUB_UNION_OFFICER = "sub_union_officer"
    UNION_OFFICER = "union_officer"
    ADMIN = "admin"
    CASHIER = "cashier"                      # a merchant's cashier: a branch of its own, not a rank above admins
    # Staff-congress proposals: roles beside the ranks (a representative may be an officer too)
    REPRESENTATIVE = "representative"
    PROPOSAL_COMMITTEE = "proposal_committee"
    DEPARTMENT_LIAISON = "department_liaison"


RANKS = {Role.SUB_UNION_OFFICER: 1, Role.UNION_OFFICER: 2, Role.ADMIN: 3}
CALLER_OF_ROLE = {Role.SUB_UNION_OFFICER: Caller.SUB_UNION_OFFICER, Role.UNION_OFFICER: Caller.UNION_OFFICER,
                  Role.ADMIN: Caller.ADMIN}
PROPOSAL_CALLERS = {Role.PROPOSAL_COMMITTEE: Caller.PROPOSAL_COMMITTEE, Role.DEPARTMENT_LIAISON: Caller.DEPARTMENT_LIAISON,
                    Role.REPRESENTATIVE: Caller.REPRESENTATIVE}


def caller_of(principal: Principal | None) -> Caller:
    if principal is None:
        return Caller.ANONYMOUS
    if principal.cashier is not None:
        return Caller.CASHIER
    if principal.card is None:
        return Caller.WECHAT
    top = max((r.role for r in principal.card.roles if r.role in RANKS), key=RANKS.get, default=None)
    if top is not None:
        return CALLER_OF_ROLE[top]
    held = {r.role for r in principal.card.roles}
    return next((caller for role, caller in PROPOSAL_CALLERS.items() if role in held), Caller.STAFF)


def ensure_caller_kind(principal: Principal, cashier_route: bool) -> None:
    """Cashiers and members never see each other's routes (a WeChat account is one or the other)."""
    if cashier_route and principal.cashier is None:
        raise Forbidden("仅商户收银员可以使用", code="cashiers_only")
    if not cashier_route and principal.cashier is not None:
        raise Forbidden("收银员账号不能使用此功能", code="not_for_cashiers")


# --- roles, ranks and scopes -----------------------------------------------------------------------------------

def has_role(staff: Staff, role: Role) -> bool:
    return any(r.role is role for r in staff.roles)


def is_union_officer(staff: Staff) -> bool:
    """Union-wide officers; an admin may do everything an officer may."""
    return has_role(staff, Role.UNION_OFFICER) or has_role(staff, Role.ADMIN)


def is_officer(staff: Staff | None) -> bool:
    return staff is not None and (is_union_officer(staff) or has_role(staff, Role.SUB_UNION_OFFICER))


def officer_sub_unions(staff: Staff) -> set[int] | None:
    """The sub-unions an officer acts for: None means the whole union."""
    if is_union_officer(staff):
        return None
    return {r.sub_union_id for r in staff.roles if r.role is Role.SUB_UNION_OFFICER and r.sub_union_id}


def home_sub_unions(officer: Staff) -> list[int]:
    """What "本分工会" means for an officer: the sub-unions they act for, or (a union officer) the one they belong
    to; empty when neither."""
    scope = officer_sub_unions(officer)
    return sorted(scope) if scope else ([officer.sub_union_id] if officer.sub_union_id else [])


def rank(staff: Staff) -> int:
    return max((RANKS[r.role] for r in staff.roles if r.role in RANKS), default=0)


def _roles_above(officer: Staff) -> list[Role]:
    return [role for role, r in RANKS.items() if r > rank(officer)]


def ensure_officer(staff: Staff) -> None:
    if not is_officer(staff):
        raise Forbidden("仅工会工作人员可以进行此操作", code="officer_only")


def ensure_union_officer(staff: Staff) -> None:
    if not is_union_officer(staff):
        raise Forbidden("仅校工会工作人员可以进行此操作", code="union_officer_only")


# --- the roster --------------------------------------------------------------------------------------------------

STAFF_NOT_FOUND = ("找不到该工号的教职工", "staff_not_found")


def staff_condition(officer: Staff) -> ColumnElement[bool]:
    """The staff records an officer may see: their sub-unions' (all for union officers)."""
    scope = officer_sub_unions(officer)
    return true() if scope is None else Staff.sub_union_id.in_(scope)


def ensure_sees_staff(officer: Staff, target: Staff) -> None:
    scope = officer_sub_unions(officer)
    if scope is not None and target.sub_union_id not in scope:
        raise NotFound(*STAFF_NOT_FOUND)


def ensure_may_manage_staff(officer: Staff, target: Staff) -> None:
    """An officer manages staff of their scope, but only those of a lower rank (admins manage everyone):
    otherwise a sub-union officer could unbind a union officer or an admin and take over their account."""
    ensure_sees_staff(officer, target)
    if rank(officer) < RANKS[Role.ADMIN] and rank(target) >= rank(officer):
        raise Forbidden("不能管理与您同级或更高权限的工会干部", code="higher_role")


def ensure_may_edit_staff(officer: Staff, target: Staff, changed_fields: set[str]) -> None:
    ensure_may_manage_staff(officer, target)
    if "sub_union" in changed_fields and not is_union_officer(officer):
        raise Forbidden("仅校工会工作人员可以调整所属分工会", code="union_officer_only")


def ensure_may_change_role(officer: Staff, role: Role) -> None:
    """Officers' roles: union officers grant and revoke the sub-union officer role; higher roles only from the
    server's command line."""
    ensure_union_officer(officer)
    if role in PROPOSAL_CALLERS:
        raise Forbidden("教代会代表、提案委员和部门联络人请在提案工作中设置", code="proposal_role")
    if role is not Role.SUB_UNION_OFFICER:
        raise Forbidden("校工会干部和管理员角色只能在服务器命令行授予", code="cli_only_role")


# --- audiences an officer addresses ------------------------------------------------------------------------------

def ensure_covers_sub_union(officer: Staff, sub_union_id: int | None) -> None:
    """An officer names only sub-unions of their scope (places per sub-union, an audience)."""
    scope = officer_sub_unions(officer)
    if scope is not None and sub_union_id not in scope:
        raise Forbidden("超出您所在分工会的管理范围", code="out_of_scope")


def restrict_audience(officer: Staff, audience: Audience) -> Audience:
    """A sub-union officer addresses only their own sub-unions: an audience without sub-unions becomes theirs,
    one naming others is refused."""
    scope = officer_sub_unions(officer)
    if scope is None:
        return audience
    if not audience.sub_union_ids:
        return audience.model_copy(update={"sub_union_ids": sorted(scope)})
    if not set(audience.sub_union_ids) <= scope:
        raise Forbidden("只能向本分工会的会员发送", code="out_of_scope")
    return audience


# --- records addressed to an audience (events, announcements) -----------------------------------------------------

CREATORS = {Event: Event.created_by_id, Announcement: Announcement.author_id}
NOT_FOUND = {Event: ("找不到该活动", "event_not_found"), Announcement: ("找不到该公告", "announcement_not_found")}


def managed_condition(model, officer: Staff) -> ColumnElement[bool]:
    """The rows of an addressed model an officer manages (see the module's docstring)."""
    scope = officer_sub_unions(officer)
    if scope is None:
        return true()
    links = model.sub_union_links
    addressed = exists().where(links.c.target_id == model.id)
    elsewhere = exists().where(links.c.target_id == model.id, links.c.sub_union_id.not_in(scope))
    by_higher_rank = exists().where(RoleAssignment.staff_id == CREATORS[model],
                                    RoleAssignment.role.in_(_roles_above(officer)))
    return and_(addressed, ~elsewhere, ~by_higher_rank)


def ensure_manages(model, officer: Staff, record_id: int) -> None:
    ensure_officer(officer)
    if not _exists(model, record_id, managed_condition(model, officer)):
        raise NotFound(*NOT_FOUND[model])


def manages(model, officer: Staff, record_id: int) -> bool:
    return is_officer(officer) and _exists(model, record_id, managed_condition(model, officer))


def _exists(model, record_id: int, condition: ColumnElement[bool]) -> bool:
    return db.session.scalar(select(model.id).where(model.id == record_id, condition)) is not None


# --- what staff may read -------------------------------------------------------------------------------------------

def event_visible_condition(staff: Staff) -> ColumnElement[bool]:
    """Staff see a published event (also once closed, finished or cancelled) when its audience includes them or
    they hold a signup for it."""
    return event_visible_to(member_kind(staff), staff.id)


def event_visible_to(kind: tuple, viewer: int | BindParameter) -> ColumnElement[bool]:
    """The same for a kind of member (audiences.member_kind) and `viewer`, their staff id or a bind parameter that
    stands for it in a statement built once per kind."""
    signed_up = exists().where(Signup.event_id == Event.id, Signup.staff_id == viewer)
    return and_(Event.status != EventStatus.DRAFT, or_(visible_to_kind(Event, kind), signed_up))


def announcement_visible_condition(staff: Staff) -> ColumnElement[bool]:
    return and_(Announcement.status == AnnouncementStatus.PUBLISHED, visible_to(Announcement, staff))


def ensure_sees_event(staff: Staff, event_id: int) -> None:
    if not _exists(Event, event_id, event_visible_condition(staff)):
        raise NotFound(*NOT_FOUND[Event])


# --- vouchers -----------------------------------------------------------------------------------------------------

def holds_voucher(staff: Staff, voucher) -> bool:
    """A voucher is seen only by its holder (and the officers of their sub-union)."""
    return voucher.staff_id == staff.id


def sees_voucher(officer: Staff, voucher) -> bool:
    scope = officer_sub_unions(officer)
    return is_officer(officer) and (scope is None or voucher.staff.sub_union_id in scope)


# --- notices and their delivery reports ------------------------------------------------------------------------

def oversees_notice(officer: Staff, notice: Notice) -> bool:
    """Union officers follow every notice; a sub-union officer those addressed only to their sub-unions."""
    if not is_officer(officer):
        return False
    scope = officer_sub_unions(officer)
    if scope is None:
        return True
    named = set(Audience.model_validate(notice.audience or {}).sub_union_ids) if notice.audience else set()
    return bool(named) and named <= scope


def ensure_oversees_notice(officer: Staff, notice: Notice) -> None:
    ensure_officer(officer)
    if not oversees_notice(officer, notice):
        raise NotFound("找不到该通知", code="notice_not_found")


# --- condolences: whom a request concerns, and the officers who review it ------------------------------------------

CONDOLENCE_NOT_FOUND = ("找不到该慰问申请", "condolence_not_found")


def reviews_all_condolences(staff: Staff) -> bool:
    """The union officer role itself: an admin manages rates and keys but reads no request without it."""
    return has_role(staff, Role.UNION_OFFICER)


def condolence_scope(staff: Staff) -> set[int] | None:
    """The sub-unions whose members' requests an officer reviews: None means all, empty means none."""
    if reviews_all_condolences(staff):
        return None
    return {r.sub_union_id for r in staff.roles if r.role is Role.SUB_UNION_OFFICER and r.sub_union_id}


def _members_of(scope: set[int]):
    return select(Staff.id).where(Staff.sub_union_id.in_(scope))


def condolence_reviewer_condition(officer: Staff) -> ColumnElement[bool]:
    """The requests an officer reviews: those of members of their sub-unions (all, for union officers)."""
    scope = condolence_scope(officer)
    if scope is None:
        return true()
    return CondolenceRequest.staff_id.in_(_members_of(scope)) if scope else false()


def condolence_visible_condition(staff: Staff) -> ColumnElement[bool]:
    """Visible to its applicant, the member it concerns, and the officers who review it."""
    concerns = or_(CondolenceRequest.applicant_id == staff.id, CondolenceRequest.staff_id == staff.id)
    return or_(concerns, condolence_reviewer_condition(staff))


def reviews_condolence(officer: Staff, request: CondolenceRequest) -> bool:
    scope = condolence_scope(officer)
    return scope is None or request.member.sub_union_id in scope


def ensure_sees_condolence(staff: Staff, request: CondolenceRequest) -> None:
    if staff.id not in (request.applicant_id, request.staff_id) and not reviews_condolence(staff, request):
        raise NotFound(*CONDOLENCE_NOT_FOUND)


def ensure_may_file_for(officer: Staff, member: Staff) -> None:
    """An officer files for members of their sub-unions (union officers: anyone)."""
    scope = condolence_scope(officer)
    if scope is not None and member.sub_union_id not in scope:
        raise NotFound(*STAFF_NOT_FOUND)


def ensure_not_concerned(officer: Staff, request: CondolenceRequest, *others: int | None) -> None:
    """Four eyes: nobody reviews a request they filed or that concerns them, nor approves what they verified."""
    if officer.id in (request.applicant_id, request.staff_id, *others):
        raise Forbidden("申请人、当事人和核实人不能审核同一申请，请由其他工会干部办理", code="four_eyes")


def ensure_may_verify(officer: Staff, request: CondolenceRequest) -> None:
    """核实 belongs to an officer of the member's sub-union; a union officer steps in only where that sub-union has
    no officer free to do it (none still serving, or only the applicant or the member themself)."""
    ensure_sees_condolence(officer, request)
    ensure_not_concerned(officer, request)
    sub_union_id = request.member.sub_union_id
    if sub_union_id is not None and any(r.role is Role.SUB_UNION_OFFICER and r.sub_union_id == sub_union_id
                                        for r in officer.roles):
        return
    if not reviews_all_condolences(officer):
        raise Forbidden("仅该会员所在分工会的工会干部可以核实", code="not_the_sub_union")
    if _free_sub_union_officers(request):
        raise Forbidden("该分工会有工会干部可以核实，请由分工会核实", code="sub_union_verifies")


def _free_sub_union_officers(request: CondolenceRequest) -> bool:
    if request.member.sub_union_id is None:
        return False
    return db.session.scalar(select(RoleAssignment.id).join(Staff, Staff.id == RoleAssignment.staff_id).where(
        RoleAssignment.role == Role.SUB_UNION_OFFICER, RoleAssignment.sub_union_id == request.member.sub_union_id,
        RoleAssignment.staff_id.not_in([request.applicant_id, request.staff_id]),
        Staff.status != StaffStatus.LEFT, Staff.died_on.is_(None)).limit(1)) is not None


def ensure_may_approve(officer: Staff, request: CondolenceRequest) -> None:
    ensure_sees_condolence(officer, request)
    if not reviews_all_condolences(officer):
        raise Forbidden("仅校工会工作人员可以审批慰问申请", code="union_officer_only")
    ensure_not_concerned(officer, request, request.verified_by_id)


def ensure_may_manage_rates(staff: Staff) -> None:
    if not has_role(staff, Role.ADMIN):
        raise Forbidden("仅系统管理员可以修改慰问标准", code="admin_only")


# --- staff-congress proposals: representatives, the committee, department liaisons ----------------------------------

PROPOSAL_NOT_FOUND = ("找不到该提案", "proposal_not_found")
PUBLIC_PROPOSAL_STATES = (ProposalStatus.ACCEPTED, ProposalStatus.HANDLING, ProposalStatus.ANSWERED,
                          ProposalStatus.CLOSED)


def on_committee(staff: Staff) -> bool:
    return has_role(staff, Role.PROPOSAL_COMMITTEE)


def ensure_on_committee(staff: Staff) -> None:
    if not on_committee(staff):
        raise Forbidden("仅提案工作委员会委员可以进行此操作", code="committee_only")


def ensure_manages_congress(staff: Staff) -> None:
    """Terms, sessions, representatives, departments and their liaisons: the union's officers and the proposal
    committee."""
    if not (is_union_officer(staff) or on_committee(staff)):
        raise Forbidden("仅校工会工作人员或提案工作委员会委员可以进行此操作", code="committee_only")


def representative_terms(staff: Staff) -> set[int]:
    return {r.term_id for r in staff.roles if r.role is Role.REPRESENTATIVE and r.term_id}


def liaison_departments(staff: Staff) -> set[int]:
    return {r.department_id for r in staff.roles if r.role is Role.DEPARTMENT_LIAISON and r.department_id}


def ensure_representative(staff: Staff, term_id: int) -> None:
    if term_id not in representative_terms(staff):
        raise Forbidden("仅本届教代会代表可以提交和附议提案", code="representatives_only")


def _backs(staff_id: int) -> ColumnElement[bool]:
    seconded = exists().where(Second.proposal_id == Proposal.id, Second.staff_id == staff_id)
    co_proposer = exists().where(CoProposer.proposal_id == Proposal.id, CoProposer.staff_id == staff_id)
    return or_(Proposal.author_id == staff_id, seconded, co_proposer)


def proposal_visible_condition(staff: Staff) -> ColumnElement[bool]:
    """Accepted proposals (立案), their handling and answers are for every member; the rest stay with their author,
    seconders and co-proposers, the committee, the term's representatives while seconds are collected, and (an
    opinion) the department it was forwarded to."""
    if on_committee(staff):
        return true()
    terms = representative_terms(staff)
    collecting = and_(Proposal.status == ProposalStatus.SUBMITTED, Proposal.session_id.in_(
        select(CongressSession.id).where(CongressSession.term_id.in_(terms)))) if terms else false()
    departments = liaison_departments(staff)
    forwarded = and_(Proposal.status == ProposalStatus.OPINION,
                     Proposal.opinion_department_id.in_(departments)) if departments else false()
    return or_(Proposal.status.in_(PUBLIC_PROPOSAL_STATES), _backs(staff.id), collecting, forwarded)


def ensure_sees_proposal(staff: Staff, proposal_id: int) -> None:
    if not _exists(Proposal, proposal_id, proposal_visible_condition(staff)):
        raise NotFound(*PROPOSAL_NOT_FOUND)


def backs_condition(staff: Staff) -> ColumnElement[bool]:
    """The proposals a member wrote, seconded or co-proposes."""
    return _backs(staff.id)


def ensure_author(staff: Staff, proposal: Proposal) -> None:
    if proposal.author_id != staff.id:
        raise Forbidden("仅提案人本人可以进行此操作", code="not_the_author")


def ensure_may_second(staff: Staff, proposal: Proposal) -> None:
    ensure_representative(staff, proposal.session.term_id)
    if proposal.author_id == staff.id:
        raise Forbidden("不能附议自己的提案", code="own_proposal")


def ensure_may_comment(staff: Staff, proposal: Proposal) -> None:
    """The lead proposer rates an answer; co-proposers (merged in) may comment on it too."""
    if proposal.author_id != staff.id and not _exists(Proposal, proposal.id, exists().where(
            CoProposer.proposal_id == Proposal.id, CoProposer.staff_id == staff.id)):
        raise Forbidden("仅提案人和共同提案人可以评论答复", code="not_a_proposer")


def ensure_liaison(staff: Staff) -> None:
    if not liaison_departments(staff):
        raise Forbidden("仅部门提案联络人可以查看交办的提案", code="liaisons_only")


def ensure_handles(staff: Staff, department_id: int) -> None:
    """A department's part (退办, 协办 opinion, 答复) is given by its liaison."""
    if department_id not in liaison_departments(staff):
        raise Forbidden("仅该部门的提案联络人可以办理", code="not_the_department")


def sees_handling(staff: Staff, proposal_id: int) -> bool:
    """The co-handlers' opinions to the lead department are for the committee and the departments handling it."""
    if on_committee(staff):
        return True
    departments = liaison_departments(staff)
    return bool(departments) and db.session.scalar(select(Assignment.id).where(
        Assignment.proposal_id == proposal_id, Assignment.department_id.in_(departments)).limit(1)) is not None
