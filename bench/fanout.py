"""Notification fan-out bench (`bash bench/run.sh fanout`, or `.venv/bin/python -m bench.fanout --help`).

One notice to the whole roster (100,000 staff by default: half follow the official account and get a template
message, half have only the mini-program and one subscribe consent) is sent through the fake WeChat server, which
runs as its own process (`smart-union fake-wechat`) with 20 ms of latency injected on both send endpoints. The
same fan-out is drained by 1 and then by 4 `smart-union sender` processes; each run is compared with the fake
server's own ceiling, measured in the same run: as many plain template-send POSTs as the run sent, at the same
total concurrency (in_flight x processes), with the same latency, from wrk (or the Python load generator).

- sends/s: rows `sent` / seconds from the first claim to the last row settled, both seen by polling the database
  (every 0.5 s). A run is stopped after --max-seconds and its partial rate reported.
- peak RSS: VmHWM of each sender process (from /proc), read just before it is stopped; the largest is shown.
- in_flight is the same per process in every run (default 8, the deployed default): 8 sends in flight at 20 ms
  allow 400 sends/s per process, above what one Python process can prepare and record, so the latency is not
  what bounds a sender; the ceiling is measured at the same total concurrency as each run.

Database `smart_union_bench_fanout` on PostgreSQL (recreated each time), Redis DB 12 under "subenchfan:" (only
those keys are deleted). Figures go to bench/results/fanout-<time>.json; sender logs to bench/results/.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
from sqlalchemy import delete, func, select, update

from bench import harness, profile, report, seed
from bench.harness import (
    RESULTS_DIR, answers, clean_env, cpu_seconds, free_port, proc_status, spawn, stop, wait_ready,
)
from bench.load import LoadSpec, Target, load_once, loadgen_name

DB_NAME = "smart_union_bench_fanout"
REDIS_PREFIX = "subenchfan:"
SMART_UNION = str(Path(sys.executable).parent / "smart-union")
TEMPLATE_SEND = "cgi-bin/message/template/send"
SUBSCRIBE_SEND = "cgi-bin/message/subscribe/send"
POLL_SECONDS = 0.5
PROFILE_SECONDS = 10     # py-spy on the senders from the first claim (--profile)


@dataclass
class Row:
    run: str
    processes: int
    in_flight: int
    sent: int
    seconds: float
    rate: float
    peak_rss_mib: float | None = None
    ceiling_rate: float | None = None
    complete: bool = True
    detail: dict = field(default_factory=dict)


# --- setup -----------------------------------------------------------------------------------------------------

def reset_outbox(app) -> None:
    """Between runs: no notices or rows, every consent back to one, tables vacuumed."""
    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from models import Notice, Notification, SubscriptionConsent

    with app.app_context(), unit_of_work():
        db.session.execute(delete(Notification))
        db.session.execute(delete(Notice))
        db.session.execute(update(SubscriptionConsent).values(remaining=1))
    seed.vacuum_analyze(app.config["SU"], "notifications, notices, subscription_consents")


def write_notice(app, occasion: str) -> None:
    from app.services import notifications
    from app.services.audiences import Audience
    from app.unit_of_work import unit_of_work

    with app.app_context(), unit_of_work():
        notifications.notify_audience("service", occasion, Audience(), "工会会员信息核对",
                                      body="请于本周内在小程序中核对个人信息")


# --- processes -------------------------------------------------------------------------------------------------

class FakeWeChat:
    """The fake WeChat API in its own process, so its CPU is not the driver's: under gunicorn, which keeps HTTP/1.1
    connections alive as WeChat's API does (werkzeug's server, `smart-union fake-wechat`, closes each connection:
    every send then paid a TCP handshake and teardown on both sides, which production does not). One process, as
    its state is in memory, never recycled: not the app's gunicorn.conf.py."""

    def __init__(self):
        port = free_port()
        self.url = f"http://127.0.0.1:{port}/"
        self.proc = spawn([sys.executable, "-m", "gunicorn", "--config", "/dev/null", "--bind", f"127.0.0.1:{port}",
                           "--workers", "1", "--worker-class", "gthread", "--threads", "64", "--keep-alive", "30",
                           "app.fakewechat.server:wsgi_from_environment()"],
                          RESULTS_DIR / "fanout-fake-wechat.log", clean_env())
        wait_ready(self.proc, lambda: answers(self.url + "_fake/calls"), 60,
                   "the fake WeChat server; see bench/results/fanout-fake-wechat.log")

    def reset(self, latency_ms: int) -> None:
        requests.post(self.url + "_fake/reset", timeout=30).raise_for_status()
        for endpoint in (TEMPLATE_SEND, SUBSCRIBE_SEND):
            requests.post(self.url + "_fake/inject", timeout=10,
                          json={"endpoint": endpoint, "latency_ms": latency_ms, "times": -1}).raise_for_status()

    def calls(self) -> dict[str, int]:
        return requests.get(self.url + "_fake/calls", timeout=30).json()

    def sent_count(self) -> int:
        return len(requests.get(self.url + "_fake/sent", timeout=120).json())

    def token(self) -> str:
        from app.config import load_config

        mp = load_config(environ={}).wechat.official_account
        answer = requests.post(self.url + "cgi-bin/stable_token", timeout=10, json={
            "grant_type": "client_credential", "appid": mp.appid, "secret": mp.secret}).json()
        return answer["access_token"]

    def vmhwm_mib(self) -> float:
        return (proc_status(self.proc.pid, "VmHWM") or 0) / 1024


class Senders:
    def __init__(self, count: int, env: dict[str, str], run: str):
        self.procs = [spawn([SMART_UNION, "sender"], RESULTS_DIR / f"fanout-{run}-sender-{i}.log", env)
                      for i in range(count)]

    def check(self) -> None:
        dead = [p for p in self.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"sender {dead[0].pid} exited with {dead[0].returncode}; see bench/results/")

    def wait_idle(self, timeout: float = 120) -> None:
        """Until each sender has imported everything and is polling an empty outbox (CPU time stops growing)."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            self.check()
            now = self.cpu()
            if last is not None and all(b - a < 0.1 for a, b in zip(last, now)):
                return
            last = now
            time.sleep(1)
        raise RuntimeError("senders did not settle")

    def peak_rss_kib(self) -> list[int | None]:
        return [proc_status(p.pid, "VmHWM") for p in self.procs]

    def cpu(self) -> list[float]:
        return [cpu_seconds(p.pid) for p in self.procs]


# --- one sender run ------------------------------------------------------------------------------------------

def outbox_state(engine) -> dict[str, int]:
    from models import Notice, NoticeStatus, Notification

    with engine.connect() as conn:
        counts = {s.value if hasattr(s, "value") else str(s): n for s, n in conn.execute(
            select(Notification.status, func.count()).group_by(Notification.status)).all()}
        counts["fanning_out"] = conn.scalar(select(func.count()).select_from(Notice).where(
            Notice.status == NoticeStatus.FANNING_OUT))
    return counts


def drain(engine, senders: Senders, run: str, args) -> tuple[float, bool, bool]:
    """Polls the outbox until the notice is sent out (or --max-seconds, or no progress for --stall-seconds), py-spy
    on the senders from the first claim (--profile); returns (the seconds from the first claim, or from the start
    when none, to the end; complete; stalled)."""
    written = time.monotonic()
    first_claim, samplers = None, []
    last_report = last_progress = written
    last_moved = -1
    complete = stalled = False
    try:
        while time.monotonic() < written + args.max_seconds:
            senders.check()
            state = outbox_state(engine)
            now = time.monotonic()
            moved = sum(n for s, n in state.items() if s not in ("pending", "fanning_out"))
            if first_claim is None and moved:
                first_claim = now
                samplers = profile.start(f"senders {run}", [p.pid for p in senders.procs], PROFILE_SECONDS)
            if (first_claim is not None and not state["fanning_out"] and not state.get("pending")
                    and not state.get("sending")):
                complete = True
                break
            if moved != last_moved:
                last_moved, last_progress = moved, now
            elif now - last_progress > args.stall_seconds:
                stalled = True
                print(f"bench:   {run}: no progress for {args.stall_seconds}s, stopping; see "
                      f"bench/results/fanout-{run}-sender-*.log", flush=True)
                break
            if now - last_report >= 30:
                print(f"bench:   {run}: {state.get('sent', 0):,} sent after {now - (first_claim or written):.0f}s",
                      flush=True)
                last_report = now
            time.sleep(POLL_SECONDS)
        return time.monotonic() - (first_claim or written), complete, stalled
    finally:
        printed = profile.finish(f"senders {run}", samplers)
        if printed:
            print(printed, flush=True)


def run_senders(app, fake: FakeWeChat, settings: dict, processes: int, args) -> Row:
    from models import Notification

    run = f"{processes}x{args.in_flight}"
    reset_outbox(app)
    seed.reset_redis(REDIS_PREFIX)
    fake.reset(args.latency_ms)
    senders = Senders(processes, clean_env(seed.env_for({**settings, "notifications.in_flight": args.in_flight})),
                      run)
    engine = app.extensions["db.engine"]
    try:
        senders.wait_idle()
        cpu_before = senders.cpu()
        write_notice(app, f"bench:fanout:{run}:{time.time_ns()}")
        seconds, complete, stalled = drain(engine, senders, run, args)
        peak = senders.peak_rss_kib()
        cpu = [b - a for a, b in zip(cpu_before, senders.cpu())]
    finally:
        stop(senders.procs, timeout=60)
    state = outbox_state(engine)
    sent = state.get("sent", 0)
    with engine.connect() as conn:
        first_sent, last_sent = conn.execute(select(func.min(Notification.sent_at),
                                                    func.max(Notification.sent_at))).one()
    span = (last_sent - first_sent).total_seconds() if first_sent and last_sent else None
    peaks = [p / 1024 for p in peak if p is not None]
    return Row(run=f"senders {run}", processes=processes, in_flight=args.in_flight, sent=sent, seconds=seconds,
               rate=sent / seconds if seconds else 0.0, peak_rss_mib=max(peaks) if peaks else None,
               complete=complete,
               detail={"states": state, "stalled": stalled, "peak_rss_mib_each": peaks, "cpu_seconds_each": cpu,
                       "cpu_ms_per_send": 1000 * sum(cpu) / sent if sent else None,
                       "sent_at_span_seconds": span, "fake_calls": fake.calls(),
                       "fake_delivered": fake.sent_count(), "fake_wechat_vmhwm_mib": fake.vmhwm_mib()})


# --- the fake server's ceiling -------------------------------------------------------------------------------

def template_body() -> str:
    return json.dumps({"touser": "mp-ceiling", "template_id": "TPL-MP-SERVICE", "data": {
        "thing1": {"value": "工会会员信息核对"}, "thing2": {"value": "请于本周内在小程序中核对个人信息"},
        "time3": {"value": "2026-11-25 09:00"}}}, ensure_ascii=False)


def ceiling(fake: FakeWeChat, requests_wanted: int, concurrency: int, args) -> Row:
    """`requests_wanted` plain template sends at `concurrency`, same latency, from a separate load process (wrk
    stopped once the server has seen them all, or the Python load generator bounded by their count)."""
    fake.reset(args.latency_ms)
    target = Target("ceiling", f"/{TEMPLATE_SEND}?access_token={fake.token()}", method="POST",
                    headers={"Content-Type": "application/json"}, body=template_body())
    loadgen = loadgen_name(LoadSpec(loadgen=args.loadgen))
    spec = LoadSpec(connections=concurrency, threads=min(2 if loadgen == "wrk" else 4, concurrency),
                    max_requests=requests_wanted, loadgen=loadgen)
    before = fake.calls().get(TEMPLATE_SEND, 0)
    figures = load_once(fake.url.rstrip("/"), target, spec, args.max_seconds,
                        stop_when=lambda: fake.calls().get(TEMPLATE_SEND, 0) - before >= requests_wanted)
    done, seconds = figures.requests, figures.seconds
    return Row(run=f"ceiling c={concurrency}", processes=0, in_flight=concurrency, sent=fake.sent_count(),
               seconds=seconds, rate=done / seconds if seconds else 0.0, complete=done >= requests_wanted,
               detail={"loadgen": loadgen, "p50_ms": figures.p50_ms, "p99_ms": figures.p99_ms,
                       "errors": figures.errors, "fake_wechat_vmhwm_mib": fake.vmhwm_mib()})


# --- the table -----------------------------------------------------------------------------------------------

HEADERS = ["run", "processes", "in_flight", "sent", "seconds", "sends/s", "peak RSS MiB", "÷ ceiling"]


def table(rows: list[Row]) -> str:
    cells = [HEADERS]
    for r in rows:
        is_ceiling = r.processes == 0
        note = "" if r.complete else " (stalled)" if r.detail.get("stalled") else " (partial)"
        cells.append([r.run + note, "-" if is_ceiling else str(r.processes),
                      str(r.in_flight), f"{r.sent:,}", f"{r.seconds:.1f}", f"{r.rate:,.0f}",
                      "-" if r.peak_rss_mib is None else f"{r.peak_rss_mib:.0f}",
                      "(ceiling)" if is_ceiling else
                      (f"{r.rate / r.ceiling_rate:.2f}x" if r.ceiling_rate else "-")])
    return report.render_rows(cells)


def parse_args(argv: list[str] | None):
    p = harness.parser("bench/run.sh fanout", "Notification fan-out bench (通知群发压测)", http=False)
    p.add_argument("--staff", type=int, default=100_000, help="audience size (default 100,000)")
    p.add_argument("--processes", default="1,4", help="sender process counts, one run each (default 1,4)")
    p.add_argument("--in-flight", type=int, default=8, help="notifications.in_flight per sender (default 8)")
    p.add_argument("--latency-ms", type=int, default=20, help="latency injected on both send endpoints")
    p.add_argument("--max-seconds", type=int, default=600, help="bound of each run; partial rate after it")
    p.add_argument("--stall-seconds", type=int, default=60,
                   help="stop a run when no row has moved for this long (e.g. senders failing; see their logs)")
    p.add_argument("--database", default=DB_NAME, help=f"PostgreSQL database, recreated (default {DB_NAME})")
    p.add_argument("--no-ceiling", action="store_true", help="skip the fake server's ceiling")
    args = p.parse_args(argv)
    args.process_counts = [int(x) for x in args.processes.split(",") if x.strip()]
    return args


def main(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    load_at_start = report.note_load()
    fake = FakeWeChat()
    rows: list[Row] = []
    try:
        settings = seed.settings(args.database, wechat_url=fake.url, redis_prefix=REDIS_PREFIX)
        print(f"bench: recreating {args.database}, seeding {args.staff:,} staff ...", flush=True)
        with seed.open_app(seed.config(settings), fresh=True) as app:
            started = time.monotonic()
            audience = seed.fanout_roster(app, args.staff)
            print(f"bench: seeded in {time.monotonic() - started:.0f}s: {audience['template']:,} followers "
                  f"(template), {audience['subscribe']:,} with one subscribe consent; {args.latency_ms} ms latency "
                  f"per send; ceiling by {loadgen_name(LoadSpec(loadgen=args.loadgen))}", flush=True)
            for processes in args.process_counts:
                print(f"bench: {processes} sender(s) x in_flight {args.in_flight} ...", flush=True)
                row = run_senders(app, fake, settings, processes, args)
                print(f"bench:   {row.sent:,} sent in {row.seconds:.1f}s = {row.rate:,.0f}/s", flush=True)
                rows.append(row)
                if not args.no_ceiling:
                    base = ceiling(fake, row.sent or args.staff, processes * args.in_flight, args)
                    print(f"bench:   ceiling at {processes * args.in_flight} connections: {base.rate:,.0f} req/s",
                          flush=True)
                    row.ceiling_rate = base.rate
                    rows.append(base)
    finally:
        stop([fake.proc], signal.SIGINT, timeout=10)

    print()
    print(table(rows))
    report.write_json("fanout", {"settings": vars(args), "loadavg_at_start": load_at_start,
                                 "rows": [asdict(r) for r in rows]})
    return rows


if __name__ == "__main__":
    main()
