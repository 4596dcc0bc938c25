"""Signup bench (`bash bench/run.sh signup`; bench/README.md tells what it measures and how to read it).

64 clients contend for one event of 500 seats, each request carrying the next of 5,000 staff tokens; rows: the bare
endpoint, the floor (bench/floors.py: one conditional UPDATE + one INSERT), the app's event detail (same token
check, no lock) and its signup. Each signup row warms up on an event of its own and is measured on a fresh one; at
the end the confirmed seats are counted from the rows (each measured event must hold exactly its seats).
"""

from __future__ import annotations

import dataclasses
import os

from sqlalchemy import text

from bench import floors, harness, report, seed
from bench.load import Figures, LoadSpec, Target, lines_file, loadgen_name, run_load
from bench.main import BARE_TARGET

DB_NAME = "smart_union_bench_signup"
FILL_UP_ROUNDS = 24            # at most 2 minutes of 5-second runs after the measured one
JSON = {"Content-Type": "application/json"}
COUNT_CONFIRMED = {
    "app": "SELECT count(*) FROM event_signups WHERE event_id = :e AND status = 'confirmed'",
    "floor": "SELECT count(*) FROM floor_signups WHERE event_id = :e AND confirmed",
}
COUNTERS_AGREE = ("SELECT confirmed_count = (SELECT count(*) FROM event_signups s WHERE s.event_id = e.id AND "
                  "s.status = 'confirmed') AND waitlisted_count = (SELECT count(*) FROM event_signups s "
                  "WHERE s.event_id = e.id AND s.status = 'waitlisted') FROM events e WHERE e.id = :e")


def seats_taken(cfg, kind: str, event_id: int) -> int:
    """Confirmed signups of one event, counted from the signup rows (not from the counters)."""
    with seed.connect(cfg.database.url) as conn:
        return conn.scalar(text(COUNT_CONFIRMED[kind]), {"e": event_id})


def prepare(cfg, staff: int, seats: int) -> tuple[str, list[int], list[int]]:
    """Fresh database: staff (their tokens written to a file), two app events and two floor events of `seats`
    seats each (one to warm up on, one measured). Returns (tokens file, app events, floor events)."""
    with seed.open_app(cfg, fresh=True) as app:
        tokens = seed.signup_staff(app, staff)
        app_events = seed.signup_events(app, 2, seats)
    tokens_file = lines_file(tokens, ".tokens")
    seed.floor_table(cfg, floors.SIGNUP_SCHEMA, floors.SIGNUP_SEATS, [{"e": n, "c": seats} for n in (1, 2)])
    return tokens_file, app_events, [1, 2]


def measure(server_url: str, name: str, path_of, events: list[int], tokens_file: str, spec: LoadSpec,
            filled) -> Figures:
    """Warm-up on the first event (all of `spec.warmup`), the measured run on a fresh one, then — unmeasured, same
    load — until `filled(event)` (a slow machine may not fill the seats in the measured seconds), so that the final
    count shows what contention left behind."""
    warm, measured = events

    def load(event_id: int, seconds: int) -> Figures:
        target = Target(name, path_of(event_id), method="POST", headers=JSON, body='{"answers": {}}',
                        tokens_file=tokens_file)
        return run_load(server_url, target, dataclasses.replace(spec, duration=seconds, warmup=0))

    if spec.warmup:
        load(warm, spec.warmup)
    figures = load(measured, spec.duration)
    for _ in range(FILL_UP_ROUNDS):
        if filled(measured):
            break
        load(measured, 5)
    return figures


def report_seats(cfg, seats: int, app_events: list[int], floor_events: list[int]) -> tuple[dict, dict, bool]:
    """Prints the confirmed seats of every event; returns (measured events, warm-up events, counters agree)."""
    measured = {"app": seats_taken(cfg, "app", app_events[1]), "floor": seats_taken(cfg, "floor", floor_events[1])}
    warm = {"app": seats_taken(cfg, "app", app_events[0]), "floor": seats_taken(cfg, "floor", floor_events[0])}
    with seed.connect(cfg.database.url) as conn:
        agree = all(conn.scalar(text(COUNTERS_AGREE), {"e": e}) for e in app_events)
    print(f"confirmed seats at the end 报名成功人数 (from the signup rows, after the load ran until no seat was "
          f"left; must be {seats}): "
          f"app {measured['app']}, floor {measured['floor']}; warm-up events (at most {seats}): "
          f"app {warm['app']}, floor {warm['floor']}")
    print(f"app seat counters equal the signup rows: {'yes' if agree else 'NO'}")
    return measured, warm, agree


def main(argv: list[str] | None = None) -> dict:
    p = harness.parser("bench/run.sh signup", "活动报名压测 signup bench", connections=64)
    p.add_argument("--staff", type=int, default=5000, help="staff, one token each (default 5000)")
    p.add_argument("--seats", type=int, default=500, help="seats of each event (default 500)")
    args = p.parse_args(argv)
    spec = LoadSpec.from_args(args)
    overrides = seed.settings(DB_NAME)
    cfg = seed.config(overrides)
    print(f"bench: seeding {args.staff:,} staff and the events into {DB_NAME} ...", flush=True)
    tokens_file, app_events, floor_events = prepare(cfg, args.staff, args.seats)
    print(f"bench: load by {loadgen_name(spec)}, {spec.connections} connections, each request the next of "
          f"{args.staff:,} staff tokens; {spec.warmup}s warm-up (own event) + {spec.duration}s per row; "
          f"gunicorn {args.workers} workers; {args.seats} seats per event; load average {os.getloadavg()[0]:.1f}",
          flush=True)
    env = seed.env_for(overrides)
    try:
        with harness.gunicorn(args, "bench.bare_app:app", "bare") as server:
            baseline = run_load(server.url, BARE_TARGET, spec)
        with harness.gunicorn(args, "bench.floors:signup_app", "floor", env=env) as server:
            floor = measure(server.url, "POST floor signup (1 UPDATE + 1 INSERT 最小正确实现)",
                            lambda e: f"/floor/events/{e}/signup", floor_events, tokens_file, spec,
                            lambda e: seats_taken(cfg, "floor", e) >= args.seats)
        with harness.gunicorn(args, "app.wsgi:app", "app", env=env) as server:
            detail = run_load(server.url, Target("GET /api/v1/events/<id> (活动详情，同样鉴权，无锁)",
                                                 f"/api/v1/events/{app_events[1]}", tokens_file=tokens_file), spec)
            signup = measure(server.url, "POST /api/v1/events/<id>/signup (报名)",
                             lambda e: f"/api/v1/events/{e}/signup", app_events, tokens_file, spec,
                             lambda e: seats_taken(cfg, "app", e) >= args.seats)
    finally:
        os.unlink(tokens_file)
    print()
    print(report.table([floor, detail, signup], baseline))
    print(f"\nsignup ÷ floor: req/s {signup.rps / floor.rps:.2f}x, p99 {signup.p99_ms / floor.p99_ms:.2f}x; "
          f"signup ÷ detail (the app's own cost of a request, without the lock): req/s {signup.rps / detail.rps:.2f}x, "
          f"p99 {signup.p99_ms / detail.p99_ms:.2f}x")
    measured, warm, agree = report_seats(cfg, args.seats, app_events, floor_events)
    report.write_json("bench", {"settings": {
        "suite": "signup", **vars(spec), "loadgen": loadgen_name(spec), "workers": args.workers,
        "staff": args.staff, "seats": args.seats, "confirmed_at_end": measured, "confirmed_warmup": warm},
        **report.comparison([floor, detail, signup], baseline)}, latest="latest.json")
    wrong = set(measured.values()) != {args.seats} or max(warm.values()) > args.seats or not agree
    return {"bare": baseline, "floor": floor, "detail": detail, "signup": signup,
            "failed": "WRONG seat counts (see above)" if wrong else None}


if __name__ == "__main__":
    report.exit_on_failure(main())
