"""Bench of the daily scheduler jobs over a large roster (`bash bench/run.sh jobs [--staff N] [--steps ...]`).

Seeds N staff (seed.jobs_roster), then runs each step in a fresh process so its peak memory is its own: a bare
`SELECT count(*) FROM staff` (the baseline), the birthday job for one day, the holiday job on a day a notice to
everyone is due, the sender's expansion of that notice into per-person rows, and `mp sync-followers` for as many
followers as staff (WeChat's calls counted). Prints seconds, the multiple of the baseline and peak RSS per step.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import text

from bench import report, seed

SHANGHAI = ZoneInfo("Asia/Shanghai")


def run_one(what: str) -> dict:
    """Runs one measured step in this (fresh) process and returns its figures."""
    if what == "followers":
        return sync_followers()
    from app import create_app
    from app.unit_of_work import unit_of_work
    from app.services import delivery, greetings, holidays

    app = create_app(seed.config(seed.settings()))
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
    app = create_app(seed.config(seed.settings(wechat_url=fake.url)))
    with app.app_context(), unit_of_work() as session:
        numbers = [no for (no,) in session.execute(text("SELECT employee_no FROM staff"))]
    for no in numbers:
        fake.state.put_user(FakeUser(f"mp-{no}", f"u-{no}", 1))
    before = _peak_mib()
    started = time.perf_counter()
    synced = followers.SyncReport()
    with app.app_context():
        for openids in followers.follower_pages():
            with unit_of_work():
                followers.sync_follower_page(openids, synced)
    seconds = time.perf_counter() - started
    calls = fake.state.call_counts()
    fake.stop()
    return {"step": "followers", "result": synced.linked, "seconds": seconds, "peak_mib": _peak_mib(),
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


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(prog="bench/run.sh jobs", description="scheduler jobs bench (定时任务压测)")
    parser.add_argument("--staff", type=int, default=100_000, help="staff to seed (default 100,000)")
    parser.add_argument("--one", choices=list(LABELS), help=argparse.SUPPRESS)
    parser.add_argument("--steps", default=",".join(LABELS), help="comma-separated steps (default: all)")
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one)))
        return []
    print(f"seeding {args.staff:,} staff …", flush=True)
    with seed.open_app(seed.config(seed.settings()), fresh=True) as app:
        seed.jobs_roster(app, args.staff)
    results = []
    for step in ["count", *(s for s in args.steps.split(",") if s in LABELS and s != "count")]:
        print(f"bench: step {step} …", flush=True)
        results.append(measure(step))
    baseline = results[0]["seconds"]
    cells = [["step 步骤", "result", "seconds", "× count(*)", "peak MiB", "+MiB"]]
    cells += [[LABELS[r["step"]], f"{r['result']:,}", f"{r['seconds']:.3f}", f"{r['seconds'] / baseline:.1f}",
               f"{r['peak_mib']:.1f}", f"{r['peak_mib'] - r['start_mib']:.1f}"] for r in results]
    print()
    print(report.render_rows(cells))
    print("\npeak MiB: the whole process; +MiB: what the step itself added to the peak after start-up.")
    for r in results:
        if "calls" in r:
            print("WeChat calls of mp sync-followers:", r["calls"])
    return results


if __name__ == "__main__":
    main()
