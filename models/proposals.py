"""Staff-congress proposals (教代会提案): the congress's terms and yearly sessions, the departments that handle
proposals, the proposals with their seconds and co-proposers, each handling round's assignments to departments,
and every step of a proposal's history (the dates the work report needs).
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, str_enum, utcnow
from models.roster import Staff


class ProposalCategory(enum.Enum):
    TEACHING = "teaching"          # 教学科研
    TALENT = "talent"              # 人才队伍
    LOGISTICS = "logistics"        # 后勤保障
    WELFARE = "welfare"            # 民生福利
    OTHER = "other"                # 其他


class ProposalStatus(enum.Enum):
    SUBMITTED = "submitted"        # 征集中（附议中）
    WITHDRAWN = "withdrawn"        # 已撤回
    BELOW_MINIMUM = "below_minimum"  # 未达附议人数
    UNDER_REVIEW = "under_review"  # 待审查
    ACCEPTED = "accepted"          # 已立案，待交办
    MERGED = "merged"              # 已并案
    OPINION = "opinion"            # 转为意见建议
    REJECTED = "rejected"          # 不立案
    HANDLING = "handling"          # 办理中
    ANSWERED = "answered"          # 已答复，待评价
    CLOSED = "closed"              # 已办结


class Satisfaction(enum.Enum):
    SATISFIED = "satisfied"                  # 满意
    BASICALLY_SATISFIED = "basically_satisfied"  # 基本满意
    DISSATISFIED = "dissatisfied"            # 不满意
    UNRATED = "unrated"                      # 未评价 (not rated in time)


class AnswerGrade(enum.Enum):
    A = "A"      # 已解决
    B = "B"      # 正在解决
    C = "C"      # 列入规划
    D = "D"      # 因条件限制暂无法解决


class AssignmentStatus(enum.Enum):
    PENDING = "pending"            # owes its part
    DONE = "done"                  # 协办: opinion given; 主办: answered
    RETURNED = "returned"          # 退办
    SUPERSEDED = "superseded"      # the round was reassigned or answered without it


class Department(Base):
    """A department of the roster (部门). Renamed by an officer, never re-created: its old names stay as aliases,
    so a later import under an old name maps to the same department and every assignment keeps it."""

    __tablename__ = "departments"
    _repr_fields = ("id", "name")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DepartmentAlias(Base):
    __tablename__ = "department_aliases"
    _repr_fields = ("department_id", "name")

    id: Mapped[int] = mapped_column(primary_key=True)
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CongressTerm(Base):
    """届: e.g. 第二届, about five years."""

    __tablename__ = "congress_terms"
    _repr_fields = ("id", "name")

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(32), unique=True)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CongressSession(Base):
    """年会: one meeting of a term, with its collection window (征集期). `window_closed_at` is set once, by whoever
    closes the window (the scheduler), and seconds are final from then on."""

    __tablename__ = "congress_sessions"
    __table_args__ = (UniqueConstraint("term_id", "year"),)
    _repr_fields = ("id", "term_id", "year")

    id: Mapped[int] = mapped_column(primary_key=True)
    term_id: Mapped[int] = mapped_column(ForeignKey("congress_terms.id", ondelete="CASCADE"))
    year: Mapped[int]
    name: Mapped[str] = mapped_column(String(64))
    meeting_on: Mapped[date]
    opens_at: Mapped[datetime]
    closes_at: Mapped[datetime]
    window_closed_at: Mapped[datetime | None]
    next_number: Mapped[int] = mapped_column(default=1)      # 立案 numbers of this session, taken under its row lock
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    term: Mapped[CongressTerm] = relationship(lazy="joined")


class Proposal(Base):
    __tablename__ = "proposals"
    __table_args__ = (UniqueConstraint("session_id", "number"),
                      Index("ix_proposals_session_status", "session_id", "status"))
    _repr_fields = ("id", "session_id", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("congress_sessions.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("staff.id"), index=True)
    title: Mapped[str] = mapped_column(String(100))          # 案由
    reasons: Mapped[str] = mapped_column(Text)               # 理由
    measures: Mapped[str] = mapped_column(Text)              # 建议
    category: Mapped[ProposalCategory] = mapped_column(str_enum(ProposalCategory, 12))
    status: Mapped[ProposalStatus] = mapped_column(str_enum(ProposalStatus), default=ProposalStatus.SUBMITTED)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    first_seconded_at: Mapped[datetime | None]    # from then on the text is what the seconders backed: locked
    seconds: Mapped[int] = mapped_column(default=0)
    number: Mapped[str | None] = mapped_column(String(16))   # 立案号 2024-017
    decided_at: Mapped[datetime | None]                      # 审查
    decided_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    decision_reason: Mapped[str | None] = mapped_column(String(500))
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id", ondelete="SET NULL"))
    opinion_department_id: Mapped[int | None] = mapped_column(ForeignKey("departments.id"))
    round: Mapped[int] = mapped_column(default=0)            # handling rounds begun (不满意 starts another)
    answered_at: Mapped[datetime | None]
    satisfaction: Mapped[Satisfaction | None] = mapped_column(str_enum(Satisfaction))
    satisfaction_comment: Mapped[str | None] = mapped_column(String(500))
    rated_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    session: Mapped[CongressSession] = relationship(lazy="joined")
    author: Mapped[Staff] = relationship(lazy="joined", foreign_keys=[author_id])
    opinion_department: Mapped[Department | None] = relationship(lazy="joined")
    history: Mapped[list[ProposalStep]] = relationship(order_by="ProposalStep.id", back_populates="proposal",
                                                       cascade="all, delete-orphan")


class Second(Base):
    """附议: one per person per proposal, whatever two requests at once try."""

    __tablename__ = "proposal_seconds"
    __table_args__ = (UniqueConstraint("proposal_id", "staff_id"),)
    _repr_fields = ("proposal_id", "staff_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[Staff] = relationship(lazy="joined")


class CoProposer(Base):
    """Someone whose proposal was merged into this one (its author or a seconder): they now back this one."""

    __tablename__ = "proposal_co_proposers"
    __table_args__ = (UniqueConstraint("proposal_id", "staff_id"),)
    _repr_fields = ("proposal_id", "staff_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"), index=True)
    via_proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[Staff] = relationship(lazy="joined")


class Assignment(Base):
    """One department's part in one handling round (交办): the lead (主办) answers, each co-handler (协办) gives its
    opinion to the lead. A reassignment after 退办 or another round after 不满意 makes new rows."""

    __tablename__ = "proposal_assignments"
    __table_args__ = (UniqueConstraint("proposal_id", "handling", "department_id"),
                      Index("ix_proposal_assignments_department_status", "department_id", "status"))
    _repr_fields = ("proposal_id", "handling", "department_id", "status")

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"))
    handling: Mapped[int]                 # the proposal's n-th 交办 (reassignments count)
    round: Mapped[int]                    # the satisfaction round it belongs to
    department_id: Mapped[int] = mapped_column(ForeignKey("departments.id"))
    lead: Mapped[bool]
    deadline: Mapped[date]
    status: Mapped[AssignmentStatus] = mapped_column(str_enum(AssignmentStatus, 12),
                                                     default=AssignmentStatus.PENDING)
    assigned_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    text: Mapped[str | None] = mapped_column(Text)        # the answer (lead) or the opinion (co-handler)
    grade: Mapped[AnswerGrade | None] = mapped_column(str_enum(AnswerGrade, 2))
    done_at: Mapped[datetime | None]
    done_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    return_reason: Mapped[str | None] = mapped_column(String(500))
    returned_at: Mapped[datetime | None]

    department: Mapped[Department] = relationship(lazy="joined")
    proposal: Mapped[Proposal] = relationship(lazy="joined")


class ProposalAttachment(Base):
    """A file of the proposal (filed with it, before anyone seconded) or of a department's answer (`assignment_id`):
    an image or PDF in the storage directory, read only through an access-checked endpoint."""

    __tablename__ = "proposal_attachments"
    _repr_fields = ("id", "proposal_id", "assignment_id", "filename")

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    assignment_id: Mapped[int | None] = mapped_column(ForeignKey("proposal_assignments.id", ondelete="CASCADE"))
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int]
    storage_key: Mapped[str] = mapped_column(String(128), unique=True)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProposalComment(Base):
    """What a co-proposer (or the lead proposer beside their rating) says about an answer."""

    __tablename__ = "proposal_comments"
    _repr_fields = ("proposal_id", "staff_id")

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    staff_id: Mapped[int] = mapped_column(ForeignKey("staff.id", ondelete="CASCADE"))
    round: Mapped[int]
    text: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    staff: Mapped[Staff] = relationship(lazy="joined")


class ProposalStep(Base):
    """One step of a proposal's history, with its date (filed, seconded, reviewed, assigned, answered, rated ...)."""

    __tablename__ = "proposal_steps"
    _repr_fields = ("proposal_id", "action")

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id", ondelete="CASCADE"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("staff.id", ondelete="SET NULL"))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    at: Mapped[datetime] = mapped_column(default=utcnow)

    proposal: Mapped[Proposal] = relationship(back_populates="history")
    actor: Mapped[Staff | None] = relationship(lazy="joined")
