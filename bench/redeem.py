"""Redemption bench (`bash bench/run.sh redeem`; bench/README.md tells what it measures).

32 cashier clients redeem distinct vouchers (the next voucher's QR code of this minute, the next of 32 cashier
tokens); rows: the bare endpoint, the floor (bench/floors.py: one conditional UPDATE) and the app. At the end the
redeemed rows are counted: none may be redeemed twice.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from datetime import datetime, timezone

from sqlalchemy import text

from bench import floors, harness, report, seed
from bench.load import LoadSpec, Target, lines_file, loadgen_name, run_load
from bench.main import BARE_TARGET

DB_NAME = "smart_union_bench_redeem"
JSON = {"Content-Type": "application/json"}
MERCHANT = "指定蛋糕店"


def qr_bodies(vouchers: list[tuple[int, str, str]], window_seconds: int) -> list[str]:
    """Each voucher's QR code of the current window (valid for this window and the next)."""
    from app.services import voucher_codes

    window = voucher_codes.window_of(datetime.now(timezone.utc), window_seconds)
    return [json.dumps({"code": voucher_codes.qr_token(serial, vid, secret, window)})
            for vid, serial, secret in vouchers]


def measure(url: str, name: str, path: str, bodies: list[str], tokens_file: str, spec: LoadSpec):
    """A warm-up on the first quarter of the vouchers, then the measured run on the rest: no voucher is sent twice
    (each load generator run starts at the top of its file)."""
    split = len(bodies) // 4
    files = [lines_file(bodies[:split], ".bodies"), lines_file(bodies[split:], ".bodies")]
    try:
        def load(bodies_file: str, seconds: int):
            target = Target(name, path, method="POST", headers=JSON, tokens_file=tokens_file, bodies_file=bodies_file)
            return run_load(url, target, dataclasses.replace(spec, duration=seconds, warmup=0))
        if spec.warmup:
            load(files[0], spec.warmup)
        return load(files[1], spec.duration)
    finally:
        for path_ in files:
            os.unlink(path_)


def main(argv: list[str] | None = None) -> dict:
    p = harness.parser("bench/run.sh redeem", "生日蛋糕券核销压测 redemption bench")
    p.add_argument("--vouchers", type=int, default=40_000, help="distinct vouchers (default 40,000)")
    args = p.parse_args(argv)
    spec = LoadSpec.from_args(args)
    overrides = seed.settings(DB_NAME, extra={"vouchers.show_window_seconds": 120,
                                              "limits.redeem_guesses_per_merchant": "100000/day"})
    cfg = seed.config(overrides)
    print(f"bench: seeding {args.vouchers:,} vouchers and {args.connections} cashiers into {DB_NAME} ...", flush=True)
    with seed.open_app(cfg, fresh=True) as app:
        vouchers, cashier_tokens = seed.vouchers(app, args.vouchers, args.connections, MERCHANT)
    tokens_file = lines_file(cashier_tokens, ".tokens")
    codes = [secrets.token_hex(10) for _ in range(args.vouchers)]
    seed.floor_table(cfg, floors.REDEEM_SCHEMA, floors.REDEEM_CODES, [{"c": c} for c in codes])
    floor_bodies = [json.dumps({"code": c}) for c in codes]
    print(f"bench: load by {loadgen_name(spec)}, {spec.connections} cashier clients, each request the next distinct "
          f"voucher; {spec.warmup}s warm-up + {spec.duration}s per row; gunicorn {args.workers} workers; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    env = seed.env_for(overrides)
    try:
        with harness.gunicorn(args, "bench.bare_app:app", "bare") as server:
            baseline = run_load(server.url, BARE_TARGET, spec)
        with harness.gunicorn(args, "bench.floors:redeem_app", "redeem-floor", env=env) as server:
            floor = measure(server.url, "POST floor redeem (1 conditional UPDATE 最小正确实现)", "/floor/redeem",
                            floor_bodies, tokens_file, spec)
        with harness.gunicorn(args, "app.wsgi:app", "redeem-app", env=env) as server:
            app_row = measure(server.url, "POST /api/v1/cashier/redeem (核销)", "/api/v1/cashier/redeem",
                              qr_bodies(vouchers, cfg.vouchers.show_window_seconds), tokens_file, spec)
    finally:
        os.unlink(tokens_file)
    print()
    print(report.table([floor, app_row], baseline))
    print(f"\nredeem ÷ floor: req/s {app_row.rps / floor.rps:.2f}x, p99 {app_row.p99_ms / floor.p99_ms:.2f}x")
    with seed.connect(cfg.database.url) as conn:
        app_redeemed = conn.scalar(text("SELECT count(*) FROM vouchers WHERE status = 'redeemed'"))
        floor_redeemed = conn.scalar(text("SELECT count(*) FROM floor_vouchers WHERE redeemed_at IS NOT NULL"))
    print(f"vouchers redeemed (from the rows): app {app_redeemed:,}, floor {floor_redeemed:,}; each voucher was "
          f"sent once, so every non-2xx answer above is a refusal, never a second redemption")
    report.write_json("bench", {"settings": {
        "suite": "redeem", **vars(spec), "loadgen": loadgen_name(spec), "workers": args.workers,
        "vouchers": args.vouchers, "app_redeemed": app_redeemed, "floor_redeemed": floor_redeemed},
        **report.comparison([floor, app_row], baseline)}, latest="latest.json")
    return {"bare": baseline, "floor": floor, "redeem": app_row,
            "failed": "WRONG redemption count" if app_redeemed > args.vouchers else None}


if __name__ == "__main__":
    report.exit_on_failure(main())
