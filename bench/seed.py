"""The bench's own database and Redis space, and the data the benches load.

PostgreSQL database `smart_union_bench` (created when missing, every table dropped then migrated afresh),
Redis DB 12 under the key prefix "subench:" (only those keys are deleted).
"""

from __future__ import annotations

from datetime import date, datetime, timezone

import redis as redis_lib
from sqlalchemy import create_engine, text

from app.config import Config

DB_NAME = "smart_union_bench"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/12"
REDIS_PREFIX = "subench:"


def settings(fake_wechat_url: str) -> dict[str, object]:
    """Config overrides of the bench app (dotted keys, as `load_config(overrides=...)` takes them)."""
    return {
        "database.url": f"{PG_SERVER}/{DB_NAME}",
        "redis.url": REDIS_URL,
        "redis.key_prefix": REDIS_PREFIX,
        "wechat.api_base_url": fake_wechat_url,
        "app.secret_key": "bench-secret-key-not-for-production",
        "privacy.keys.b1": "YmVuY2gtb25seS1rZXktMDEyMzQ1Njc4OWFiY2RlZjA=",
        "privacy.current_key": "b1",
        "app.log_level": "WARNING",
    }


def env_for(overrides: dict[str, object]) -> dict[str, str]:
    """The same overrides as SMART_UNION__SECTION__KEY variables, for the gunicorn subprocess."""
    return {f"SMART_UNION__{'__'.join(k.upper() for k in key.split('.'))}": str(value)
            for key, value in overrides.items()}


def reset_database(cfg: Config, database: str = DB_NAME) -> None:
    """Creates the bench database when missing, then drops every table and migrates afresh."""
    from app.migrations import drop_everything, upgrade

    admin = create_engine(f"{PG_SERVER}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}):
                conn.execute(text(f'CREATE DATABASE "{database}"'))
    finally:
        admin.dispose()
    drop_everything(cfg)
    upgrade(cfg)


def reset_redis(prefix: str = REDIS_PREFIX) -> None:
    """Deletes this bench's keys (only those under its prefix) from the bench Redis DB."""
    client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
    finally:
        client.close()


def seed_staff(app, count: int = 1000, sub_unions: int = 20) -> list[int]:
    """`count` staff through the roster service (one transaction), spread over `sub_unions` sub-unions."""
    from app.unit_of_work import unit_of_work
    from app.services import roster
    from models import Gender

    ids = []
    with app.app_context(), unit_of_work():
        for i in range(1, count + 1):
            fields = roster.StaffFields(
                name=f"教工{i:04d}", gender=Gender.FEMALE if i % 2 else Gender.MALE,
                birthday=date(1960 + i % 40, 1 + i % 12, 1 + i % 28), department=f"学院{i % 30:02d}",
                sub_union=f"第{1 + i % sub_unions}分工会", phone=f"138{i:08d}", member_since=date(2010, 9, 1))
            staff, _ = roster.upsert_staff(f"B{i:05d}", fields, actor_label="bench")
            ids.append(staff.id)
    return ids


def bind_token(app, staff_id: int, openid: str | None = None) -> str:
    """Binds a mini-program identity to the staff member and returns its bearer token."""
    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from app.services import auth
    from models import Staff, WeChatApp, WeChatIdentity

    with app.app_context(), unit_of_work():
        staff = db.session.get(Staff, staff_id)
        identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=openid or f"bench-openid-{staff_id}",
                                  staff_id=staff_id, bound_at=datetime.now(timezone.utc))
        db.session.add(identity)
        db.session.flush()
        return auth.issue_token(identity, staff)
