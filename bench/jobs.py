"""Bench of the daily scheduler jobs over a large roster (`bash bench/run.sh jobs [--staff N]`).

Seeds N staff (default 100,000; a fifth keep lunar birthdays), then runs, each in a fresh process so its peak
memory is its own: a bare `SELECT count(*) FROM staff` (the baseline), the birthday job for one day, the holiday
job on a day a notice to everyone is due, and the sender's expansion of that notice into per-person rows.
Then `mp sync-followers` for as many followers as staff, each linked by unionid (WeChat's calls counted).
Prints seconds and peak RSS (MiB) per run, and each run's time as a multiple of the baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import insert, text

from bench import seed

SHANGHAI = ZoneInfo("Asia/Shanghai")
BIRTHDAY = date(2027, 6, 1)


def _config():
    from app.config import load_config

    return load_config(environ={}, overrides=seed.settings("http://127.0.0.1:9/"))


def seed_roster(count: int) -> None:
    from app import create_app
    from app.unit_of_work import unit_of_work
    from app.services.calendar import lunar_month_day

    cfg = _config()
    seed.reset_database(cfg)
    seed.reset_redis()
    app = create_app(cfg)
    rng = random.Random(7)
    with app.app_context(), unit_of_work() as session:
        rows = []
        for n in range(count):
            born = date(1950, 1, 1) + timedelta(days=rng.randrange(365 * 55))
            lunar = lunar_month_day(born)
            rows.append({"employee_no": f"J{n:06d}", "name": "会员", "birthday": born, "birth_month": born.month,
                         "birth_day": born.day, "lunar_birth_month": lunar[0], "lunar_birth_day": lunar[1],
                         "birthday_calendar": "lunar" if n % 5 == 0 else "solar",
                         "status": "retired" if n % 7 == 0 else "active",
                         "gender": "female" if n % 2 else "male"})
        from models import Staff

        for start in range(0, count, 5000):
            session.execute(insert(Staff), rows[start:start + 5000])
    with app.app_context(), unit_of_work() as session:      # each bound in the mini-program (unionid u-<n>)
        from models import WeChatIdentity

        ids = session.execute(text("SELECT id, employee_no FROM staff")).all()
        identities = [{"app": "mini", "openid": f"mini-{no}", "unionid": f"u-{no}", "staff_id": sid}
                      for sid, no in ids]
        for start in range(0, len(identities), 5000):
            session.execute(insert(WeChatIdentity), identities[start:start + 5000])
    app.extensions["db.engine"].dispose()


def run_one(what: str) -> dict:
    """Runs one measured step in this (fresh) process and returns its figures."""
    if what == "followers":
        return sync_followers()
    from app import create_app
    from app.unit_of_work import unit_of_work
    from app.services import delivery, greetings, holidays

    app = create_app(_config())
    with app.app_context():
        before = _peak_mib()
        started = time.perf_counter()
        with unit_of_work() as session:
            if what == "count":
                result = session.execute(text("SELECT count(*) FROM staff")).scalar()
            elif what == "birthdays":
                result = greetings.send_birthday_greetings(datetime(2027, 6, 1, 9, tzinfo=SHANGHAI))
            elif what == "holidays":
                plan = next(p for p in holidays.planned_notices(2027) if "dragon_boat" in p.keys)
                result = holidays.send_due_holiday_notices(
                    datetime.combine(plan.send_date, datetime.min.time(), SHANGHAI) + timedelta(hours=10))
        if what == "expand":
            result = 0
            while True:
                with unit_of_work():
                    written = delivery.expand_one_fanout_batch()
                if not written:
                    break
                result += written
        seconds = time.perf_counter() - started
    return {"step": what, "result": result, "seconds": seconds, "peak_mib": _peak_mib(), "start_mib": before}


def sync_followers() -> dict:
    """`mp sync-followers` as the command runs it, for as many followers as staff (each with the unionid of a
    staff member's mini-program identity), against the fake WeChat server: seconds and WeChat calls."""
    from app import create_app
    from app.config import load_config
    from app.fakewechat.server import FakeWeChatServer
    from app.fakewechat.state import FakeUser
    from app.services import followers
    from app.unit_of_work import unit_of_work

    fake = FakeWeChatServer.from_config(load_config(environ={})).start()
    app = create_app(load_config(environ={}, overrides=seed.settings(fake.url)))
    with app.app_context(), unit_of_work() as session:
        numbers = [no for (no,) in session.execute(text("SELECT employee_no FROM staff"))]
    for no in numbers:
        fake.state.put_user(FakeUser(f"mp-{no}", f"u-{no}", 1))
    before = _peak_mib()
    started = time.perf_counter()
    report = followers.SyncReport()
    with app.app_context():
        for openids in followers.follower_pages():
            with unit_of_work():
                followers.sync_follower_page(openids, report)
    seconds = time.perf_counter() - started
    calls = fake.state.call_counts()
    fake.stop()
    return {"step": "followers", "result": report.linked, "seconds": seconds, "peak_mib": _peak_mib(),
            "start_mib": before, "calls": {k: v for k, v in calls.items() if k.startswith("cgi-bin/user")}}


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(what: str) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.jobs", "--one", what], capture_output=True, text=True,
                         check=True, timeout=1800)
    return json.loads(out.stdout.strip().splitlines()[-1])


LABELS = {"count": "SELECT count(*) FROM staff (基线)", "birthdays": "生日祝福任务 birthdays job (1 day)",
          "holidays": "节日通知任务 holidays job (writes the fan-out)", "expand": "发送进程展开 fan-out → rows",
          "followers": "mp sync-followers (linked by unionid)"}


def main() -> None:
    parser = argparse.ArgumentParser(description="scheduler jobs bench (定时任务压测)")
    parser.add_argument("--staff", type=int, default=100_000)
    parser.add_argument("--one", choices=list(LABELS), help=argparse.SUPPRESS)
    parser.add_argument("--steps", default=",".join(LABELS), help="comma-separated steps (default: all)")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one)))
        return
    print(f"seeding {args.staff:,} staff …", flush=True)
    seed_roster(args.staff)
    results = [measure(step) for step in ["count", *(s for s in args.steps.split(",") if s in LABELS and s != "count")]]
    baseline = results[0]["seconds"]
    print(f"\n{'step 步骤':<48} {'result':>9} {'seconds':>9} {'× count(*)':>11} {'peak MiB':>9} {'+MiB':>6}")
    for r in results:
        print(f"{LABELS[r['step']]:<48} {r['result']:>9,} {r['seconds']:>9.3f} {r['seconds'] / baseline:>11.1f}"
              f" {r['peak_mib']:>9.1f} {r['peak_mib'] - r['start_mib']:>6.1f}")
    print("\npeak MiB: the whole process; +MiB: what the step itself added to the peak after start-up.")
    for r in results:
        if "calls" in r:
            print("WeChat calls of mp sync-followers:", r["calls"])


if __name__ == "__main__":
    main()
