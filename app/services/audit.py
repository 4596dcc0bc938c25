"""The audit log of officer and admin actions."""

from __future__ import annotations

from typing import Any

from app.extensions import db
from models import AuditLog, Staff


def record(actor: Staff | None, action: str, target_type: str = "", target_id: object = "",
           actor_label: str = "", **detail: Any) -> AuditLog:
    entry = AuditLog(actor_id=actor.id if actor else None,
                     actor_label=actor_label or (actor.employee_no if actor else "cli"),
                     action=action, target_type=target_type, target_id=str(target_id), detail=detail)
    db.session.add(entry)
    return entry
