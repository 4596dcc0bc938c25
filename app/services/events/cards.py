"""Events as one staff member sees them: the list of events open to them, one event's detail, their own signups
(each with its phase, seats left and place in the waiting list)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import contains_eager, selectinload

from app import clock
from app.extensions import db
from app.services import policy
from app.services.audiences import Audience, includes
from app.services.events import records, seats
from app.services.events.records import PUBLISHED, phase_of
from models import Event, EventQuota, Signup, Staff


@dataclass
class EventCard:
    """An event as one staff member sees it."""

    event: Event
    signup: Signup | None
    seats_left: int
    phase: str
    eligible: bool
    position: int | None = None       # place in the waiting list


def _my_quota(event: Event, staff: Staff) -> EventQuota | None:
    return next((q for q in event.quotas if q.sub_union_id == staff.sub_union_id), None)


def _card(event: Event, staff: Staff, signup: Signup | None, now: datetime) -> EventCard:
    quota = _my_quota(event, staff)
    if event.by_sub_union:
        left = quota.places - quota.confirmed_count if quota else 0
    else:
        left = event.capacity - event.confirmed_count
    eligible = includes(Audience.model_validate(event.audience), staff) and \
        (quota is not None or not event.by_sub_union)
    return EventCard(event, signup, max(0, left), phase_of(event, now), eligible)


def events_for(staff: Staff) -> list[EventCard]:
    """Published events addressed to this person that have not ended, soonest first, with their signup (and
    place in the waiting list): at most four queries whatever the number of events."""
    now = clock.now()
    events = list(db.session.scalars(
        select(Event).where(Event.status.in_(PUBLISHED), Event.ends_at > now, policy.event_visible_condition(staff))
        .options(selectinload(Event.quotas)).order_by(Event.starts_at, Event.id)))
    mine = {s.event_id: s for s in db.session.scalars(select(Signup).where(
        Signup.staff_id == staff.id, Signup.event_id.in_([e.id for e in events])))} if events else {}
    positions = seats.waitlist_positions(list(mine.values()))
    cards = [_card(e, staff, mine.get(e.id), now) for e in events]
    for card in cards:
        card.position = positions.get(card.signup.id) if card.signup else None
    return [c for c in cards if c.eligible]


def open_events_for(staff: Staff) -> list[EventCard]:
    """The events this person can sign up for right now (the official account's 活动 keyword)."""
    return [card for card in events_for(staff) if card.phase == "open"]


def event_for(staff: Staff, event_id: int) -> EventCard:
    event, signup = records.visible_event(staff, event_id)
    card = _card(event, staff, signup, clock.now())
    if card.signup is not None:
        card.position = seats.waitlist_positions([card.signup]).get(card.signup.id)
    return card


def my_signups(staff: Staff) -> list[EventCard]:
    """Every signup of mine (cancelled ones too), latest event first, in three queries."""
    rows = list(db.session.scalars(
        select(Signup).join(Signup.event).options(contains_eager(Signup.event).selectinload(Event.quotas))
        .where(Signup.staff_id == staff.id).order_by(Event.starts_at.desc(), Event.id.desc())))
    positions = seats.waitlist_positions(rows)
    now = clock.now()
    cards = [_card(s.event, staff, s, now) for s in rows]
    for card in cards:
        card.position = positions.get(card.signup.id)
    return cards
