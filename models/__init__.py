"""SQLAlchemy 2.x declarative models, one module per area. Importing this package registers every table."""

from models.base import Base
from models.roster import (
    BindCode,
    BirthdayCalendar,
    Gender,
    RoleAssignment,
    Role,
    Staff,
    StaffStatus,
    SubUnion,
    SubUnionKind,
    WeChatApp,
    WeChatIdentity,
)
from models.announcements import (
    Announcement, AnnouncementAttachment, AnnouncementCategory, AnnouncementRead, AnnouncementStatus,
)
from models.audit import AuditLog
from models.campaigns import GiftCampaign
from models.condolences import (
    BatchStatus, ClaimStatus, CondolenceAttachment, CondolenceBatch, CondolenceRate, CondolenceRequest, CondolenceStatus, CondolenceStep, CondolenceSubject,
    CondolenceType, CondolenceYearlyCount, MemberCategory, PaymentKind, PaymentMethod, MutualAidClaim,
    Relation, RetireeVisit, VisitPlan, VisitStatus,
)
from models.events import Event, EventCategory, EventQuota, EventStatus, Signup, SignupStatus
from models.merchants import Cashier, Merchant, StatementMonth
from models.proposals import (
    AnswerGrade, Assignment, AssignmentStatus, CongressSession, CongressTerm, CoProposer, Department, DepartmentAlias,
    Proposal, ProposalAttachment, ProposalCategory, ProposalComment, ProposalStatus, ProposalStep, Satisfaction, Second,
)
from models.vouchers import IssueMode, Voucher, VoucherEvent, VoucherPolicy, VoucherStatus
from models.notifications import (
    Channel, DeliveryStatus, Notice, NoticeStatus, Notification, SubscriptionConsent,
)

__all__ = [
    "Announcement", "AnnouncementAttachment", "AnnouncementCategory", "AnnouncementRead", "AnnouncementStatus",
    "GiftCampaign",
    "BatchStatus", "ClaimStatus", "MutualAidClaim", "CondolenceAttachment", "CondolenceBatch", "CondolenceRate", "CondolenceRequest", "CondolenceStatus", "CondolenceStep",
    "CondolenceSubject", "CondolenceType", "CondolenceYearlyCount", "MemberCategory", "PaymentKind", "PaymentMethod",
    "Relation", "RetireeVisit", "VisitPlan", "VisitStatus",
    "Event", "EventCategory", "EventQuota", "EventStatus", "Signup", "SignupStatus",
    "Channel", "DeliveryStatus", "Notice", "NoticeStatus", "Notification", "SubscriptionConsent",
    "Cashier", "Merchant", "StatementMonth", "IssueMode", "Voucher", "VoucherEvent", "VoucherPolicy", "VoucherStatus",
    "AnswerGrade", "Assignment", "AssignmentStatus", "CongressSession", "CongressTerm", "CoProposer", "Department",
    "DepartmentAlias", "Proposal", "ProposalAttachment", "ProposalCategory", "ProposalComment", "ProposalStatus", "ProposalStep",
    "Satisfaction", "Second",
    "AuditLog", "Base", "BindCode", "BirthdayCalendar", "Gender", "Role", "RoleAssignment", "Staff", "StaffStatus", "SubUnion",
    "SubUnionKind", "WeChatApp", "WeChatIdentity",
]
