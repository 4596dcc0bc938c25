"""Signup bench (`bash bench/run.sh signup`, or `.venv/bin/python -m bench.signup --help` once set up).

64 clients contend for one event of 500 seats; 5,000 staff, each request carrying the next staff member's token
(wrk with a Lua script rotating tokens, or the Python load generator). Three rows under the same gunicorn config
and load, in one run, on PostgreSQL (database `smart_union_bench_signup`, recreated each run):

- `GET /bare` — the bare Flask baseline (bench/bare_app.py);
- `POST /floor/events/<id>/signup` — the smallest correct signup (bench/signup_floor.py): one conditional UPDATE
  and one INSERT in one transaction;
- `POST /api/v1/events/<id>/signup` — the app: token check (staff and roles from the database), window, audience
  and answers, the event row lock, the queue number and the signup row, then the one commit.

Each signup row warms up on an event of its own, then is measured on a fresh event of 500 seats. At the end the
confirmed seats of every event are counted from the signup rows (each must be exactly 500).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

from sqlalchemy import create_engine, insert, text

from bench import report, seed
from bench.harness import Figures, Gunicorn, LoadSpec, Target, loadgen_name, run_load
from bench.main import BARE_TARGET

DB_NAME = "smart_union_bench_signup"
SEATS = 500
FILL_UP_ROUNDS = 24            # at most 2 minutes of 5-second runs after the measured one
JSON = {"Content-Type": "application/json"}


def settings() -> dict[str, object]:
    return {**seed.settings("http://127.0.0.1:9/"), "database.url": f"{seed.PG_SERVER}/{DB_NAME}"}


def reset_database(cfg) -> None:
    seed.reset_database(cfg, DB_NAME)


def seed_staff(app, count: int, sub_unions: int = 20) -> list[str]:
    """`count` staff with mini-program identities in a few bulk INSERTs; returns their bearer tokens."""
    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from app.services import auth, roster
    from models import Staff, WeChatApp, WeChatIdentity

    with app.app_context(), unit_of_work():
        unions = [roster.ensure_sub_union(f"第{n}分工会")[0].id for n in range(1, sub_unions + 1)]
        staff = db.session.execute(insert(Staff).returning(Staff.id), [
            {"employee_no": f"S{i:05d}", "name": f"教工{i:04d}", "department": f"学院{i % 30:02d}",
             "sub_union_id": unions[i % sub_unions]} for i in range(1, count + 1)]).scalars().all()
        identities = db.session.execute(insert(WeChatIdentity).returning(WeChatIdentity.id, WeChatIdentity.staff_id), [
            {"app": WeChatApp.MINI_PROGRAM, "openid": f"bench-signup-{sid}", "staff_id": sid} for sid in staff]).all()
        return [auth.issue_token(SimpleNamespace(id=iid), SimpleNamespace(id=sid, auth_version=1))
                for iid, sid in identities]


def create_events(app, count: int) -> list[int]:
    """`count` published events of SEATS seats each, open for signup now, through the events service."""
    from app.unit_of_work import unit_of_work
    from app.services import roster
    from app.services.events import lifecycle
    from models import Role

    now = datetime.now(timezone.utc)
    with app.app_context(), unit_of_work():
        officer, _ = roster.upsert_staff("OFFICER", roster.StaffFields(name="工会干事"), actor_label="bench")
        roster.grant_role(officer, Role.UNION_OFFICER, actor_label="bench")
        ids = []
        for n in range(count):
            event = lifecycle.create_event(officer, lifecycle.EventFields(
                title=f"气排球赛{n + 1}", starts_at=now + timedelta(days=3), ends_at=now + timedelta(days=3, hours=2),
                signup_opens_at=now - timedelta(hours=1), signup_closes_at=now + timedelta(days=2), capacity=SEATS))
            lifecycle.publish_event(officer, event.id, notify=False)
            ids.append(event.id)
        return ids


def create_floor_seats(cfg, count: int) -> list[int]:
    from bench.signup_floor import SCHEMA

    engine = create_engine(cfg.database.url)
    try:
        with engine.begin() as conn:
            for ddl in SCHEMA:
                conn.execute(text(ddl))
            conn.execute(text("INSERT INTO floor_seats (event_id, capacity) VALUES (:e, :c)"),
                         [{"e": n, "c": SEATS} for n in range(1, count + 1)])
    finally:
        engine.dispose()
    return list(range(1, count + 1))


COUNT_CONFIRMED = {
    "app": "SELECT count(*) FROM event_signups WHERE event_id = :e AND status = 'confirmed'",
    "floor": "SELECT count(*) FROM floor_signups WHERE event_id = :e AND confirmed",
}


def seats_taken(cfg, kind: str, event_id: int) -> int:
    """Confirmed signups of one event, counted from the signup rows (not from the counters)."""
    engine = create_engine(cfg.database.url)
    try:
        with engine.connect() as conn:
            return conn.scalar(text(COUNT_CONFIRMED[kind]), {"e": event_id})
    finally:
        engine.dispose()


def confirmed_seats(cfg, app_events: list[int], floor_events: list[int]) -> dict[str, int]:
    """Confirmed signups per event (from the rows), and whether the app's seat counters agree with them."""
    counts = {f"app {e}": seats_taken(cfg, "app", e) for e in app_events}
    counts.update({f"floor {e}": seats_taken(cfg, "floor", e) for e in floor_events})
    engine = create_engine(cfg.database.url)
    try:
        with engine.connect() as conn:
            counts["app counters agree"] = int(all(conn.scalar(text(
                "SELECT confirmed_count = (SELECT count(*) FROM event_signups s WHERE s.event_id = e.id AND "
                "s.status = 'confirmed') AND waitlisted_count = (SELECT count(*) FROM event_signups s "
                "WHERE s.event_id = e.id AND s.status = 'waitlisted') FROM events e WHERE e.id = :e"), {"e": e})
                for e in app_events))
    finally:
        engine.dispose()
    return counts


def signup_target(name: str, path: str, tokens_file: str) -> Target:
    return Target(name, path, method="POST", headers=JSON, body='{"answers": {}}', tokens_file=tokens_file)


def measure(server_url: str, name: str, path_of, events: tuple[int, int], tokens_file: str, spec: LoadSpec,
            confirmed_of) -> Figures:
    """Warm-up on the first event (all of `spec.warmup`), the measured run on a fresh one, then — unmeasured, same
    load — until its seats are gone (a slow machine may not fill 500 seats in the measured seconds), so that the
    final count shows what contention left behind."""
    warm, measured = events

    def load(event_id: int, seconds: int) -> Figures:
        return run_load(server_url, signup_target(name, path_of(event_id), tokens_file),
                        LoadSpec(duration=seconds, warmup=0, connections=spec.connections, threads=spec.threads,
                                 loadgen=spec.loadgen))

    if spec.warmup:
        load(warm, spec.warmup)
    figures = load(measured, spec.duration)
    for _ in range(FILL_UP_ROUNDS):
        if confirmed_of(measured) >= SEATS:
            break
        load(measured, 5)
    return figures


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default_workers = multiprocessing.cpu_count() * 2 + 1
    p = argparse.ArgumentParser(prog="bench/run.sh signup", description="活动报名压测 signup bench")
    p.add_argument("--duration", type=int, default=10, help="measured seconds per row (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per row, on an event of its own")
    p.add_argument("--connections", type=int, default=64, help="concurrent clients (default 64)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads / Python load processes (default 2)")
    p.add_argument("--workers", type=int, default=default_workers, help="gunicorn workers for every app")
    p.add_argument("--staff", type=int, default=5000, help="staff, one token each (default 5000)")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    return p.parse_args(argv)


def prepare(cfg, staff: int) -> tuple[str, list[int], list[int]]:
    """Fresh database: staff (their tokens written to a file), two app events and two floor events of SEATS
    seats each (one to warm up on, one measured). Returns (tokens file, app events, floor events)."""
    from app import create_app

    reset_database(cfg)
    seed.reset_redis()
    app = create_app(cfg)
    try:
        tokens = seed_staff(app, staff)
        app_events = create_events(app, 2)
    finally:
        app.extensions["db.engine"].dispose()
        app.extensions["redis"].close()
    with tempfile.NamedTemporaryFile("w", suffix=".tokens", delete=False) as fh:
        fh.write("\n".join(tokens) + "\n")
    return fh.name, app_events, create_floor_seats(cfg, 2)


def report_seats(cfg, app_events: list[int], floor_events: list[int]) -> tuple[dict, dict, bool]:
    """Prints the confirmed seats of every event; returns (measured events, warm-up events, counters agree)."""
    seats = confirmed_seats(cfg, app_events, floor_events)
    measured = {"app": seats[f"app {app_events[1]}"], "floor": seats[f"floor {floor_events[1]}"]}
    warm = {"app": seats[f"app {app_events[0]}"], "floor": seats[f"floor {floor_events[0]}"]}
    agree = bool(seats["app counters agree"])
    print(f"confirmed seats at the end 报名成功人数 (from the signup rows, after the load ran until no seat was "
          f"left; must be {SEATS}): "
          f"app {measured['app']}, floor {measured['floor']}; warm-up events (at most {SEATS}): "
          f"app {warm['app']}, floor {warm['floor']}")
    print(f"app seat counters equal the signup rows: {'yes' if agree else 'NO'}")
    return measured, warm, agree


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from app.config import load_config

    spec = LoadSpec.from_args(args)
    overrides = settings()
    cfg = load_config(environ={}, overrides=overrides)
    print(f"bench: seeding {args.staff:,} staff and the events into {DB_NAME} ...", flush=True)
    tokens_file, app_events, floor_events = prepare(cfg, args.staff)
    print(f"bench: load by {loadgen_name(spec)}, {spec.connections} connections, each request the next of "
          f"{args.staff:,} staff tokens; {spec.warmup}s warm-up (own event) + {spec.duration}s per row; "
          f"gunicorn {args.workers} workers; {SEATS} seats per event; load average {os.getloadavg()[0]:.1f}",
          flush=True)
    env = seed.env_for(overrides)
    try:
        with Gunicorn("bench.bare_app:app", args.workers, log_name="bare") as server:
            baseline = run_load(server.url, BARE_TARGET, spec)
        with Gunicorn("bench.signup_floor:app", args.workers, env=env, log_name="floor") as server:
            floor = measure(server.url, "POST floor signup (1 UPDATE + 1 INSERT 最小正确实现)",
                            lambda e: f"/floor/events/{e}/signup", tuple(floor_events), tokens_file, spec,
                            lambda e: seats_taken(cfg, "floor", e))
        with Gunicorn("app.wsgi:app", args.workers, env=env, log_name="app") as server:
            detail = run_load(server.url, Target("GET /api/v1/events/<id> (活动详情，同样鉴权，无锁)",
                                                 f"/api/v1/events/{app_events[1]}", tokens_file=tokens_file), spec)
            signup = measure(server.url, "POST /api/v1/events/<id>/signup (报名)",
                             lambda e: f"/api/v1/events/{e}/signup", tuple(app_events), tokens_file, spec,
                             lambda e: seats_taken(cfg, "app", e))
    finally:
        os.unlink(tokens_file)
    print()
    print(report.table([floor, detail, signup], baseline))
    print(f"\nsignup ÷ floor: req/s {signup.rps / floor.rps:.2f}x, p99 {signup.p99_ms / floor.p99_ms:.2f}x; "
          f"signup ÷ detail (the app's own cost of a request, without the lock): req/s {signup.rps / detail.rps:.2f}x, "
          f"p99 {signup.p99_ms / detail.p99_ms:.2f}x")
    measured, warm, agree = report_seats(cfg, app_events, floor_events)
    path = report.write_json([floor, detail, signup], baseline, {
        "suite": "signup", **vars(spec), "loadgen": loadgen_name(spec), "workers": args.workers,
        "staff": args.staff, "seats": SEATS, "confirmed_at_end": measured, "confirmed_warmup": warm})
    print(f"\nbench: figures written to {path.relative_to(report.ROOT)} (and bench/results/latest.json)")
    if set(measured.values()) != {SEATS} or max(warm.values()) > SEATS or not agree:
        raise SystemExit("bench: WRONG seat counts (see above)")


if __name__ == "__main__":
    main()
