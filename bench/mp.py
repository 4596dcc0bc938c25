"""Official-account push and announcement-list bench (`bash bench/run.sh mp`; `--help` for the options).

Seeds the bench database `smart_union_bench` directly with bulk INSERTs (bench/mp_seed.py): 100,000 staff in 20
sub-unions, 10,000 published announcements (most to everyone, some to a sub-union, retirees, women, officers; 50
pinned) plus drafts and withdrawn ones, about a third of what the bench's staff member may see marked read by her,
and 100 readers for each of the 2,000 newest. Then two comparisons, each against a baseline of the same run under
the same gunicorn config (gunicorn.conf.py, same workers), load and load generator:

1. POST /wechat/mp, a signed plaintext text push "帮助" from a linked follower, every request with a new MsgId (the
   signature covers token, timestamp and nonce only, so one signed query serves every body) — the real handling:
   de-duplication claim in Redis, follower and staff from PostgreSQL, the router's help text, the stored reply.
   Baseline: bench/mp_bare_app.py (check_signature + parse_message + create_reply().render(), an echo).
   Also a row for WeChat's retries: every request the same MsgId (the duplicate path: the stored reply).
2. GET /api/v1/announcements (page 1 of 20) as that staff member. Baseline: bench/bare_app.py GET /bare.

The rows run in turn, `--rounds` times (default 3; warm-up in the first round only), all servers up throughout,
and the table shows each figure's median over the rounds: the machine is shared, and interleaving keeps a burst of
other work from landing on one side of a comparison only.

Afterwards: the pushes claimed in Redis are checked (one per request, each answered with the help text), and the
list's two SQL statements, captured as the app issues them, are run under EXPLAIN (ANALYZE, BUFFERS) — once as the
schema stands and with each candidate index (CANDIDATE_INDEXES) created inside a transaction that is rolled back.
Writes bench/results/mp-<time>.json and mp-latest.json; gunicorn logs gunicorn-mp-*.log.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import itertools
import json
import multiprocessing
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Callable
from urllib.parse import urlencode

import redis as redis_lib

from bench.mp_pyload import signed_url
from bench import mp_seed, report, seed
from bench.harness import (
    RESULTS_DIR, ROOT, Figures, Gunicorn, LoadSpec, Target, loadgen_name, merge_load_parts, run_load,
)
from bench.main import BARE_TARGET

ACCOUNT = "gh_0123456789ab"
KEYWORD = "帮助"
HELP_REPLY_MARK = "智慧工会公众号可以为您"     # first line of router.help_text
XML = {"Content-Type": "text/xml"}
# MsgIds: below 2**53 so wrk's Lua (doubles) prints them exactly; each load run takes a fresh block of 10**9.
_msgid_blocks = itertools.count(int(time.time()) * 1_000_000, 1_000_000_000)

# Candidate indexes for the list, each tried inside a transaction that is rolled back (the models are not changed).
CANDIDATE_INDEXES = {
    "ix_announcements_listing + INCLUDE audience columns": [
        "DROP INDEX ix_announcements_listing",
        "CREATE INDEX ix_announcements_listing ON announcements (status, pinned, published_at) "
        "INCLUDE (audience_status_mask, audience_gender_mask, audience_role_mask, audience_sub_unions)",
    ],
    "partial index WHERE status = 'published', INCLUDE audience columns": [
        "CREATE INDEX ix_try_announcements_published ON announcements (pinned DESC, published_at DESC, id DESC) "
        "INCLUDE (audience_status_mask, audience_gender_mask, audience_role_mask, audience_sub_unions) "
        "WHERE status = 'published'",
    ],
}


# ---- the push ------------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Push:
    path: str            # /wechat/mp?signature=...&timestamp=...&nonce=...&openid=...
    token: str           # to sign each push anew (one signature covers one push)
    head: str            # the XML up to the MsgId
    tail: str            # after it

    def body(self, msg_id: int) -> str:
        return f"{self.head}{msg_id}{self.tail}"


def signed_push(token: str, openid: str, content: str, nonce: str = "20261125") -> Push:
    timestamp = str(int(time.time()))
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    query = urlencode({"signature": signature, "timestamp": timestamp, "nonce": nonce, "openid": openid})
    head = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{timestamp}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>")
    return Push(path=f"/wechat/mp?{query}", head=head, tail="</MsgId></xml>", token=token)


def post(url: str, body: str, headers: dict[str, str]) -> tuple[int, str]:
    req = urllib.request.Request(url, method="POST", data=body.encode(), headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def run_unique_pushes(base_url: str, name: str, push: Push, expect: str, spec: LoadSpec) -> Figures:
    """Like harness.run_load, but every request carries a MsgId never sent before."""
    msg_id = next(_msgid_blocks)
    status, text = post(base_url + signed_url(push.path, push.token, str(msg_id)), push.body(msg_id), XML)
    if status != 200 or expect not in text:
        raise RuntimeError(f"{name}: expected 200 with {expect!r}, got {status}: {text[:300]!r}")
    runner = _pyload_unique      # wrk cannot sign each push (no SHA-1 in its Lua), and one signature covers one push
    if spec.warmup:
        runner(base_url, name, push, spec, spec.warmup)
    return runner(base_url, name, push, spec, spec.duration)


def _pyload_unique(base_url: str, name: str, push: Push, spec: LoadSpec, seconds: int) -> Figures:
    """bench/mp_pyload.py (bench/pyload.py with a per-request MsgId) in `threads` processes, merged."""
    procs, base = max(1, spec.threads), next(_msgid_blocks)
    per_proc = [spec.connections // procs + (i < spec.connections % procs) for i in range(procs)]
    args = ["--url", base_url + push.path, "--method", "POST", "--seconds", str(seconds), "--header",
            "Content-Type: text/xml", "--body", push.body("__UNIQUE__"),   # type: ignore[arg-type]
            "--max-requests", str(max(1, spec.max_requests // procs)), "--unique-step", str(procs),
            "--sign-token", push.token]
    children = [subprocess.Popen([sys.executable, "-m", "bench.mp_pyload", "--connections", str(n), *args,
                                  "--unique-start", str(base + i)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
                for i, n in enumerate(per_proc) if n]
    parts = [json.loads(child.communicate(timeout=seconds + 60)[0]) for child in children]
    return merge_load_parts(name, parts)


def claimed_pushes() -> dict[str, int]:
    """The de-duplication claims left in Redis: one per distinct push, each holding its reply."""
    client = redis_lib.Redis.from_url(seed.REDIS_URL)
    counts = {"claims": 0, "help_replies": 0, "pending": 0, "other": 0}
    try:
        keys = list(client.scan_iter(match=seed.REDIS_PREFIX + "mp-push:*", count=5000))
        for i in range(0, len(keys), 2000):
            for value in client.mget(keys[i:i + 2000]):
                counts["claims"] += 1
                if value is None:
                    continue
                if value.startswith(b"done:<xml>") and HELP_REPLY_MARK.encode() in value:
                    counts["help_replies"] += 1
                elif value == b"pending":
                    counts["pending"] += 1
                else:
                    counts["other"] += 1
    finally:
        client.close()
    return counts


# ---- the announcement list -------------------------------------------------------------------------------------

LIST_PATH = "/api/v1/announcements?page=1&page_size=20"


COUNTED_UP_TO = 1000          # app.services.announcements.COUNTED_UP_TO


def check_list(base_url: str, token: str, expect_total: int) -> dict:
    req = urllib.request.Request(base_url + LIST_PATH, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        doc = json.loads(resp.read())
    expect_total = min(expect_total, COUNTED_UP_TO)        # the list counts up to that many, then says so
    if doc["total"] != expect_total or len(doc["items"]) != 20:
        raise RuntimeError(f"announcement list: total {doc['total']} (expected {expect_total}), "
                           f"{len(doc['items'])} items")
    return {"total": doc["total"], "page_pinned": sum(i["pinned"] for i in doc["items"]),
            "page_read": sum(i["read"] for i in doc["items"]), "page_size": len(doc["items"])}


def explain_list(app, staff_id: int, page_size: int = 20) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of the statements list_for_staff issues, as issued (captured from the engine),
    as the schema stands and with each candidate index (created in a transaction that is rolled back)."""
    from sqlalchemy import event

    from app.extensions import db
    from app.services import announcements
    from models import Staff

    with app.app_context():
        engine = app.extensions["db.engine"]
        staff = db.session.get(Staff, staff_id)
        _ = list(staff.roles)
        captured: list[tuple[str, object]] = []

        def capture(conn, cursor, statement, parameters, context, executemany):
            captured.append((statement, parameters))

        event.listen(engine, "before_cursor_execute", capture)
        try:
            announcements.list_for_staff(staff, 1, page_size)
        finally:
            event.remove(engine, "before_cursor_execute", capture)
        db.session.rollback()
        statements = [(s, p) for s, p in captured if "FROM announcements" in s]
        result = {"statements": [s for s, _ in statements], "as_is": _explain_all(engine, statements, []),
                  "candidates": [{"name": name, "ddl": ddl, "plans": _explain_all(engine, statements, ddl)}
                                 for name, ddl in CANDIDATE_INDEXES.items()]}
    return result


EXPLAIN_RUNS = 7


def _explain_all(engine, statements, ddl: list[str]) -> list[dict]:
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            for stmt in ddl:
                conn.exec_driver_sql(stmt)
            if ddl:
                conn.exec_driver_sql("ANALYZE announcements")
            out = []
            for statement, params in statements:
                runs = [_summarise(statement, [row[0] for row in conn.exec_driver_sql(
                    "EXPLAIN (ANALYZE, BUFFERS) " + statement, params)]) for _ in range(EXPLAIN_RUNS)]
                out.append(sorted(runs, key=lambda r: r["execution_ms"])[EXPLAIN_RUNS // 2])   # the median run
            return out
        finally:
            trans.rollback()


def _summarise(statement: str, lines: list[str]) -> dict:
    plan = "\n".join(lines)
    indexes = sorted(set(re.findall(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)?"
                                    r"(?: using| on) (\w+)", plan)))
    return {"kind": "count" if "count(" in statement.lower() else "page",
            "execution_ms": float(re.search(r"Execution Time: ([\d.]+) ms", plan).group(1)),
            "seq_scan_announcements": bool(re.search(r"Seq Scan on announcements", plan)),
            "announcement_indexes": [i for i in indexes if "announcement" in i and "read" not in i],
            "indexes": indexes, "plan": lines}


def describe_plans(plans: list[dict]) -> list[str]:
    lines = []
    for p in plans:
        how = "Seq Scan on announcements" if p["seq_scan_announcements"] else \
            ("index " + ", ".join(p["announcement_indexes"]) if p["announcement_indexes"] else "no announcement scan?")
        other = [i for i in p["indexes"] if i not in p["announcement_indexes"]]
        lines.append(f"  {p['kind']:<5} query: {p['execution_ms']:7.2f} ms, announcements by {how}"
                     + (f"; also {', '.join(other)}" if other else ""))
    return lines


# ---- driver --------------------------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    default_workers = multiprocessing.cpu_count() * 2 + 1
    p = argparse.ArgumentParser(prog="bench/run.sh mp", description="公众号消息与公告列表压测 /wechat/mp and "
                                "announcement-list bench")
    p.add_argument("--duration", type=int, default=10, help="measured seconds per row (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per row (default 2)")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (default 32)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads / Python load processes (default 2)")
    p.add_argument("--workers", type=int, default=default_workers,
                   help=f"gunicorn workers for every app (default {default_workers}, as gunicorn.conf.py)")
    p.add_argument("--staff", type=int, default=100_000, help="staff to seed (default 100,000)")
    p.add_argument("--announcements", type=int, default=10_000, help="published announcements (default 10,000)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds; each measures every row in turn, the table shows medians (default 3)")
    p.add_argument("--part", choices=["all", "push", "list"], default="all", help="which comparison (default all)")
    p.add_argument("--no-duplicate", action="store_true", help="skip the duplicate-push (WeChat retry) row")
    p.add_argument("--no-recycle", action="store_true", help="gunicorn --max-requests 0 for every app")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    load_at_start = os.getloadavg()[0]
    if load_at_start > 1:
        print(f"bench: note: load average {load_at_start:.1f} before starting; other work on this machine "
              "will skew the absolute figures (compare the ratios)", flush=True)
    from app import create_app
    from app.config import load_config

    spec = LoadSpec.from_args(args)
    overrides = seed.settings("http://127.0.0.1:9/")       # no WeChat API call on these paths
    cfg = load_config(environ={}, overrides=overrides)
    print(f"bench: seeding {args.staff:,} staff and {args.announcements:,} published announcements into "
          f"{seed.DB_NAME} (bulk INSERTs) ...", flush=True)
    seed.reset_database(cfg)
    seed.reset_redis()
    app = create_app(cfg)
    try:
        seeded = mp_seed.seed_all(app, args.staff, args.announcements)
    finally:
        app.extensions["db.engine"].dispose()
        app.extensions["redis"].close()
    print(f"bench: seeded in {seeded.seconds:.1f}s: {seeded.announcements} announcements ({seeded.pinned} pinned), "
          f"audiences {json.dumps(seeded.audiences, ensure_ascii=False)}; the bench's staff member "
          f"{mp_seed.READER_NO} sees {seeded.reader_visible:,} and has read {seeded.reader_reads:,}; "
          f"{seeded.reads_total:,} read rows in all", flush=True)
    print(f"bench: load by {loadgen_name(spec)}, {spec.connections} connections, {spec.threads} threads, "
          f"{spec.warmup}s warm-up (first round) + {spec.duration}s per row, {args.rounds} interleaved round(s), "
          f"medians shown; gunicorn {args.workers} workers", flush=True)

    mp_cfg = cfg.wechat.official_account
    push = signed_push(mp_cfg.token, seeded.follower_openid, KEYWORD)
    gargs = ["--max-requests", "0"] if args.no_recycle else []
    want_push, want_list = args.part in ("all", "push"), args.part in ("all", "list")
    comparisons: dict[str, dict] = {}
    boots: dict[str, int] = {}
    listing = None
    # Every server stays up for the whole run (idle ones cost nothing) so the rounds can interleave the rows.
    with contextlib.ExitStack() as stack:
        def serve(wsgi_app: str, log_name: str, env: dict[str, str]) -> Gunicorn:
            server = stack.enter_context(Gunicorn(wsgi_app, args.workers, env=env, log_name=log_name,
                                                  extra_args=gargs))
            stack.callback(lambda: boots.__setitem__(log_name, server.worker_boots()))
            return server

        app_server = serve("app.wsgi:app", "mp-app", seed.env_for(overrides))
        rows: list[tuple[str, Callable[[LoadSpec], Figures]]] = []     # (comparison, one measurement)
        if want_push:
            echo = serve("bench.mp_bare_app:app", "mp-echo", {"MP_BARE_TOKEN": mp_cfg.token})
            retry_msg_id, retry_rounds = next(_msgid_blocks), itertools.count()

            def retry() -> Target:
                """WeChat's retries of one push: the same MsgId, signed afresh each round (timestamps expire)."""
                fresh = signed_push(mp_cfg.token, seeded.follower_openid, KEYWORD, nonce=f"retry{next(retry_rounds)}")
                return Target("POST /wechat/mp 帮助 (same MsgId: retry path)", fresh.path, method="POST",
                              headers=XML, body=fresh.body(retry_msg_id))
            rows += [("push", lambda sp: run_unique_pushes(echo.url, "POST echo (验签+解析+回复 基线)", push,
                                                           KEYWORD, sp)),
                     ("push", lambda sp: run_unique_pushes(app_server.url, "POST /wechat/mp 帮助 (new MsgId each)",
                                                           push, HELP_REPLY_MARK, sp))]
            if not args.no_duplicate:
                rows.append(("push", lambda sp: run_load(app_server.url, retry(), sp)))
        if want_list:
            bare = serve("bench.bare_app:app", "mp-bare", {})
            listing = check_list(app_server.url, seeded.token, seeded.reader_visible)
            list_target = Target("GET /api/v1/announcements (page 1 of 20)", LIST_PATH,
                                 headers={"Authorization": f"Bearer {seeded.token}"})
            rows += [("list", lambda sp: run_load(bare.url, BARE_TARGET, sp)),
                     ("list", lambda sp: run_load(app_server.url, list_target, sp))]
        measured: list[list[Figures]] = [[] for _ in rows]
        for n in range(args.rounds):
            round_spec = spec if n == 0 else dataclasses.replace(spec, warmup=0)   # warm once
            for i, (_, measure) in enumerate(rows):
                measured[i].append(measure(round_spec))
            if args.rounds > 1:
                print(f"bench: round {n + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.1f})", flush=True)
    figures = [median_figures(runs) for runs in measured]
    push_base, *push_rows = [f for (group, _), f in zip(rows, figures) if group == "push"] or [None]
    list_base, *list_rows = [f for (group, _), f in zip(rows, figures) if group == "list"] or [None]
    claims = claimed_pushes() if push_rows else None
    plans = None
    if args.part in ("all", "list"):
        app = create_app(cfg)
        try:
            plans = explain_list(app, seeded.reader_id)
        finally:
            app.extensions["db.engine"].dispose()
            app.extensions["redis"].close()

    if push_base:
        print("\n1. Official-account push 公众号消息 (plaintext, signed text push \"帮助\" from a linked follower)\n")
        print(report.table(push_rows, push_base))
        comparisons["push"] = _comparison(push_rows, push_base)
        if claims:
            sent = push_rows[0].requests
            ok = claims["help_replies"] >= sent and not claims["pending"] and not claims["other"]
            print(f"\nRedis: {claims['claims']:,} distinct pushes claimed, {claims['help_replies']:,} answered with "
                  f"the help text ({'OK' if ok else 'CHECK'}: the unique row completed {sent:,} in its measured "
                  f"rounds, warm-up and probes add to the claims), pending {claims['pending']}, "
                  f"other {claims['other']}")
    if list_base:
        print(f"\n2. Announcement list 公告列表 ({args.staff:,} staff, {args.announcements:,} published; the staff "
              f"member sees {listing['total']:,}; page 1: {listing['page_pinned']} pinned, "
              f"{listing['page_read']} read)\n")
        print(report.table(list_rows, list_base))
        comparisons["list"] = _comparison(list_rows, list_base)
    if plans:
        print("\nEXPLAIN ANALYZE of list_for_staff's SQL (page 1 of 20, as the app issues it):")
        print("\n".join(describe_plans(plans["as_is"])))
        for candidate in plans["candidates"]:
            print(f"with {candidate['name']} (tried in a rolled-back transaction):")
            print("\n".join(describe_plans(candidate["plans"])))
        print("(DDL of the candidates: " + " / ".join("; ".join(c["ddl"]) for c in plans["candidates"]) + ")")
    recycled = {name: n - args.workers for name, n in boots.items() if n > args.workers}
    if recycled:
        print(f"\nbench: workers recycled by max_requests during the run: {json.dumps(recycled, ensure_ascii=False)}")
    path = write_json(comparisons, {
        "suite": "mp", **dataclasses.asdict(spec), "loadgen": loadgen_name(spec), "workers": args.workers,
        "no_recycle": args.no_recycle, "loadavg_at_start": load_at_start, "seeded": dataclasses.asdict(seeded) | {
            "token": "(omitted)"}, "listing": listing, "redis_claims": claims, "worker_boots": boots,
        "explain": plans})
    print(f"\nbench: figures written to {path.relative_to(ROOT)} (and bench/results/mp-latest.json)")


def median_figures(runs: list[Figures]) -> Figures:
    """One row from several rounds: the median of each figure (errors and requests summed), rounds in detail."""
    if len(runs) == 1:
        return dataclasses.replace(runs[0], detail={**runs[0].detail, "rounds": [dataclasses.asdict(runs[0])]})
    med = statistics.median
    return Figures(name=runs[0].name, loadgen=runs[0].loadgen, requests=sum(f.requests for f in runs),
                   seconds=sum(f.seconds for f in runs), rps=med(f.rps for f in runs),
                   p50_ms=med(f.p50_ms for f in runs), p99_ms=med(f.p99_ms for f in runs),
                   errors=sum(f.errors for f in runs), detail={"rounds": [dataclasses.asdict(f) for f in runs]})


def _comparison(rows: list[Figures], baseline: Figures) -> dict:
    return {"baseline": dataclasses.asdict(baseline),
            "results": [dict(dataclasses.asdict(f), rps_ratio=f.rps / baseline.rps if baseline.rps else None,
                             p99_ratio=f.p99_ms / baseline.p99_ms if baseline.p99_ms else None) for f in rows]}


def write_json(comparisons: dict, settings: dict) -> os.PathLike:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": report._git_revision(),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           "settings": settings, "comparisons": comparisons}
    text = json.dumps(doc, ensure_ascii=False, indent=2, default=str)
    path = RESULTS_DIR / f"mp-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(text)
    (RESULTS_DIR / "mp-latest.json").write_text(text)
    return path


if __name__ == "__main__":
    main()
