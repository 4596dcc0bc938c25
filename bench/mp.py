"""Official-account push and announcement-list bench (`bash bench/run.sh mp`; bench/README.md tells what it
measures and how to read it).

Seeds `smart_union_bench` with bulk INSERTs (seed.announcements), then two comparisons under the same gunicorn
config and load: POST /wechat/mp text pushes (each with a new MsgId, signed afresh; and WeChat's retry, the same
MsgId) against the echo floor bench/mp_bare_app.py, and GET /api/v1/announcements against GET /bare. The rows run
in turn `--rounds` times (warm-up in the first only) with every server up, and the table shows medians, so a
burst of other work on the shared machine does not land on one side of a comparison only. Afterwards the Redis
claims are counted and the list's SQL runs under EXPLAIN ANALYZE, as the schema stands and with each of
CANDIDATE_INDEXES (in a transaction that is rolled back).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import re
import statistics
import time
import urllib.request
from typing import Callable
from urllib.parse import urlencode

import redis as redis_lib

from bench import harness, report, seed
from bench.load import UNIQUE, Figures, LoadSpec, Target, loadgen_name, next_unique, run_load, signed_path
from bench.main import BARE_TARGET

ACCOUNT = "gh_0123456789ab"
KEYWORD = "帮助"
HELP_REPLY_MARK = "智慧工会公众号可以为您"     # first line of router.help_text
XML = {"Content-Type": "text/xml"}
LIST_PATH = "/api/v1/announcements?page=1&page_size=20"
EXPLAIN_RUNS = 7

# Candidate indexes for the list, each tried inside a transaction that is rolled back (the models are not changed).
CANDIDATE_INDEXES = {
    "partial index WHERE status = 'published', INCLUDE audience columns": [
        "CREATE INDEX ix_try_announcements_published ON announcements (pinned DESC, published_at DESC, id DESC) "
        "INCLUDE (audience_status_mask, audience_gender_mask, audience_role_mask, audience_sub_unions) "
        "WHERE status = 'published'",
    ],
}


# ---- the push ------------------------------------------------------------------------------------------------

def push_target(name: str, token: str, openid: str, msg_id: object = UNIQUE, nonce: str = "20261125",
                expect_text: str | None = None) -> Target:
    """A signed plaintext text push "帮助" from `openid`. With the default msg_id every request carries a MsgId
    never sent before and is signed afresh (the load generator does it); else one signed query serves them all."""
    path = f"{signed_path('/wechat/mp', token, nonce)}&{urlencode({'openid': openid})}"
    return Target(name, path, method="POST", headers=XML, body=push_xml(openid, msg_id), expect_text=expect_text,
                  sign_token=token if msg_id == UNIQUE else None)


def push_xml(openid: str, msg_id: object) -> str:
    """The plaintext XML of a text push "帮助" from `openid`."""
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName><FromUserName><![CDATA[{openid}]]></FromUserName>"
            f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{KEYWORD}]]></Content><MsgId>{msg_id}</MsgId></xml>")


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

def check_list(base_url: str, token: str, expect_total: int) -> dict:
    from app.services.announcements import COUNTED_UP_TO

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
        return {"statements": [s for s, _ in statements], "as_is": _explain_all(engine, statements, []),
                "candidates": [{"name": name, "ddl": ddl, "plans": _explain_all(engine, statements, ddl)}
                               for name, ddl in CANDIDATE_INDEXES.items()]}


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

def parse_args(argv: list[str] | None):
    p = harness.parser("bench/run.sh mp", "公众号消息与公告列表压测 /wechat/mp and announcement-list bench")
    p.add_argument("--staff", type=int, default=100_000, help="staff to seed (default 100,000)")
    p.add_argument("--announcements", type=int, default=10_000, help="published announcements (default 10,000)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds; each measures every row in turn, the table shows medians (default 3)")
    p.add_argument("--part", choices=["all", "push", "list"], default="all", help="which comparison (default all)")
    p.add_argument("--no-duplicate", action="store_true", help="skip the duplicate-push (WeChat retry) row")
    return p.parse_args(argv)


def measure_rounds(args, spec: LoadSpec, seeded: seed.Announcements, mp_token: str, overrides: dict,
                   boots: dict[str, int]) -> tuple[dict[str, Figures], dict | None]:
    """Every server up for the whole run (idle ones cost nothing), the rows in turn, `rounds` times; each row's
    medians by key, and what the list answered."""
    listing = None
    with contextlib.ExitStack() as stack:
        def serve(wsgi_app: str, log_name: str, env: dict[str, str]) -> harness.Gunicorn:
            server = stack.enter_context(harness.gunicorn(args, wsgi_app, log_name, env=env))
            stack.callback(lambda: boots.__setitem__(log_name, server.worker_boots()))
            return server

        app_server = serve("app.wsgi:app", "mp-app", seed.env_for(overrides))
        rows: dict[str, Callable[[LoadSpec], Figures]] = {}     # key -> one measurement
        if args.part in ("all", "push"):
            echo = serve("bench.mp_bare_app:app", "mp-echo", {"MP_BARE_TOKEN": mp_token})
            openid = seeded.follower_openid
            unique_echo = push_target("POST echo (验签+解析+回复 基线)", mp_token, openid, expect_text=KEYWORD)
            unique_app = push_target("POST /wechat/mp 帮助 (new MsgId each)", mp_token, openid,
                                     expect_text=HELP_REPLY_MARK)
            retry_msg_id, retry_rounds = next_unique(), itertools.count()
            rows["echo"] = lambda sp: run_load(echo.url, unique_echo, sp)
            rows["push"] = lambda sp: run_load(app_server.url, unique_app, sp)
            if not args.no_duplicate:      # WeChat's retries of one push: the same MsgId, signed afresh each round
                rows["retry"] = lambda sp: run_load(app_server.url, push_target(
                    "POST /wechat/mp 帮助 (same MsgId: retry path)", mp_token, openid, retry_msg_id,
                    nonce=f"retry{next(retry_rounds)}"), sp)
        if args.part in ("all", "list"):
            bare = serve("bench.bare_app:app", "mp-bare", {})
            listing = check_list(app_server.url, seeded.token, seeded.reader_visible)
            list_target = Target("GET /api/v1/announcements (page 1 of 20)", LIST_PATH,
                                 headers={"Authorization": f"Bearer {seeded.token}"})
            rows["bare"] = lambda sp: run_load(bare.url, BARE_TARGET, sp)
            rows["list"] = lambda sp: run_load(app_server.url, list_target, sp)
        measured: dict[str, list[Figures]] = {key: [] for key in rows}
        for n in range(args.rounds):
            round_spec = spec if n == 0 else dataclasses.replace(spec, warmup=0)   # warm once
            for key, measure in rows.items():
                measured[key].append(measure(round_spec))
            if args.rounds > 1:
                print(f"bench: round {n + 1}/{args.rounds} done (load average {os.getloadavg()[0]:.1f})",
                      flush=True)
    return {key: median_figures(runs) for key, runs in measured.items()}, listing


def median_figures(runs: list[Figures]) -> Figures:
    """One row from several rounds: the median of each figure (errors and requests summed), rounds in detail."""
    if len(runs) == 1:
        return dataclasses.replace(runs[0], detail={**runs[0].detail, "rounds": [dataclasses.asdict(runs[0])]})
    med = statistics.median
    return Figures(name=runs[0].name, loadgen=runs[0].loadgen, requests=sum(f.requests for f in runs),
                   seconds=sum(f.seconds for f in runs), rps=med(f.rps for f in runs),
                   p50_ms=med(f.p50_ms for f in runs), p99_ms=med(f.p99_ms for f in runs),
                   errors=sum(f.errors for f in runs), detail={"rounds": [dataclasses.asdict(f) for f in runs]})


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    load_at_start = report.note_load()
    spec = LoadSpec.from_args(args)
    overrides = seed.settings()       # no WeChat API call on these paths
    cfg = seed.config(overrides)
    print(f"bench: seeding {args.staff:,} staff and {args.announcements:,} published announcements into "
          f"{seed.DB_NAME} (bulk INSERTs) ...", flush=True)
    with seed.open_app(cfg, fresh=True) as app:
        seeded = seed.announcements(app, args.staff, args.announcements)
    print(f"bench: seeded in {seeded.seconds:.1f}s: {seeded.announcements} announcements ({seeded.pinned} pinned), "
          f"audiences {json.dumps(seeded.audiences, ensure_ascii=False)}; the bench's staff member "
          f"{seed.READER_NO} sees {seeded.reader_visible:,} and has read {seeded.reader_reads:,}; "
          f"{seeded.reads_total:,} read rows in all", flush=True)
    print(f"bench: load by {loadgen_name(spec)}, {spec.connections} connections, {spec.threads} threads, "
          f"{spec.warmup}s warm-up (first round) + {spec.duration}s per row, {args.rounds} interleaved round(s), "
          f"medians shown; gunicorn {args.workers} workers", flush=True)

    boots: dict[str, int] = {}
    figures, listing = measure_rounds(args, spec, seeded, cfg.wechat.official_account.token, overrides, boots)
    comparisons: dict[str, dict] = {}
    claims = claimed_pushes() if "push" in figures else None
    plans = None
    if "list" in figures:
        with seed.open_app(cfg) as app:
            plans = explain_list(app, seeded.reader_id)

    if "echo" in figures:
        push_rows = [figures[k] for k in ("push", "retry") if k in figures]
        print("\n1. Official-account push 公众号消息 (plaintext, signed text push \"帮助\" from a linked follower)\n")
        print(report.table(push_rows, figures["echo"]))
        comparisons["push"] = report.comparison(push_rows, figures["echo"])
        sent = figures["push"].requests
        ok = claims["help_replies"] >= sent and not claims["pending"] and not claims["other"]
        print(f"\nRedis: {claims['claims']:,} distinct pushes claimed, {claims['help_replies']:,} answered with "
              f"the help text ({'OK' if ok else 'CHECK'}: the unique row completed {sent:,} in its measured "
              f"rounds, warm-up and probes add to the claims), pending {claims['pending']}, "
              f"other {claims['other']}")
    if "bare" in figures:
        print(f"\n2. Announcement list 公告列表 ({args.staff:,} staff, {args.announcements:,} published; the staff "
              f"member sees {listing['total']:,}; page 1: {listing['page_pinned']} pinned, "
              f"{listing['page_read']} read)\n")
        print(report.table([figures["list"]], figures["bare"]))
        comparisons["list"] = report.comparison([figures["list"]], figures["bare"])
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
    report.write_json("mp", {"settings": {
        "suite": "mp", **dataclasses.asdict(spec), "loadgen": loadgen_name(spec), "workers": args.workers,
        "no_recycle": args.no_recycle, "loadavg_at_start": load_at_start, "seeded": dataclasses.asdict(seeded) | {
            "token": "(omitted)"}, "listing": listing, "redis_claims": claims, "worker_boots": boots,
        "explain": plans}, "comparisons": comparisons}, latest="mp-latest.json")
    return figures


if __name__ == "__main__":
    main()
