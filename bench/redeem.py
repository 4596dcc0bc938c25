"""Redemption bench (`bash bench/run.sh redeem`; `--help` for the options).

32 cashier clients redeem distinct vouchers (each request carries the next voucher's QR code of this minute, and
the next of 32 cashier tokens). Three rows under the same gunicorn config and load, in one run, on PostgreSQL
(database `smart_union_bench_redeem`, recreated each run):

- `GET /bare` — the bare Flask baseline (bench/bare_app.py);
- `POST /floor/redeem` — the smallest correct redemption (bench/redeem_floor.py): one conditional UPDATE;
- `POST /api/v1/cashier/redeem` — the app: the cashier's token (cashier and merchant from the database), the code's
  MAC, the voucher, the conditional UPDATE, its history row and the holder's notice, then the one commit.

At the end every voucher is counted: redeemed vouchers must equal the app's successful requests (none twice).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import tempfile
from datetime import date, datetime, timedelta, timezone
from types import SimpleNamespace

from sqlalchemy import create_engine, insert, text

from bench import report, seed
from bench.harness import Gunicorn, LoadSpec, Target, loadgen_name, run_load
from bench.main import BARE_TARGET

DB_NAME = "smart_union_bench_redeem"
JSON = {"Content-Type": "application/json"}
MERCHANT = "指定蛋糕店"


def settings() -> dict[str, object]:
    return {**seed.settings("http://127.0.0.1:9/"), "database.url": f"{seed.PG_SERVER}/{DB_NAME}",
            "vouchers.show_window_seconds": 120, "limits.redeem_guesses_per_merchant": "100000/day"}


def seed_vouchers(app, count: int, cashiers: int) -> tuple[list[tuple[int, str, str]], list[str]]:
    """`count` members with a valid voucher each and `cashiers` cashiers of the bakery, in bulk INSERTs; returns
    (voucher id, serial, secret) of each voucher and the cashiers' tokens."""
    from app import clock
    from app.extensions import db
    from app.services import auth
    from app.unit_of_work import unit_of_work
    from models import Cashier, Merchant, Staff, Voucher, VoucherStatus, WeChatApp, WeChatIdentity

    now = clock.now()
    with app.app_context(), unit_of_work():
        staff = db.session.execute(insert(Staff).returning(Staff.id), [
            {"employee_no": f"R{i:06d}", "name": f"会员{i:05d}", "department": ""}
            for i in range(1, count + 1)]).scalars().all()
        vouchers = db.session.execute(insert(Voucher).returning(Voucher.id, Voucher.serial, Voucher.secret), [
            {"staff_id": sid, "year": now.year, "birthday": date(now.year, 6, 1), "serial": secrets.token_hex(8),
             "secret": secrets.token_hex(32), "status": VoucherStatus.VALID, "merchant": MERCHANT,
             "face_value_fen": 20000, "cost_fen": 18000, "policy_version": 1, "issued_at": now,
             "valid_until": now + timedelta(days=60)} for sid in staff]).all()
        merchant = Merchant(name=MERCHANT, shops=["总店"], active=True)
        db.session.add(merchant)
        db.session.flush()
        tokens = []
        for n in range(cashiers):
            identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"bench-cashier-{n}")
            db.session.add(identity)
            db.session.flush()
            cashier = Cashier(merchant_id=merchant.id, identity_id=identity.id, shop="总店", name=f"收银员{n}",
                              auth_version=1)
            db.session.add(cashier)
            db.session.flush()
            tokens.append(auth.issue_cashier_token(SimpleNamespace(id=identity.id), cashier))
        return [tuple(v) for v in vouchers], tokens


def floor_codes(cfg, count: int) -> list[str]:
    from bench.redeem_floor import SCHEMA

    codes = [secrets.token_hex(10) for _ in range(count)]
    engine = create_engine(cfg.database.url)
    try:
        with engine.begin() as conn:
            for ddl in SCHEMA:
                conn.execute(text(ddl))
            conn.execute(text("INSERT INTO floor_vouchers (code) VALUES (:c)"), [{"c": c} for c in codes])
    finally:
        engine.dispose()
    return codes


def write_lines(lines: list[str], suffix: str) -> str:
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return fh.name


def qr_bodies(vouchers: list[tuple[int, str, str]], window_seconds: int) -> list[str]:
    """Each voucher's QR code of the current window (valid for this window and the next)."""
    from app.services import voucher_codes

    window = voucher_codes.window_of(datetime.now(timezone.utc), window_seconds)
    return [json.dumps({"code": voucher_codes.qr_token(serial, vid, secret, window)}) for vid, serial, secret in vouchers]


def measure(url: str, name: str, path: str, bodies: list[str], tokens_file: str, spec: LoadSpec):
    """A warm-up on the first quarter of the vouchers, then the measured run on the rest: no voucher is sent twice
    (each load generator run starts at the top of its file)."""
    split = len(bodies) // 4
    files = [write_lines(bodies[:split], ".bodies"), write_lines(bodies[split:], ".bodies")]
    try:
        def load(bodies_file: str, seconds: int):
            target = Target(name, path, method="POST", headers=JSON, tokens_file=tokens_file, bodies_file=bodies_file)
            return run_load(url, target, LoadSpec(duration=seconds, warmup=0, connections=spec.connections,
                                                  threads=spec.threads, loadgen=spec.loadgen))
        if spec.warmup:
            load(files[0], spec.warmup)
        return load(files[1], spec.duration)
    finally:
        for path_ in files:
            os.unlink(path_)


def redeemed_count(cfg) -> tuple[int, int]:
    """(vouchers redeemed in the app, floor vouchers redeemed), counted from the rows."""
    engine = create_engine(cfg.database.url)
    try:
        with engine.connect() as conn:
            return (conn.scalar(text("SELECT count(*) FROM vouchers WHERE status = 'redeemed'")),
                    conn.scalar(text("SELECT count(*) FROM floor_vouchers WHERE redeemed_at IS NOT NULL")))
    finally:
        engine.dispose()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.sh redeem", description="生日蛋糕券核销压测 redemption bench")
    p.add_argument("--duration", type=int, default=10, help="measured seconds per row (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per row")
    p.add_argument("--connections", type=int, default=32, help="concurrent cashier clients (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads / Python load processes (default 2)")
    p.add_argument("--workers", type=int, default=multiprocessing.cpu_count() * 2 + 1, help="gunicorn workers")
    p.add_argument("--vouchers", type=int, default=40_000, help="distinct vouchers (default 40,000)")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    from app import create_app
    from app.config import load_config

    spec = LoadSpec.from_args(args)
    overrides = settings()
    cfg = load_config(environ={}, overrides=overrides)
    print(f"bench: seeding {args.vouchers:,} vouchers and {args.connections} cashiers into {DB_NAME} ...", flush=True)
    seed.reset_database(cfg, DB_NAME)
    seed.reset_redis()
    app = create_app(cfg)
    try:
        vouchers, cashier_tokens = seed_vouchers(app, args.vouchers, args.connections)
    finally:
        app.extensions["db.engine"].dispose()
        app.extensions["redis"].close()
    tokens_file = write_lines(cashier_tokens, ".tokens")
    floor_bodies = [json.dumps({"code": c}) for c in floor_codes(cfg, args.vouchers)]
    print(f"bench: load by {loadgen_name(spec)}, {spec.connections} cashier clients, each request the next distinct "
          f"voucher; {spec.warmup}s warm-up + {spec.duration}s per row; gunicorn {args.workers} workers; "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)
    env = seed.env_for(overrides)
    try:
        with Gunicorn("bench.bare_app:app", args.workers, log_name="bare") as server:
            baseline = run_load(server.url, BARE_TARGET, spec)
        with Gunicorn("bench.redeem_floor:app", args.workers, env=env, log_name="redeem-floor") as server:
            floor = measure(server.url, "POST floor redeem (1 conditional UPDATE 最小正确实现)", "/floor/redeem",
                            floor_bodies, tokens_file, spec)
        with Gunicorn("app.wsgi:app", args.workers, env=env, log_name="redeem-app") as server:
            app_row = measure(server.url, "POST /api/v1/cashier/redeem (核销)", "/api/v1/cashier/redeem",
                              qr_bodies(vouchers, cfg.vouchers.show_window_seconds), tokens_file, spec)
    finally:
        os.unlink(tokens_file)
    print()
    print(report.table([floor, app_row], baseline))
    print(f"\nredeem ÷ floor: req/s {app_row.rps / floor.rps:.2f}x, p99 {app_row.p99_ms / floor.p99_ms:.2f}x")
    app_redeemed, floor_redeemed = redeemed_count(cfg)
    print(f"vouchers redeemed (from the rows): app {app_redeemed:,}, floor {floor_redeemed:,}; each voucher was "
          f"sent once, so every non-2xx answer above is a refusal, never a second redemption")
    path = report.write_json([floor, app_row], baseline, {
        "suite": "redeem", **vars(spec), "loadgen": loadgen_name(spec), "workers": args.workers,
        "vouchers": args.vouchers, "app_redeemed": app_redeemed, "floor_redeemed": floor_redeemed})
    print(f"\nbench: figures written to {path.relative_to(report.ROOT)} (and bench/results/latest.json)")
    if app_redeemed > args.vouchers:
        raise SystemExit("bench: WRONG redemption count")


if __name__ == "__main__":
    main()
