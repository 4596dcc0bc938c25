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
from models.audit import AuditLog

__all__ = [
    "AuditLog", "Base", "BindCode", "BirthdayCalendar", "Gender", "Role", "RoleAssignment", "Staff", "StaffStatus", "SubUnion",
    "SubUnionKind", "WeChatApp", "WeChatIdentity",
]
