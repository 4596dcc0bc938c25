"""Liveness and readiness for load balancers and process managers."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app
from sqlalchemy import text

from app.errors import error_response
from app.extensions import db, get_redis
from app.services import delivery

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    """Ready when the database and Redis answer. A stuck outbox (its oldest due row older than
    notifications.stuck_after_seconds) is reported, still with 200: alert on it, don't take the web out of rotation."""
    checks = {"database": _check(lambda: db.session.execute(text("SELECT 1"))), "redis": _check(get_redis().ping)}
    if not all(checks.values()):
        return error_response("not_ready", "服务尚未就绪：数据库或 Redis 无法连接", 503, checks=checks)
    stuck = delivery.oldest_due_age() > current_app.config["SU"].notifications.stuck_after_seconds
    return {"status": "ready", "checks": checks, "outbox": "stuck" if stuck else "ok"}


def _check(probe) -> bool:
    try:
        probe()
        return True
    except Exception:
        log.warning("readiness probe failed", exc_info=True)
        return False
