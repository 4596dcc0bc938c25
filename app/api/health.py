"""Liveness and readiness for load balancers and process managers."""

from __future__ import annotations

import logging

from flask import Blueprint
from sqlalchemy import text

from app.errors import error_response
from app.extensions import db, get_redis

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    checks = {"database": _check(lambda: db.session.execute(text("SELECT 1"))), "redis": _check(get_redis().ping)}
    if all(checks.values()):
        return {"status": "ready", "checks": checks}
    return error_response("not_ready", "服务尚未就绪：数据库或 Redis 无法连接", 503, checks=checks)


def _check(probe) -> bool:
    try:
        probe()
        return True
    except Exception:
        log.warning("readiness probe failed", exc_info=True)
        return False
