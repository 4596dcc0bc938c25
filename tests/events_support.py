"""Helpers shared by the events tests (tests/test_events*.py): event bodies, many staff at once, reading seats."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.unit_of_work import unit_of_work
from models import Event, Signup, SignupStatus, WeChatApp, WeChatIdentity
from tests.helpers import bearer


def iso(moment: datetime) -> str:
    return moment.isoformat()


def event_body(now: datetime | None = None, **overrides: Any) -> dict[str, Any]:
    """An event whose signup window is open now and which starts in two days."""
    now = now or datetime.now(timezone.utc)
    body = {
        "title": "教职工气排球赛", "description": "欢迎报名", "category": "sports", "place": "体育馆",
        "starts_at": iso(now + timedelta(days=2)), "ends_at": iso(now + timedelta(days=2, hours=3)),
        "signup_opens_at": iso(now - timedelta(hours=1)), "signup_closes_at": iso(now + timedelta(days=1)),
        "capacity": 10, "waitlist_enabled": True, "audience": {}, "questions": [],
    }
    body.update(overrides)
    return body


def create_event(client, officer_token: str, publish: bool = True, notify: bool = False, **overrides: Any) -> int:
    resp = client.post("/api/v1/officer/events", json=event_body(**overrides), headers=bearer(officer_token))
    assert resp.status_code == 201, resp.json
    event_id = resp.json["id"]
    if publish:
        resp = client.post(f"/api/v1/officer/events/{event_id}/publish", json={"notify": notify},
                           headers=bearer(officer_token))
        assert resp.status_code == 200, resp.json
    return event_id


def bulk_staff(app, count: int, sub_unions: list[str] | None = None, prefix: str = "E") -> list[tuple[int, str]]:
    """`count` staff with mini-program identities, in one transaction; returns (staff id, bearer token) pairs.
    Staff i belongs to sub_unions[i % len(sub_unions)]."""
    from app.services import auth, roster

    sub_unions = sub_unions or ["机关分工会"]
    people = []
    with app.app_context(), unit_of_work():
        for i in range(count):
            fields = roster.StaffFields(name=f"员工{i:04d}", sub_union=sub_unions[i % len(sub_unions)])
            staff, _ = roster.upsert_staff(f"{prefix}{i:05d}", fields, actor_label="test")
            identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"openid-{prefix}{i}", staff_id=staff.id)
            db.session.add(identity)
            db.session.flush()
            people.append((staff.id, auth.issue_token(identity, staff)))
    return people


def sub_union_id(app, name: str) -> int:
    from app.services import roster

    with app.app_context(), unit_of_work():
        return roster.ensure_sub_union(name)[0].id


def signups_of(app, event_id: int) -> list[Signup]:
    """Every signup row of the event, in queue order."""
    with app.app_context():
        return list(db.session.scalars(select(Signup).where(Signup.event_id == event_id).order_by(Signup.sequence)))


def by_status(app, event_id: int, status: SignupStatus) -> list[Signup]:
    return [s for s in signups_of(app, event_id) if s.status is status]


def event_row(app, event_id: int) -> Event:
    with app.app_context():
        return db.session.get(Event, event_id)

