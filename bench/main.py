"""Bench driver (`bash bench/run.sh`, or `.venv/bin/python -m bench.main --help` once set up).

Seeds the bench database, measures the bare Flask baseline, then each app endpoint under the same gunicorn
config and load, prints the table and writes bench/results/bench-<time>.json (and latest.json).

To add a bench: seed what it needs in `prepare` (or a helper in seed.py) and append a Target in `app_targets`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
from dataclasses import asdict, dataclass

from bench import report, seed
from bench.harness import Gunicorn, LoadSpec, Target, loadgen_name, run_load

BARE_TARGET = Target("GET /bare (bare Flask 基线)", "/bare")


@dataclass
class Context:
    """What `prepare` seeded, for the targets to use."""

    token: str
    employee_no: str


def prepare(cfg, staff_count: int) -> Context:
    from app import create_app

    seed.reset_database(cfg)
    seed.reset_redis()
    app = create_app(cfg)
    try:
        ids = seed.seed_staff(app, staff_count)
        token = seed.bind_token(app, ids[0])
    finally:
        app.extensions["db.engine"].dispose()
        app.extensions["redis"].close()
    return Context(token=token, employee_no="B00001")


def app_targets(ctx: Context) -> list[Target]:
    auth = {"Authorization": f"Bearer {ctx.token}"}
    return [
        Target("GET /api/v1/me (我的资料)", "/api/v1/me", headers=auth),
    ]


def parse_args() -> argparse.Namespace:
    default_workers = multiprocessing.cpu_count() * 2 + 1      # gunicorn.conf.py's own default
    p = argparse.ArgumentParser(description="Smart Union HTTP benchmarks (智慧工会压测)")
    p.add_argument("--duration", type=int, default=10, help="measured seconds per endpoint (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per endpoint (default 2)")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads / Python load processes (default 2)")
    p.add_argument("--workers", type=int, default=default_workers,
                   help=f"gunicorn workers for both apps (default {default_workers}, as gunicorn.conf.py)")
    p.add_argument("--staff", type=int, default=1000, help="staff to seed (default 1000)")
    p.add_argument("--no-recycle", action="store_true",
                   help="run gunicorn with --max-requests 0 (no worker recycling during the load)")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto",
                   help="auto: wrk when on PATH, else the Python load generator")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    load_at_start = os.getloadavg()[0]
    if load_at_start > 1:
        print(f"bench: note: load average {load_at_start:.1f} before starting; other work on this machine "
              "will skew the figures", flush=True)
    from app.config import load_config
    from app.fakewechat import FakeWeChatServer

    spec = LoadSpec.from_args(args)
    fake = FakeWeChatServer.from_config(load_config(environ={})).start()
    try:
        overrides = seed.settings(fake.url)
        cfg = load_config(environ={}, overrides=overrides)
        print(f"bench: seeding {args.staff} staff into {seed.DB_NAME} ...", flush=True)
        ctx = prepare(cfg, args.staff)
        print(f"bench: load by {loadgen_name(spec)}, {spec.connections} connections, {spec.threads} threads, "
              f"{spec.warmup}s warm-up + {spec.duration}s per endpoint; gunicorn {args.workers} workers",
              flush=True)

        gunicorn_args = ["--max-requests", "0"] if args.no_recycle else []
        with Gunicorn("bench.bare_app:app", args.workers, log_name="bare", extra_args=gunicorn_args) as server:
            baseline = run_load(server.url, BARE_TARGET, spec)
            baseline.detail["worker_boots"] = server.worker_boots()
        rows = []
        with Gunicorn("app.wsgi:app", args.workers, env=seed.env_for(overrides), log_name="app",
                      extra_args=gunicorn_args) as server:
            for target in app_targets(ctx):
                rows.append(run_load(server.url, target, spec))
            boots = server.worker_boots()
        for row in rows:
            row.detail["worker_boots"] = boots       # for the whole app run
    finally:
        fake.stop()

    print()
    print(report.table(rows, baseline))
    path = report.write_json(rows, baseline, {**asdict(spec), "loadgen": loadgen_name(spec),
                                              "workers": args.workers, "staff": args.staff,
                                              "no_recycle": args.no_recycle, "loadavg_at_start": load_at_start})
    print(f"\nbench: figures written to {path.relative_to(report.ROOT)} (and bench/results/latest.json)")
    recycled = {f.name: f.detail["worker_boots"] - args.workers for f in [baseline, *rows]}
    if any(recycled.values()):
        print(f"bench: workers recycled by max_requests during the run: {json.dumps(recycled, ensure_ascii=False)}")


if __name__ == "__main__":
    main()
