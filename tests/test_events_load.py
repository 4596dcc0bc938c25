"""Seats under contention, over real HTTP: a threaded server whose pool holds 10 connections (well under
PostgreSQL's 100), hundreds of staff tapping 报名 at the same moment, and cancellations racing each other."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select, update

from app.extensions import db
from app.unit_of_work import unit_of_work
from models import Event, EventQuota, Notice, Notification, SignupStatus
from tests.conftest import LiveServer
from tests.events_support import (
    bulk_staff, by_status, create_event, event_body, event_row, signups_of, sub_union_id,
)
from tests.helpers import bearer, wait_for_lock_waiters

pytestmark = pytest.mark.row_locks
CONFIRMED, WAITLISTED = SignupStatus.CONFIRMED, SignupStatus.WAITLISTED


@pytest.fixture
def server(make_app):
    """The app with a bounded pool (10 connections, no overflow) behind a threaded WSGI server."""
    app = make_app(**{"database.pool_size": 10, "database.max_overflow": 0, "database.pool_timeout_seconds": 60})
    live = LiveServer(app).start()
    yield app, live
    live.stop()
    app.extensions["db.engine"].dispose()


@pytest.fixture
def officer_token(make_staff, grant, token_for):
    staff_id = make_staff(employee_no="OFF01", name="工会干事")
    grant(staff_id, "union_officer")
    return token_for(staff_id)


def publish(url: str, token: str, **overrides) -> int:
    resp = requests.post(f"{url}/api/v1/officer/events", json=event_body(**overrides), headers=bearer(token),
                         timeout=30)
    assert resp.status_code == 201, resp.text
    event_id = resp.json()["id"]
    resp = requests.post(f"{url}/api/v1/officer/events/{event_id}/publish", json={"notify": False},
                         headers=bearer(token), timeout=30)
    assert resp.status_code == 200, resp.text
    return event_id


def all_at_once(url: str, tokens: list[str], body: dict | None = None) -> list[tuple[int, dict]]:
    """POSTs from one thread per token, released together by a barrier; (status, JSON) in the tokens' order."""
    barrier = threading.Barrier(len(tokens))

    def one(token: str) -> tuple[int, dict]:
        barrier.wait()
        resp = requests.post(url, json=body, headers=bearer(token), timeout=120)
        return resp.status_code, resp.json()

    with ThreadPoolExecutor(len(tokens)) as pool:
        return list(pool.map(one, tokens))


def assert_queue_is_exact(app, event_id: int, confirmed: int, waitlisted: int) -> None:
    """Exactly `confirmed` seats taken, by the first in the queue; the rest wait in order; counters agree."""
    rows = signups_of(app, event_id)
    assert Counter(s.status for s in rows) == {CONFIRMED: confirmed, WAITLISTED: waitlisted}
    assert [s.sequence for s in rows] == list(range(1, confirmed + waitlisted + 1))   # one number each, no gap
    event = event_row(app, event_id)
    assert (event.confirmed_count, event.waitlisted_count, event.last_sequence) == \
        (confirmed, waitlisted, confirmed + waitlisted)


def test_300_staff_at_once_for_50_seats(server, officer_token):
    app, live = server
    event_id = publish(live.url, officer_token, capacity=50)
    people = bulk_staff(app, 300)
    replies = all_at_once(f"{live.url}/api/v1/events/{event_id}/signup", [t for _, t in people], {"answers": {}})
    assert Counter(code for code, _ in replies) == {200: 300}                      # no 5xx, no refusal
    assert Counter(r["status"] for _, r in replies) == {"confirmed": 50, "waitlisted": 250}
    assert_queue_is_exact(app, event_id, 50, 250)
    db_status = {s.staff_id: s.status.value for s in signups_of(app, event_id)}
    assert all(db_status[sid] == reply["status"] for (sid, _), (_, reply) in zip(people, replies))
    positions = sorted(r["position"] for _, r in replies if r["status"] == "waitlisted")
    assert positions == list(range(1, 251))                                         # each told their true place
    confirmed_first = max(s.sequence for s in by_status(app, event_id, CONFIRMED))
    assert confirmed_first < min(s.sequence for s in by_status(app, event_id, WAITLISTED))


def test_one_person_tapping_ten_times_at_once_gets_one_signup(server, officer_token):
    app, live = server
    event_id = publish(live.url, officer_token, capacity=5)
    [(staff_id, token)] = bulk_staff(app, 1)
    replies = all_at_once(f"{live.url}/api/v1/events/{event_id}/signup", [token] * 10, {"answers": {}})
    assert [code for code, _ in replies] == [200] * 10
    assert {r["status"] for _, r in replies} == {"confirmed"}
    assert len({r["checkin_code"] for _, r in replies}) == 1
    [row] = signups_of(app, event_id)
    assert (row.staff_id, row.sequence) == (staff_id, 1)
    assert event_row(app, event_id).confirmed_count == 1


def test_300_staff_at_once_with_places_per_sub_union(server, officer_token):
    app, live = server
    teams = [f"排球{i}队分工会" for i in range(1, 7)]
    ids = [sub_union_id(app, name) for name in teams]
    event_id = publish(live.url, officer_token, quotas=[{"sub_union_id": i, "places": 4} for i in ids])
    people = bulk_staff(app, 300, teams)                           # 50 per team for 4 places each
    replies = all_at_once(f"{live.url}/api/v1/events/{event_id}/signup", [t for _, t in people], {"answers": {}})
    assert Counter(code for code, _ in replies) == {200: 300}
    assert Counter(r["status"] for _, r in replies) == {"confirmed": 24, "waitlisted": 276}
    assert_queue_is_exact(app, event_id, 24, 276)
    per_team = Counter(s.pool_sub_union_id for s in by_status(app, event_id, CONFIRMED))
    assert per_team == {i: 4 for i in ids}
    for pool in ids:                                               # in each pool, the first four in the queue
        rows = [s for s in signups_of(app, event_id) if s.pool_sub_union_id == pool]
        assert [s.status for s in rows] == [CONFIRMED] * 4 + [WAITLISTED] * 46
        waiting = sorted(r["position"] for (sid, _), (_, r) in zip(people, replies)
                         if r["status"] == "waitlisted" and sid in {s.staff_id for s in rows})
        assert waiting == list(range(1, 47))
    with app.app_context():
        assert db.session.execute(select(EventQuota.confirmed_count, EventQuota.waitlisted_count)).all() == \
            [(4, 46)] * 6


def test_20_cancellations_at_once_promote_the_first_20_waiting_once_each(server, officer_token):
    app, live = server
    event_id = publish(live.url, officer_token, capacity=30)
    people = bulk_staff(app, 80)
    tokens = dict(people)
    for staff_id, token in people:                                  # queue in a known order
        requests.post(f"{live.url}/api/v1/events/{event_id}/signup", json={}, headers=bearer(token), timeout=30)
    confirmed = [s.staff_id for s in by_status(app, event_id, CONFIRMED)]
    first_waiting = [s.staff_id for s in by_status(app, event_id, WAITLISTED)][:20]
    leaving = confirmed[5:25]
    replies = all_at_once(f"{live.url}/api/v1/events/{event_id}/cancel", [tokens[s] for s in leaving])
    assert Counter(code for code, _ in replies) == {200: 20}
    now_confirmed = {s.staff_id for s in by_status(app, event_id, CONFIRMED)}
    assert now_confirmed == (set(confirmed) - set(leaving)) | set(first_waiting)
    assert len(by_status(app, event_id, WAITLISTED)) == 30
    assert (event_row(app, event_id).confirmed_count, event_row(app, event_id).waitlisted_count) == (30, 30)
    with app.app_context():
        told = Counter(db.session.scalars(select(Notification.staff_id).join(Notification.notice).where(
            Notice.occasion.like(f"event-promoted:{event_id}:%"))))
        notices = db.session.scalar(select(func.count()).select_from(Notice).where(
            Notice.occasion.like(f"event-promoted:{event_id}:%")))
    assert told == {staff_id: 1 for staff_id in first_waiting}      # each promoted person told exactly once
    assert notices == 20


def test_cancellations_racing_new_signups_never_overbook(server, officer_token):
    app, live = server
    event_id = publish(live.url, officer_token, capacity=10)
    people = bulk_staff(app, 60)
    for _, token in people[:20]:
        requests.post(f"{live.url}/api/v1/events/{event_id}/signup", json={}, headers=bearer(token), timeout=30)
    leaving = [token for _, token in people[:10]]
    joining = [token for _, token in people[20:]]
    barrier = threading.Barrier(len(leaving) + len(joining))

    def act(args: tuple[str, str]) -> int:
        action, token = args
        barrier.wait()
        return requests.post(f"{live.url}/api/v1/events/{event_id}/{action}", json={}, headers=bearer(token),
                             timeout=120).status_code

    jobs = [("cancel", t) for t in leaving] + [("signup", t) for t in joining]
    with ThreadPoolExecutor(len(jobs)) as pool:
        assert set(pool.map(act, jobs)) == {200}
    rows = signups_of(app, event_id)
    confirmed = [s for s in rows if s.status is CONFIRMED]
    assert len(confirmed) == 10 == event_row(app, event_id).confirmed_count
    assert [s.staff_id for s in confirmed] == [sid for sid, _ in people[10:20]]      # the first ten waiting
    with app.app_context():
        assert db.session.execute(select(Event.confirmed_count, Event.waitlisted_count)).one() == (10, 40)


def test_a_lock_held_too_long_answers_busy_instead_of_hanging(app, officer_token, count_queries):
    """Someone holds the event row (say, a stuck transaction): signups wait at most the lock timeout, then get
    a clear 503 and nothing is written; once the lock is gone they go through. (On PostgreSQL the bound is set by
    the signup's first statement, the UPDATE that takes the place, not by a statement of its own.)"""
    client = app.test_client()
    event_id = create_event(client, officer_token)
    [(staff_id, token)] = bulk_staff(app, 1)
    with app.app_context():
        holder = db.engine.connect()
    try:
        holder.execute(select(Event.id).where(Event.id == event_id).with_for_update())
        with count_queries() as queries:
            resp = client.post(f"/api/v1/events/{event_id}/signup", json={}, headers=bearer(token))
        if holder.dialect.name == "postgresql":
            assert not [s for s in queries.statements if s.startswith("SET")]
            bounding = [s for s in queries.statements if "set_config" in s][0]
            assert bounding.startswith("WITH taken AS") and "UPDATE events" in bounding
        assert resp.status_code == 503
        assert resp.json["error"] == {"code": "event_busy", "message": "报名人数较多，请稍后重试"}
    finally:
        holder.rollback()
        holder.close()
    assert signups_of(app, event_id) == []
    assert client.post(f"/api/v1/events/{event_id}/signup", json={}, headers=bearer(token)).json["status"] == \
        "confirmed"



@pytest.mark.postgresql_only      # the lock waiters are counted from pg_stat_activity; the ten taps cover MariaDB
def test_two_taps_of_one_person_queued_behind_the_lock_give_one_signup_and_the_loser_runs_again(
        app, officer_token, caplog):
    """Both taps saw no signup before the lock; the second meets the first's row at its INSERT and its request runs
    again, answering with that signup (not an error, not a second row)."""
    caplog.set_level("INFO", logger="app.unit_of_work")
    live = LiveServer(app).start()
    try:
        event_id = publish(live.url, officer_token, capacity=5)
        [(staff_id, token)] = bulk_staff(app, 1)
        with app.app_context():
            holder = db.engine.connect()
        holder.execute(select(Event.id).where(Event.id == event_id).with_for_update())
        try:
            with ThreadPoolExecutor(2) as pool:
                taps = [pool.submit(requests.post, f"{live.url}/api/v1/events/{event_id}/signup", json={},
                                    headers=bearer(token), timeout=60) for _ in range(2)]
                wait_for_lock_waiters(app, 2)
                holder.rollback()
                replies = [tap.result() for tap in taps]
        finally:
            holder.close()
    finally:
        live.stop()
    assert [r.status_code for r in replies] == [200, 200]
    assert replies[0].json()["checkin_code"] == replies[1].json()["checkin_code"]
    [row] = signups_of(app, event_id)
    assert (row.staff_id, row.status) == (staff_id, CONFIRMED)
    assert event_row(app, event_id).confirmed_count == 1
    assert any("lost a race" in r.getMessage() for r in caplog.records)


def test_a_refused_answer_gives_back_the_place_the_signup_took(app, officer_token):
    """On PostgreSQL the place is taken before the answers are checked (the UPDATE returns the questions): a refusal
    rolls it back, so the seat and the queue number are still there for the next person."""
    client = app.test_client()
    question = {"key": "tshirt_size", "label": "T 恤尺码", "kind": "choice", "required": True, "options": ["M", "L"]}
    event_id = create_event(client, officer_token, capacity=1, questions=[question])
    [(_, first), (_, second)] = bulk_staff(app, 2)
    refused = client.post(f"/api/v1/events/{event_id}/signup", json={"answers": {}}, headers=bearer(first))
    assert refused.status_code == 422 and refused.json["error"]["code"] == "answer_required"
    assert (event_row(app, event_id).confirmed_count, event_row(app, event_id).last_sequence) == (0, 0)
    taken = client.post(f"/api/v1/events/{event_id}/signup", json={"answers": {"tshirt_size": "L"}},
                        headers=bearer(second))
    assert taken.json["status"] == "confirmed" and [s.answers for s in signups_of(app, event_id)] == [
        {"tshirt_size": "L"}]


def test_a_free_seat_is_given_even_when_the_last_signup_here_was_waitlisted(app, officer_token):
    """Each process remembers whether an event's last signup was waitlisted, to try the waiting list first; a seat
    freed meanwhile (the capacity raised) still goes to the next person, never the waiting list."""
    from app.services.events import records

    client = app.test_client()
    event_id = create_event(client, officer_token, capacity=1)
    people = bulk_staff(app, 3)
    statuses = [client.post(f"/api/v1/events/{event_id}/signup", json={}, headers=bearer(token)).json["status"]
                for _, token in people[:2]]
    assert statuses == ["confirmed", "waitlisted"] and records._WAITLISTED_LAST.get(event_id) in (True, None)
    with app.app_context(), unit_of_work():
        db.session.execute(update(Event).where(Event.id == event_id).values(capacity=2))
    records._WAITLISTED_LAST[event_id] = True
    third = client.post(f"/api/v1/events/{event_id}/signup", json={}, headers=bearer(people[2][1]))
    assert third.json["status"] == "confirmed"


def test_a_first_signup_takes_its_place_and_writes_its_row_in_one_statement(app, officer_token, count_queries):
    """The busy minute's signup, with the caller's card cached. PostgreSQL: one statement, the conditional UPDATE
    that checks everything, bounds its lock wait and counts the place, and the INSERT of the row from that place,
    returning the questions (so the event row is held across no second round trip). Elsewhere a read of the event's columns comes first; MariaDB also locks the row under its own timeout first,
    and reads the counters back: it has no UPDATE ... RETURNING."""
    client = app.test_client()
    event_id = create_event(client, officer_token)
    [(_, token)] = bulk_staff(app, 1)
    client.get("/api/v1/me", headers=bearer(token))
    with count_queries() as queries:
        resp = client.post(f"/api/v1/events/{event_id}/signup", json={}, headers=bearer(token))
    assert resp.status_code == 200 and resp.json["status"] == "confirmed"
    first, dialect = queries.statements[0], app.extensions["db.engine"].dialect.name
    if dialect == "postgresql":
        assert first.startswith("WITH taken AS") and "set_config" in first and "INSERT INTO event_signups" in first
    else:
        assert first.startswith("SELECT events.id, events.status") and "event_quotas" not in first
    assert len(queries.statements) == {"postgresql": 1, "mysql": 5}.get(dialect, 3)


def test_once_the_questions_are_known_a_first_signup_commits_in_its_own_statement(app, officer_token,
                                                                                 count_queries):
    """PostgreSQL: once a signup has shown this process the event's questions, the next person's answers are checked
    first and their signup is one statement that commits itself. The request sends no COMMIT of its own, so the event
    row, which waitlisted signups lock too, is held only while that statement and its commit run. Elsewhere the
    request's transaction commits, as before."""
    from sqlalchemy import event as sa_event

    client = app.test_client()
    event_id = create_event(client, officer_token)
    (_, first), (second_id, second) = bulk_staff(app, 2)
    for token in (first, second):
        client.get("/api/v1/me", headers=bearer(token))
    assert client.post(f"/api/v1/events/{event_id}/signup", json={}, headers=bearer(first)).status_code == 200
    engine, commits = app.extensions["db.engine"], []

    def note_commit(_connection) -> None:
        commits.append(True)
    sa_event.listen(engine, "commit", note_commit)
    try:
        with count_queries() as queries:
            resp = client.post(f"/api/v1/events/{event_id}/signup", json={}, headers=bearer(second))
    finally:
        sa_event.remove(engine, "commit", note_commit)
    assert resp.status_code == 200 and resp.json["status"] == "confirmed"
    if engine.dialect.name == "postgresql":
        assert len(queries.statements) == 1 and commits == []
    else:
        assert commits == [True]
    assert second_id in {s.staff_id for s in by_status(app, event_id, SignupStatus.CONFIRMED)}
    assert event_row(app, event_id).confirmed_count == 2


def test_a_signup_after_an_officer_changed_the_questions_is_judged_by_the_new_ones(app, officer_token):
    """The questions this process last saw decide nothing once an officer has changed them: a question added as
    required refuses the answers the old ones would have taken, and answers to a removed one's requirement are no
    longer asked for."""
    client = app.test_client()
    event_id = create_event(client, officer_token)
    people = [token for _, token in bulk_staff(app, 4)]
    for token in people:                 # their cards cached: a signup's first query is then its own
        client.get("/api/v1/me", headers=bearer(token))

    def sign_up(token: str, answers: dict):
        return client.post(f"/api/v1/events/{event_id}/signup", json={"answers": answers}, headers=bearer(token))

    def ask(questions: list) -> None:
        resp = client.patch(f"/api/v1/officer/events/{event_id}", json={"questions": questions},
                            headers=bearer(officer_token))
        assert resp.status_code == 200, resp.json

    assert sign_up(people[0], {}).status_code == 200                # no questions: known to this process now
    ask([{"key": "size", "label": "T恤尺码", "kind": "choice", "required": True, "options": ["S", "M"]}])
    refused = sign_up(people[1], {})
    assert (refused.status_code, refused.json["error"]["code"]) == (422, "answer_required")
    assert sign_up(people[2], {"size": "M"}).json["answers"] == {"size": "M"}      # the new questions known now
    ask([])
    assert sign_up(people[3], {}).status_code == 200
    assert sorted(s.answers.get("size", "-") for s in signups_of(app, event_id)) == ["-", "-", "M"]
    assert event_row(app, event_id).confirmed_count == 3


def test_a_signups_answer_is_written_after_its_commit_so_the_event_row_is_free_meanwhile(app, officer_token,
                                                                                         monkeypatch):
    """The next person's signup waits for the event row only as long as the place takes, not while this person's
    answer (their check-in code signed) is shaped: by then the row is committed and free."""
    from app.services.events import checkin
    client = app.test_client()
    event_id = create_event(client, officer_token)
    [(_, token)] = bulk_staff(app, 1)
    row_free, sign = [], checkin.checkin_code

    def shaping(signup):
        if db.engine.dialect.name != "sqlite":       # one writer at a time there: nothing to see
            with db.engine.connect() as other:
                nowait = " NOWAIT" if other.dialect.name == "postgresql" else ""
                if other.dialect.name != "postgresql":
                    other.exec_driver_sql("SET SESSION innodb_lock_wait_timeout = 1")
                other.exec_driver_sql(f"SELECT id FROM events WHERE id = {event_id} FOR UPDATE{nowait}")
                row_free.append(True)
                other.rollback()
        return sign(signup)

    monkeypatch.setattr(checkin, "checkin_code", shaping)
    resp = client.post(f"/api/v1/events/{event_id}/signup", json={}, headers=bearer(token))
    assert resp.status_code == 200 and resp.json["checkin_code"]
    assert row_free == ([] if app.extensions["db.engine"].dialect.name == "sqlite" else [True])
