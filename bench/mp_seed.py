"""Data of `bash bench/run.sh mp`, written straight into the bench database with bulk INSERTs (no services, so
100,000 staff take seconds): the roster, the published announcements with varied audiences, who read what, and
the one staff member the benches act as (a mini-program token for the API, an official-account follower for
/wechat/mp).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, func, insert, literal, literal_column, select, text

from bench import seed

SUB_UNIONS = 20
READER_NO = "M000001"               # the staff member of the benches: active, female, in the 2nd sub-union
FOLLOWER_OPENID = "bench-mp-follower"
CHUNK = 5000


@dataclass
class Seeded:
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


BODY_PARAGRAPH = ("各位会员：为丰富教职工业余文化生活，校工会定于近期组织开展相关活动，请各分工会认真组织、积极动员，"
                  "按时报送参加人员名单。活动期间请注意安全，服从工作人员安排。联系人：工会办公室，电话 12345678。")


def seed_all(app, staff_count: int, published: int, others_readers: int = 100,
             others_read_newest: int = 2000) -> Seeded:
    """Everything, in one transaction; then VACUUM ANALYZE so the planner sees the tables as production would."""
    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from app.services.audiences import audience_columns, visible_to
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
        for start in range(1, staff_count + 1, CHUNK):
            session.execute(insert(Staff), [
                {"employee_no": f"M{n:06d}", "name": f"教工{n:06d}", "gender": "female" if n % 2 else "male",
                 "department": f"学院{n % 30:02d}", "sub_union_id": unions[n % SUB_UNIONS],
                 "status": "retired" if n % 7 == 0 else "active", "phone": f"139{n:08d}"}
                for n in range(start, min(start + CHUNK, staff_count + 1))])
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
        for start in range(0, len(rows), CHUNK):
            session.execute(insert(Announcement), rows[start:start + CHUNK])

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
        # Everyone else: `others_readers` readers for each of the newest announcements (the table is not tiny).
        session.execute(text("""
            INSERT INTO announcement_reads (announcement_id, staff_id, read_at)
            SELECT a.id, s.first_id + (a.id * 7919 + g * 997) % s.n, a.published_at + interval '1 day'
            FROM (SELECT id, published_at FROM announcements WHERE status = 'published'
                  ORDER BY published_at DESC LIMIT :newest) a,
                 (SELECT min(id) AS first_id, count(*) AS n FROM staff) s,
                 generate_series(1, :readers) g
            ON CONFLICT DO NOTHING"""), {"newest": others_read_newest, "readers": others_readers})
        reader_reads = session.scalar(text("SELECT count(*) FROM announcement_reads WHERE staff_id = :s"),
                                      {"s": reader.id})
        reads_total = session.scalar(text("SELECT count(*) FROM announcement_reads"))
        session.add(WeChatIdentity(app=WeChatApp.OFFICIAL_ACCOUNT, openid=FOLLOWER_OPENID, staff_id=reader.id,
                                   following=True, bound_at=now))
        reader_id = reader.id
        assert reader.status is StaffStatus.ACTIVE
    token = seed.bind_token(app, reader_id)
    vacuum_analyze(app.config["SU"].database.url)
    by_status = {s: sum(1 for r in rows if r["status"] == s) for s in ("published", "draft", "withdrawn")}
    return Seeded(staff=staff_count, announcements=by_status, pinned=pinned, audiences=audiences,
                  reader_id=reader_id, reader_visible=reader_visible, reader_reads=reader_reads,
                  reads_total=reads_total, token=token, follower_openid=FOLLOWER_OPENID,
                  seconds=time.perf_counter() - started)


def vacuum_analyze(database_url: str) -> None:
    engine = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for table in ("staff", "announcements", "announcement_reads", "wechat_identities", "role_assignments"):
                conn.execute(text(f"VACUUM ANALYZE {table}"))
    finally:
        engine.dispose()
