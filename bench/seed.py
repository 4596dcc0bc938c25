"""Every bench's database, Redis space and data.

Each bench has a PostgreSQL database of its own (`smart_union_bench*`, created when missing, every table dropped
then migrated afresh by `open_app(cfg, fresh=True)`) and a Redis key prefix in DB 12 (only those keys are
deleted). Large data goes in with bulk INSERTs (`bulk`, no services, so 100,000 staff take seconds); the
/api/v1/me bench seeds its 1,000 staff through the roster service.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Iterator

import redis as redis_lib
from sqlalchemy import create_engine, func, insert, literal, literal_column, select, text
from sqlalchemy.engine import Connection, make_url

PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/12"
DB_NAME = "smart_union_bench"
REDIS_PREFIX = "subench:"
NO_WECHAT = "http://127.0.0.1:9/"      # for the benches whose paths make no WeChat API call
CHUNK = 5000


# ---- settings, database, Redis --------------------------------------------------------------------------------

def settings(database: str = DB_NAME, wechat_url: str = NO_WECHAT, redis_prefix: str = REDIS_PREFIX,
             extra: dict[str, object] | None = None) -> dict[str, object]:
    """Config overrides of a bench app (dotted keys, as `load_config(overrides=...)` takes them)."""
    return {
        "database.url": f"{PG_SERVER}/{database}",
        "redis.url": REDIS_URL,
        "redis.key_prefix": redis_prefix,
        "wechat.api_base_url": wechat_url,
        "app.secret_key": "bench-secret-key-not-for-production",
        "privacy.keys.b1": "YmVuY2gtb25seS1rZXktMDEyMzQ1Njc4OWFiY2RlZjA=",
        "privacy.current_key": "b1",
        "app.log_level": "INFO",          # as deployed: one log line per request, into the gunicorn log
        **(extra or {}),
    }


def config(overrides: dict[str, object]):
    from app.config import load_config

    return load_config(environ={}, overrides=overrides)


def env_for(overrides: dict[str, object]) -> dict[str, str]:
    """The same overrides as SMART_UNION__SECTION__KEY variables, for the subprocesses (gunicorn, senders)."""
    return {f"SMART_UNION__{'__'.join(k.upper() for k in key.split('.'))}": str(value)
            for key, value in overrides.items()}


@contextlib.contextmanager
def connect(url: str, autocommit: bool = False) -> Iterator[Connection]:
    """A connection of its own engine (one transaction, committed at the end, unless `autocommit`)."""
    engine = create_engine(url, **({"isolation_level": "AUTOCOMMIT"} if autocommit else {}))
    try:
        with (engine.connect() if autocommit else engine.begin()) as conn:
            yield conn
    finally:
        engine.dispose()


def reset_database(cfg) -> None:
    """Creates the bench database when missing, then drops every table and migrates afresh."""
    from app.migrations import drop_everything, upgrade

    database = make_url(cfg.database.url).database
    with connect(f"{PG_SERVER}/postgres", autocommit=True) as conn:
        if not conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": database}):
            conn.execute(text(f'CREATE DATABASE "{database}"'))
    drop_everything(cfg)
    upgrade(cfg)


def reset_redis(prefix: str = REDIS_PREFIX) -> None:
    """Deletes the keys under `prefix` (only those) from the bench Redis DB."""
    client = redis_lib.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        for i in range(0, len(keys), 1000):
            client.delete(*keys[i:i + 1000])
    finally:
        client.close()


@contextlib.contextmanager
def open_app(cfg, fresh: bool = False):
    """The app on `cfg`, on a recreated database and an emptied Redis prefix when `fresh`; its engine and Redis
    closed afterwards."""
    from app import create_app

    if fresh:
        reset_database(cfg)
        reset_redis(cfg.redis.key_prefix)
    app = create_app(cfg)
    try:
        yield app
    finally:
        app.extensions["db.engine"].dispose()
        app.extensions["redis"].close()


def bulk(session, model, rows: list[dict], chunk: int = CHUNK) -> list[int]:
    """INSERTs `rows` of `model` in chunks; returns their ids, in the order of the rows."""
    ids: list[int] = []
    for start in range(0, len(rows), chunk):
        ids += session.execute(insert(model).returning(model.id, sort_by_parameter_order=True),
                               rows[start:start + chunk]).scalars().all()
    return ids


def floor_table(cfg, schema: list[str], insert_sql: str, rows: list[dict]) -> None:
    """A floor's own table (bench/floors.py) in the bench database, with its rows."""
    with connect(cfg.database.url) as conn:
        for ddl in schema:
            conn.execute(text(ddl))
        conn.execute(text(insert_sql), rows)


def vacuum_analyze(cfg, tables: str) -> None:
    with connect(cfg.database.url, autocommit=True) as conn:
        conn.execute(text(f"VACUUM ANALYZE {tables}"))


# ---- GET /api/v1/me -----------------------------------------------------------------------------------------

def roster_staff(app, count: int = 1000, sub_unions: int = 20) -> list[int]:
    """`count` staff through the roster service (one transaction), spread over `sub_unions` sub-unions."""
    from app.services import roster
    from app.unit_of_work import unit_of_work
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


def bind_token(app, staff_id: int) -> str:
    """Binds a mini-program identity to the staff member and returns its bearer token."""
    from app.extensions import db
    from app.services import auth
    from app.unit_of_work import unit_of_work
    from models import Staff, WeChatApp, WeChatIdentity

    with app.app_context(), unit_of_work():
        staff = db.session.get(Staff, staff_id)
        identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"bench-openid-{staff_id}",
                                  staff_id=staff_id, bound_at=datetime.now(timezone.utc))
        db.session.add(identity)
        db.session.flush()
        return auth.issue_token(identity, staff)


# ---- signup -------------------------------------------------------------------------------------------------

def signup_staff(app, count: int, sub_unions: int = 20) -> list[str]:
    """`count` staff with mini-program identities; returns their bearer tokens."""
    from app.services import auth, roster
    from app.unit_of_work import unit_of_work
    from models import Staff, WeChatApp, WeChatIdentity

    with app.app_context(), unit_of_work() as session:
        unions = [roster.ensure_sub_union(f"第{n}分工会")[0].id for n in range(1, sub_unions + 1)]
        staff = bulk(session, Staff, [
            {"employee_no": f"S{i:05d}", "name": f"教工{i:04d}", "department": f"学院{i % 30:02d}",
             "sub_union_id": unions[i % sub_unions]} for i in range(1, count + 1)])
        identities = bulk(session, WeChatIdentity, [
            {"app": WeChatApp.MINI_PROGRAM, "openid": f"bench-signup-{sid}", "staff_id": sid} for sid in staff])
        return [auth.issue_token(SimpleNamespace(id=iid), SimpleNamespace(id=sid, auth_version=1))
                for iid, sid in zip(identities, staff)]


def signup_events(app, count: int, seats: int) -> list[int]:
    """`count` published events of `seats` seats each, open for signup now, through the events service."""
    from app.services import roster
    from app.services.events import lifecycle
    from app.unit_of_work import unit_of_work
    from models import Role

    now = datetime.now(timezone.utc)
    with app.app_context(), unit_of_work():
        officer, _ = roster.upsert_staff("OFFICER", roster.StaffFields(name="工会干事"), actor_label="bench")
        roster.grant_role(officer, Role.UNION_OFFICER, actor_label="bench")
        ids = []
        for n in range(count):
            event = lifecycle.create_event(officer, lifecycle.EventFields(
                title=f"气排球赛{n + 1}", starts_at=now + timedelta(days=3), ends_at=now + timedelta(days=3, hours=2),
                signup_opens_at=now - timedelta(hours=1), signup_closes_at=now + timedelta(days=2), capacity=seats))
            lifecycle.publish_event(officer, event.id, notify=False)
            ids.append(event.id)
        return ids


# ---- voucher redemption -------------------------------------------------------------------------------------

def vouchers(app, count: int, cashiers: int, merchant: str) -> tuple[list[tuple[int, str, str]], list[str]]:
    """`count` members with a valid voucher each and `cashiers` cashiers of the merchant; returns (voucher id,
    serial, secret) of each voucher and the cashiers' tokens."""
    from app import clock
    from app.extensions import db
    from app.services import auth
    from app.unit_of_work import unit_of_work
    from models import Cashier, Merchant, Staff, Voucher, VoucherStatus, WeChatApp, WeChatIdentity

    now = clock.now()
    with app.app_context(), unit_of_work() as session:
        staff = bulk(session, Staff, [{"employee_no": f"R{i:06d}", "name": f"会员{i:05d}", "department": ""}
                                      for i in range(1, count + 1)])
        rows = [{"staff_id": sid, "year": now.year, "birthday": date(now.year, 6, 1), "serial": secrets.token_hex(8),
                 "secret": secrets.token_hex(32), "status": VoucherStatus.VALID, "merchant": merchant,
                 "face_value_fen": 20000, "cost_fen": 18000, "policy_version": 1, "issued_at": now,
                 "valid_until": now + timedelta(days=60)} for sid in staff]
        ids = bulk(session, Voucher, rows)
        shop = Merchant(name=merchant, shops=["总店"], active=True)
        db.session.add(shop)
        db.session.flush()
        tokens = []
        for n in range(cashiers):
            identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"bench-cashier-{n}")
            db.session.add(identity)
            db.session.flush()
            cashier = Cashier(merchant_id=shop.id, identity_id=identity.id, shop="总店", name=f"收银员{n}",
                              auth_version=1)
            db.session.add(cashier)
            db.session.flush()
            tokens.append(auth.issue_cashier_token(SimpleNamespace(id=identity.id), cashier))
        return [(vid, r["serial"], r["secret"]) for vid, r in zip(ids, rows)], tokens


# ---- notification fan-out -----------------------------------------------------------------------------------

def fanout_roster(app, staff: int) -> dict[str, int]:
    """Even staff follow the official account, odd ones have a mini-program openid and one subscribe consent."""
    from app.unit_of_work import unit_of_work
    from models import Staff, SubscriptionConsent, WeChatApp, WeChatIdentity

    with app.app_context(), unit_of_work() as session:
        ids = bulk(session, Staff, [{"employee_no": f"F{n:06d}", "name": f"会员{n}"} for n in range(staff)])
        followers, others = ids[0::2], ids[1::2]
        bulk(session, WeChatIdentity, [
            *({"app": WeChatApp.OFFICIAL_ACCOUNT, "openid": f"mp-{i}", "staff_id": i, "following": True}
              for i in followers),
            *({"app": WeChatApp.MINI_PROGRAM, "openid": f"mini-{i}", "staff_id": i} for i in others)])
        bulk(session, SubscriptionConsent, [{"staff_id": i, "template_id": "TPL-MINI-SERVICE", "remaining": 1}
                                            for i in others])
    return {"template": len(followers), "subscribe": len(others)}


# ---- scheduler jobs -----------------------------------------------------------------------------------------

def jobs_roster(app, count: int) -> None:
    """`count` staff born 1950-2005 (a fifth keep lunar birthdays), each bound in the mini-program (unionid u-<no>)."""
    from app.services.calendar import lunar_month_day
    from app.unit_of_work import unit_of_work
    from models import Staff, WeChatIdentity

    rng = random.Random(7)
    rows = []
    for n in range(count):
        born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
        lunar = lunar_month_day(born)
        rows.append({"employee_no": f"J{n:06d}", "name": "会员", "birthday": born, "birth_month": born.month,
                     "birth_day": born.day, "lunar_birth_month": lunar[0], "lunar_birth_day": lunar[1],
                     "birthday_calendar": "lunar" if n % 5 == 0 else "solar",
                     "status": "retired" if n % 7 == 0 else "active", "gender": "female" if n % 2 else "male"})
    with app.app_context(), unit_of_work() as session:
        ids = bulk(session, Staff, rows)
        bulk(session, WeChatIdentity, [{"app": "mini", "openid": f"mini-{r['employee_no']}",
                                        "unionid": f"u-{r['employee_no']}", "staff_id": sid}
                                       for sid, r in zip(ids, rows)])


# ---- official-account push and announcement list --------------------------------------------------------------

SUB_UNIONS = 20
READER_NO = "M000001"               # the staff member of the mp bench: active, female, in the 2nd sub-union
FOLLOWER_OPENID = "bench-mp-follower"
BODY_PARAGRAPH = ("各位会员：为丰富教职工业余文化生活，校工会定于近期组织开展相关活动，请各分工会认真组织、积极动员，"
                  "按时报送参加人员名单。活动期间请注意安全，服从工作人员安排。联系人：工会办公室，电话 12345678。")


@dataclass
class Announcements:
    staff: int
    announcements: dict[str, int]      # by status
    pinned: int
    audiences: dict[str, int]          # published announcements by kind of audience
    reader_id: int
    reader_visible: int                # published announcements whose audience includes the reader
    reader_reads: int
    reads_total: int
    token: str                         # the reader's mini-program bearer token
    follower_openid: str               # the reader's official-account openid
    seconds: float


def _audience(rng: random.Random, unions: list[int]):
    """(kind, Audience): most to everyone, then sub-unions, retirees, women, in-service, officers, mixes."""
    from app.services.audiences import Audience
    from models import Gender, Role, StaffStatus

    roll = rng.random()
    if roll < 0.70:
        return "everyone 全体", Audience()
    if roll < 0.82:
        return "one sub-union 单个分工会", Audience(sub_union_ids=[rng.choice(unions)])
    if roll < 0.85:
        return "several sub-unions 多个分工会", Audience(sub_union_ids=rng.sample(unions, 3))
    if roll < 0.90:
        return "retirees 退休", Audience(statuses=[StaffStatus.RETIRED])
    if roll < 0.94:
        return "women 女职工", Audience(genders=[Gender.FEMALE])
    if roll < 0.97:
        return "in service 在职", Audience(statuses=[StaffStatus.ACTIVE])
    if roll < 0.99:
        return "officers 工会干部", Audience(roles=[Role.UNION_OFFICER, Role.SUB_UNION_OFFICER])
    return "sub-union women 分工会女职工", Audience(sub_union_ids=[rng.choice(unions)], genders=[Gender.FEMALE])


def announcements(app, staff_count: int, published: int) -> Announcements:
    """The roster, the published announcements with varied audiences (plus drafts and withdrawn ones), who read
    what, and the one staff member the mp bench acts as (a mini-program token for the API, an official-account
    follower for /wechat/mp); in one transaction, then VACUUM ANALYZE so the planner sees the tables as production
    would."""
    from app.extensions import db
    from app.services.audiences import audience_columns, visible_to
    from app.unit_of_work import unit_of_work
    from models import (
        Announcement, AnnouncementCategory, AnnouncementRead, AnnouncementStatus, Role, RoleAssignment, Staff,
        StaffStatus, SubUnion, WeChatApp, WeChatIdentity,
    )

    started = time.perf_counter()
    rng = random.Random(20261125)
    now = datetime.now(timezone.utc)
    with app.app_context(), unit_of_work() as session:
        unions = session.execute(insert(SubUnion).returning(SubUnion.id),
                                 [{"name": f"第{n}分工会"} for n in range(1, SUB_UNIONS + 1)]).scalars().all()
        bulk(session, Staff, [
            {"employee_no": f"M{n:06d}", "name": f"教工{n:06d}", "gender": "female" if n % 2 else "male",
             "department": f"学院{n % 30:02d}", "sub_union_id": unions[n % SUB_UNIONS],
             "status": "retired" if n % 7 == 0 else "active", "phone": f"139{n:08d}"}
            for n in range(1, staff_count + 1)])
        reader = session.scalar(select(Staff).where(Staff.employee_no == READER_NO))
        officer = session.scalar(select(Staff).where(Staff.employee_no == "M000002"))
        session.add(RoleAssignment(staff_id=officer.id, role=Role.UNION_OFFICER, scope_key="all"))

        categories = list(AnnouncementCategory)
        audiences: dict[str, int] = {}
        rows, pinned = [], 0
        span = timedelta(days=5 * 365) / max(published, 1)         # five years of announcements
        for n in range(published):
            kind, audience = _audience(rng, unions)
            audiences[kind] = audiences.get(kind, 0) + 1
            is_pinned = n % 200 == 7
            pinned += is_pinned
            category = categories[n % len(categories)]
            published_at = now - span * (published - n)
            rows.append({"title": f"关于第{n + 1}期工会工作的{category.name.lower()}公告", "status": "published",
                         "body": BODY_PARAGRAPH * rng.randint(1, 8), "category": category.value, "pinned": is_pinned,
                         "author_id": officer.id, "published_at": published_at,
                         "disclosure_ends_at": published_at + timedelta(days=7)
                         if category is AnnouncementCategory.DISCLOSURE else None,
                         **audience_columns(audience)})
        for n in range(published // 20):                           # drafts and withdrawn ones, never listed
            status = "draft" if n % 3 else "withdrawn"
            kind, audience = _audience(rng, unions)
            rows.append({"title": f"草稿{n}", "status": status, "body": BODY_PARAGRAPH, "category": "notice",
                         "pinned": n % 50 == 0, "author_id": officer.id,
                         "published_at": now if status == "withdrawn" else None, "disclosure_ends_at": None,
                         **audience_columns(audience)})
        rng.shuffle(rows)                                           # ids do not follow publication order
        bulk(session, Announcement, rows)

        session.expire_all()
        reader = db.session.get(Staff, reader.id)
        visible = (Announcement.status == AnnouncementStatus.PUBLISHED, visible_to(Announcement, reader))
        reader_visible = session.scalar(select(func.count()).select_from(Announcement).where(*visible))
        # The reader opened about a third of what she may see, an hour after publication.
        session.execute(insert(AnnouncementRead).from_select(
            ["announcement_id", "staff_id", "read_at"],
            select(Announcement.id, literal(reader.id),
                   literal_column("announcements.published_at + interval '1 hour'"))
            .where(*visible, Announcement.id % 3 == 0)))
        # Everyone else: 100 readers for each of the 2,000 newest announcements (the table is not tiny).
        session.execute(text("""
            INSERT INTO announcement_reads (announcement_id, staff_id, read_at)
            SELECT a.id, s.first_id + (a.id * 7919 + g * 997) % s.n, a.published_at + interval '1 day'
            FROM (SELECT id, published_at FROM announcements WHERE status = 'published'
                  ORDER BY published_at DESC LIMIT :newest) a,
                 (SELECT min(id) AS first_id, count(*) AS n FROM staff) s,
                 generate_series(1, :readers) g
            ON CONFLICT DO NOTHING"""), {"newest": 2000, "readers": 100})
        reader_reads = session.scalar(text("SELECT count(*) FROM announcement_reads WHERE staff_id = :s"),
                                      {"s": reader.id})
        reads_total = session.scalar(text("SELECT count(*) FROM announcement_reads"))
        session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid=FOLLOWER_OPENID, staff_id=reader.id,
                                   following=True, bound_at=now))
        reader_id = reader.id
        assert reader.status is StaffStatus.ACTIVE
    token = bind_token(app, reader_id)
    vacuum_analyze(app.config["SU"], "staff, announcements, announcement_reads, wechat_identities, role_assignments")
    by_status = {s: sum(1 for r in rows if r["status"] == s) for s in ("published", "draft", "withdrawn")}
    return Announcements(staff=staff_count, announcements=by_status, pinned=pinned, audiences=audiences,
                         reader_id=reader_id, reader_visible=reader_visible, reader_reads=reader_reads,
                         reads_total=reads_total, token=token, follower_openid=FOLLOWER_OPENID,
                         seconds=time.perf_counter() - started)
