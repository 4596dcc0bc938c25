"""Bench of GET /api/v1/me (`bash bench/run.sh`, or `.venv/bin/python -m bench.main --help` once set up).

Seeds the bench database, measures the bare Flask baseline, then each app endpoint under the same gunicorn
config and load, prints the table and writes bench/results/bench-<time>.json (and latest.json).

To add an endpoint: seed what it needs in `prepare` (or a helper in seed.py) and append a Target in `app_targets`.
"""

from __future__ import annotations

import json
from dataclasses import asdict

from bench import harness, report, seed
from bench.load import LoadSpec, Target, loadgen_name, run_load

BARE_TARGET = Target("GET /bare (bare Flask 基线)", "/bare")


def prepare(cfg, staff_count: int) -> str:
    """Seeds the staff; returns the bearer token of the first."""
    with seed.open_app(cfg, fresh=True) as app:
        return seed.bind_token(app, seed.roster_staff(app, staff_count)[0])


def app_targets(token: str) -> list[Target]:
    auth = {"Authorization": f"Bearer {token}"}
    return [
        Target("GET /api/v1/me (我的资料)", "/api/v1/me", headers=auth),
    ]


def main(argv: list[str] | None = None) -> dict:
    p = harness.parser("bench/run.sh", "Smart Union HTTP benchmarks (智慧工会压测)")
    p.add_argument("--staff", type=int, default=1000, help="staff to seed (default 1000)")
    args = p.parse_args(argv)
    load_at_start = report.note_load()
    from app.config import load_config
    from app.fakewechat import FakeWeChatServer

    spec = LoadSpec.from_args(args)
    fake = FakeWeChatServer.from_config(load_config(environ={})).start()
    try:
        overrides = seed.settings(wechat_url=fake.url)
        print(f"bench: seeding {args.staff} staff into {seed.DB_NAME} ...", flush=True)
        token = prepare(seed.config(overrides), args.staff)
        print(f"bench: load by {loadgen_name(spec)}, {spec.connections} connections, {spec.threads} threads, "
              f"{spec.warmup}s warm-up + {spec.duration}s per endpoint; gunicorn {args.workers} workers",
              flush=True)
        with harness.gunicorn(args, "bench.bare_app:app", "bare") as server:
            baseline = run_load(server.url, BARE_TARGET, spec)
            baseline.detail["worker_boots"] = server.worker_boots()
        rows = []
        with harness.gunicorn(args, "app.wsgi:app", "app", env=seed.env_for(overrides)) as server:
            for target in app_targets(token):
                rows.append(run_load(server.url, target, spec))
            boots = server.worker_boots()
        for row in rows:
            row.detail["worker_boots"] = boots       # for the whole app run
    finally:
        fake.stop()

    print()
    print(report.table(rows, baseline))
    report.write_json("bench", {"settings": {**asdict(spec), "loadgen": loadgen_name(spec), "workers": args.workers,
                                             "staff": args.staff, "no_recycle": args.no_recycle,
                                             "loadavg_at_start": load_at_start},
                                **report.comparison(rows, baseline)}, latest="latest.json")
    recycled = {f.name: f.detail["worker_boots"] - args.workers for f in [baseline, *rows]}
    if any(recycled.values()):
        print(f"bench: workers recycled by max_requests during the run: {json.dumps(recycled, ensure_ascii=False)}")
    return {"bare": baseline, "me": rows[0]}


if __name__ == "__main__":
    main()
