"""Condolences (慰问), part 1: the types and their rates (one row per version), the requests with their history and
attachments, and each member's count of approvals per type and year.

A request holds health and family information (sensitive personal information under PIPL). The relative's name,
the hospital or place, the description, what reviewers wrote (the material missing, the reason for a rejection or
another amount), an attachment's name and its bytes are sealed (app.services.sealing): those columns hold
ciphertext bound to their row and field, never the text.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, str_enum, utcnow
from models.roster import Staff


class MemberCategory(enum.Enum):
    ACTIVE = "active"          # 在职
    RETIRED = "retired"        # 退休


class CondolenceSubject(enum.Enum):
    SELF = "self"              # the member themself
    RELATIVE = "relative"      # a direct relative of the member


class Relation(enum.Enum):
    SPOUSE = "spouse"                  # 配偶
    PARENT = "parent"                  # 父母
    CHILD = "child"                    # 子女
    PARENT_IN_LAW = "parent_in_law"    # 配偶父母 (only where the union's rules include them)


class CondolenceStatus(enum.Enum):
    SUBMITTED = "submitted"    # 待核实
    RETURNED = "returned"      # 退回补材料
    VERIFIED = "verified"      # 已核实，待审批
    APPROVED = "approved"      # 已批准，待发放
    REJECTED = "rejected"      # 未批准
    WITHDRAWN = "withdrawn"    # 已撤回
    CLOSED = "closed"          # 已发放（part 2）


class PaymentKind(enum.Enum):
    MONEY = "money"            # 慰问金
    GIFT = "gift"              # 慰问品


class BatchStatus(enum.Enum):
    CLOSED = "closed"          # 已结算：名单已定，待财务发放
    PAID = "paid"              # 已发放


class PaymentMethod(enum.Enum):
    CASH = "cash"              # 现金
    TRANSFER = "transfer"      # 转账


class CondolenceBatch(Base):
    """A month's payment batch for finance: the requests approved up to the cut-off and paid in money. Its list is
    fixed when it is closed; marking it paid closes its requests; then it never changes."""

    __tablename__ = "condolence_batches"
    _repr_fields = ("id", "month", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    month: Mapped[str] = mapped_column(String(7), unique=True)          # 2027-03: one batch per month
    cut_off_at: Mapped[datetime]                                        # approved up to this moment
    status: Mapped[BatchStatus] = mapped_column(str_enum(BatchStatus), default=BatchStatus.CLOSED)
    count: Mapped[int] = mapped_column(default=0)
    total_fen: Mapped[int] = mapped_column(default=0)
    closed_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_on: Mapped[date | None]
    method: Mapped[PaymentMethod | None] = mapped_column(str_enum(PaymentMethod, 10))
    handled_by: Mapped[str | None] = mapped_column(String(32))          # 经办人
    marked_paid_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))


class CondolenceType(Base):
    __tablename__ = "condolence_types"
    _repr_fields = ("id", "name")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)         # 本人住院 …: never leaves the request
    label: Mapped[str] = mapped_column(String(32))                     # 住院慰问 …: what others may see
    subject: Mapped[CondolenceSubject] = mapped_column(str_enum(CondolenceSubject, 10))
    never_disclosed: Mapped[bool] = mapped_column(default=False)       # kept out of the 公示 (part 2)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CondolenceRate(Base):
    """What a type pays a member of a category, from a day on. Never changed in place: each change is a new
    version, and a request keeps the version in force on the day of its event."""

    __tablename__ = "condolence_rates"
    __table_args__ = (UniqueConstraint("type_id", "category", "version"),)
    _repr_fields = ("type_id", "category", "version", "amount_fen")

    id: Mapped[int] = mapped_column(primary_key=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("condolence_types.id", ondelete="CASCADE"))
    category: Mapped[MemberCategory] = mapped_column(str_enum(MemberCategory, 10))
    version: Mapped[int]
    amount_fen: Mapped[int]              # the standard amount
    ceiling_fen: Mapped[int]             # no approval of one request passes it
    times_per_year: Mapped[int]          # approvals per member, per solar year of the event
    effective_from: Mapped[date]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    type: Mapped[CondolenceType] = relationship(lazy="joined")


class CondolenceRequest(Base):
    __tablename__ = "condolence_requests"
    __table_args__ = (Index("ix_condolence_requests_member_type_year", "staff_id", "type_id", "event_year"),
                      Index("ix_condolence_requests_status", "status"))
    _repr_fields = ("id", "staff_id", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))   # the member it concerns
    applicant_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("condolence_types.id"))
    rate_id: Mapped[int] = mapped_column(ForeignKey("condolence_rates.id"))
    category: Mapped[MemberCategory] = mapped_column(str_enum(MemberCategory, 10))
    relation: Mapped[Relation | None] = mapped_column(str_enum(Relation))
    event_date: Mapped[date]
    event_year: Mapped[int]               # the solar year the yearly count counts it in
    relative_name_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    place_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    description_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    consent_by: Mapped[str | None] = mapped_column(String(10))      # filed by an officer: 本人 / 家属 agreed …
    consent_at: Mapped[datetime | None]                              # … at this time
    status: Mapped[CondolenceStatus] = mapped_column(str_enum(CondolenceStatus), default=CondolenceStatus.SUBMITTED)
    possible_duplicate_of_id: Mapped[int | None]       # a hint for reviewers (no foreign key: never cascades)
    missing_material_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)    # why it was returned (补材料)
    verified_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    verified_at: Mapped[datetime | None]
    approved_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    approved_at: Mapped[datetime | None]
    amount_fen: Mapped[int | None]
    amount_reason_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    payment: Mapped[PaymentKind | None] = mapped_column(str_enum(PaymentKind, 10))
    gift: Mapped[str | None] = mapped_column(String(100))
    rejected_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    rejected_at: Mapped[datetime | None]
    reject_reason_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    withdrawn_at: Mapped[datetime | None]
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("condolence_batches.id"), index=True)
    paid_on: Mapped[date | None]           # the day the money was paid (its batch) or the gift delivered
    delivery_note: Mapped[str | None] = mapped_column(String(200))     # a gift's delivery (慰问品送达)
    closed_at: Mapped[datetime | None]
    details_erased_at: Mapped[datetime | None]    # retention: sealed fields and files erased, the ledger row kept
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    member: Mapped[Staff] = relationship(foreign_keys=[staff_id], lazy="joined")
    applicant: Mapped[Staff] = relationship(foreign_keys=[applicant_id], lazy="joined")
    type: Mapped[CondolenceType] = relationship(lazy="joined")
    rate: Mapped[CondolenceRate] = relationship(lazy="joined")
    attachments: Mapped[list[CondolenceAttachment]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="CondolenceAttachment.id")
    history: Mapped[list[CondolenceStep]] = relationship(back_populates="request", cascade="all, delete-orphan",
                                                         order_by="CondolenceStep.id")


class CondolenceAttachment(Base):
    """A bill, 病历首页, 出院记录 or death certificate — of a request, or a mutual-aid claim's document: the file is
    stored sealed; so is its name. It belongs to exactly one of the two."""

    __tablename__ = "condolence_attachments"
    _repr_fields = ("id", "request_id", "claim_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int | None] = mapped_column(ForeignKey("condolence_requests.id", ondelete="CASCADE"),
                                                   index=True)
    claim_id: Mapped[int | None] = mapped_column(ForeignKey("mutual_aid_claims.id", ondelete="CASCADE"), index=True)
    filename_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int]
    storage_key: Mapped[str] = mapped_column(String(64), unique=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    request: Mapped[CondolenceRequest | None] = relationship(back_populates="attachments")


class CondolenceStep(Base):
    """One step of a request's workflow: submitted, returned, resubmitted, verified, approved, rejected, withdrawn.
    `detail` never holds a sealed field."""

    __tablename__ = "condolence_steps"
    _repr_fields = ("request_id", "action")

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("condolence_requests.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    request: Mapped[CondolenceRequest] = relationship(back_populates="history")
    actor: Mapped[Staff | None] = relationship(lazy="joined")


class CondolenceYearlyCount(Base):
    """Approvals of one type for one member in one solar year: a conditional UPDATE against the rate's count, so
    two approvals racing past it cannot both pass."""

    __tablename__ = "condolence_yearly_counts"

    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True)
    type_id: Mapped[int] = mapped_column(ForeignKey("condolence_types.id", ondelete="CASCADE"), primary_key=True)
    year: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    approved: Mapped[int] = mapped_column(default=0)


class VisitStatus(enum.Enum):
    PLANNED = "planned"        # 待走访
    VISITED = "visited"        # 已走访
    SKIPPED = "skipped"        # 不再走访（去世、迁居……，写明原因）


class VisitPlan(Base):
    """The year's visits to every retiree (before Spring Festival, as the union's records show them)."""

    __tablename__ = "visit_plans"
    _repr_fields = ("id", "year")

    id: Mapped[int] = mapped_column(primary_key=True)
    year: Mapped[int] = mapped_column(unique=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RetireeVisit(Base):
    """One retiree in a plan: the officer assigned, and what the visit gave. The note is sealed like a condolence
    request's text. Money the officer advanced and marks for reimbursement goes into a month's batch."""

    __tablename__ = "retiree_visits"
    __table_args__ = (UniqueConstraint("plan_id", "staff_id"),)
    _repr_fields = ("id", "plan_id", "staff_id", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("visit_plans.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    officer_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    status: Mapped[VisitStatus] = mapped_column(str_enum(VisitStatus), default=VisitStatus.PLANNED)
    visited_on: Mapped[date | None]
    money_fen: Mapped[int] = mapped_column(default=0)
    gift: Mapped[str | None] = mapped_column(String(100))
    note_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    reimburse: Mapped[bool] = mapped_column(default=False)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("condolence_batches.id"), index=True)
    skip_reason: Mapped[str | None] = mapped_column(String(100))
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    recorded_at: Mapped[datetime | None]

    retiree: Mapped[Staff] = relationship(foreign_keys=[staff_id], lazy="joined")
    officer: Mapped[Staff | None] = relationship(foreign_keys=[officer_id], lazy="joined")


class ClaimStatus(enum.Enum):
    FILED = "filed"            # 已登记
    SUBMITTED = "submitted"    # 已报送市总工会
    PAID = "paid"              # 已赔付
    REFUSED = "refused"        # 未获赔付


class MutualAidClaim(Base):
    """A claim on one of the city's mutual-aid plans (互助保障), tracked by union officers for a member. Its
    description and the city union's reason for a refusal are sealed; its documents are sealed files."""

    __tablename__ = "mutual_aid_claims"
    _repr_fields = ("id", "staff_id", "plan", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    plan: Mapped[str] = mapped_column(String(64))
    filed_on: Mapped[date]
    status: Mapped[ClaimStatus] = mapped_column(str_enum(ClaimStatus), default=ClaimStatus.FILED)
    submitted_on: Mapped[date | None]
    paid_on: Mapped[date | None]
    amount_paid_fen: Mapped[int | None]
    description_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    refusal_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]              # paid or refused: its final state
    details_erased_at: Mapped[datetime | None]

    member: Mapped[Staff] = relationship(foreign_keys=[staff_id], lazy="joined")
    documents: Mapped[list[CondolenceAttachment]] = relationship(cascade="all, delete-orphan",
                                                                 order_by="CondolenceAttachment.id")
