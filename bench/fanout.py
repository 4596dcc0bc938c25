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

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests
from sqlalchemy import delete, func, insert, select, text, update

from bench import profile, seed
from bench.harness import RESULTS_DIR, ROOT, clean_env, free_port
from bench.report import render_rows

DB_NAME = "smart_union_bench_fanout"
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
REDIS_URL = "redis://127.0.0.1:6379/12"
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

def overrides(fake_url: str, database: str) -> dict[str, object]:
    return {**seed.settings(fake_url), "database.url": f"{PG_SERVER}/{database}", "redis.url": REDIS_URL,
            "redis.key_prefix": REDIS_PREFIX}


def env_for(settings: dict[str, object]) -> dict[str, str]:
    return clean_env({f"SMART_UNION__{'__'.join(k.upper() for k in key.split('.'))}": str(value)
                      for key, value in settings.items()})


def recreate_database(cfg, database: str) -> None:
    seed.reset_database(cfg, database)


def reset_redis() -> None:
    seed.reset_redis(REDIS_PREFIX)


def seed_roster(app, staff: int, chunk: int = 10_000) -> dict[str, int]:
    """Bulk inserts: even staff follow the official account, odd ones have a mini-program openid and a consent."""
    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from models import Staff, SubscriptionConsent, WeChatApp, WeChatIdentity

    counts = {"template": 0, "subscribe": 0}
    for start in range(0, staff, chunk):
        with app.app_context(), unit_of_work():
            numbers = range(start, min(staff, start + chunk))
            db.session.execute(insert(Staff), [{"employee_no": f"F{n:06d}", "name": f"会员{n}"} for n in numbers])
            ids = db.session.scalars(select(Staff.id).where(
                Staff.employee_no.between(f"F{numbers[0]:06d}", f"F{numbers[-1]:06d}")).order_by(Staff.id)).all()
            followers, others = ids[0::2], ids[1::2]
            db.session.execute(insert(WeChatIdentity), [
                *({"app": WeChatApp.OFFICIAL_ACCOUNT, "openid": f"mp-{i}", "staff_id": i, "following": True}
                  for i in followers),
                *({"app": WeChatApp.MINI_PROGRAM, "openid": f"mini-{i}", "staff_id": i} for i in others)])
            db.session.execute(insert(SubscriptionConsent), [
                {"staff_id": i, "template_id": "TPL-MINI-SERVICE", "remaining": 1} for i in others])
            counts["template"] += len(followers)
            counts["subscribe"] += len(others)
    return counts


def reset_outbox(app) -> None:
    """Between runs: no notices or rows, every consent back to one, tables vacuumed."""
    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from models import Notice, Notification, SubscriptionConsent

    with app.app_context(), unit_of_work():
        db.session.execute(delete(Notification))
        db.session.execute(delete(Notice))
        db.session.execute(update(SubscriptionConsent).values(remaining=1))
    with app.extensions["db.engine"].connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE notifications, notices, subscription_consents"))


def write_notice(app, occasion: str) -> None:
    from app.unit_of_work import unit_of_work
    from app.services import notifications
    from app.services.audiences import Audience

    with app.app_context(), unit_of_work():
        notifications.notify_audience("service", occasion, Audience(), "工会会员信息核对",
                                      body="请于本周内在小程序中核对个人信息")


# --- processes -------------------------------------------------------------------------------------------------

class FakeWeChat:
    """`smart-union fake-wechat` in its own process, so its CPU is not the driver's."""

    def __init__(self):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = (RESULTS_DIR / "fanout-fake-wechat.log").open("w")
        self.proc = subprocess.Popen([SMART_UNION, "fake-wechat", "--port", str(self.port)], cwd=ROOT,
                                     env=clean_env(), stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                requests.get(self.url + "_fake/calls", timeout=2).raise_for_status()
                return
            except requests.RequestException:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the fake WeChat server did not start; see bench/results/fanout-fake-wechat.log")
                time.sleep(0.2)

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

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()


def proc_status(pid: int, key: str) -> int | None:
    """A field of /proc/<pid>/status in kB (VmHWM, VmRSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


class Senders:
    def __init__(self, count: int, env: dict[str, str], run: str):
        self.procs: list[subprocess.Popen] = []
        for i in range(count):
            with (RESULTS_DIR / f"fanout-{run}-sender-{i}.log").open("w") as log:
                self.procs.append(subprocess.Popen([SMART_UNION, "sender"], cwd=ROOT, env=env, stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True))

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
            now = [cpu_seconds(p.pid) for p in self.procs]
            if last is not None and all(b - a < 0.1 for a, b in zip(last, now)):
                return
            last = now
            time.sleep(1)
        raise RuntimeError("senders did not settle")

    def peak_rss_kib(self) -> list[int | None]:
        return [proc_status(p.pid, "VmHWM") for p in self.procs]

    def cpu(self) -> list[float]:
        return [cpu_seconds(p.pid) for p in self.procs]

    def stop(self, timeout: float = 60) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


# --- one sender run ------------------------------------------------------------------------------------------

def outbox_state(engine) -> dict[str, int]:
    from models import Notice, NoticeStatus, Notification

    with engine.connect() as conn:
        counts = {s.value if hasattr(s, "value") else str(s): n for s, n in conn.execute(
            select(Notification.status, func.count()).group_by(Notification.status)).all()}
        counts["fanning_out"] = conn.scalar(select(func.count()).select_from(Notice).where(
            Notice.status == NoticeStatus.FANNING_OUT))
    return counts


def run_senders(app, fake: FakeWeChat, settings: dict, processes: int, args) -> Row:
    run = f"{processes}x{args.in_flight}"
    reset_outbox(app)
    reset_redis()
    fake.reset(args.latency_ms)
    env = env_for({**settings, "notifications.in_flight": args.in_flight})
    senders = Senders(processes, env, run)
    try:
        senders.wait_idle()
        cpu_before = senders.cpu()
        engine = app.extensions["db.engine"]
        write_notice(app, f"bench:fanout:{run}:{time.time_ns()}")
        written = time.monotonic()
        first_claim = None
        deadline = written + args.max_seconds
        complete = False
        state: dict[str, int] = {}
        last_report = last_progress = written
        last_moved = -1
        stalled = False
        samplers: list = []
        while time.monotonic() < deadline:
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
        end = time.monotonic()
        printed = profile.finish(f"senders {run}", samplers)
        if printed:
            print(printed, flush=True)
        peak = senders.peak_rss_kib()
        cpu = [b - a for a, b in zip(cpu_before, senders.cpu())]
    finally:
        senders.stop()
    state = outbox_state(engine)
    sent = state.get("sent", 0)
    seconds = end - (first_claim or written)
    with engine.connect() as conn:
        from models import Notification

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
                       "fake_delivered": fake.sent_count(),
                       "fake_wechat_vmhwm_mib": (proc_status(fake.proc.pid, "VmHWM") or 0) / 1024})


# --- the fake server's ceiling -------------------------------------------------------------------------------

WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[BODY]==]
"""


def template_body() -> str:
    return json.dumps({"touser": "mp-ceiling", "template_id": "TPL-MP-SERVICE", "data": {
        "thing1": {"value": "工会会员信息核对"}, "thing2": {"value": "请于本周内在小程序中核对个人信息"},
        "time3": {"value": "2026-11-25 09:00"}}}, ensure_ascii=False)


def ceiling(fake: FakeWeChat, requests_wanted: int, concurrency: int, args) -> Row:
    """`requests_wanted` plain template sends at `concurrency`, same latency, from a separate load process."""
    fake.reset(args.latency_ms)
    url = f"{fake.url}{TEMPLATE_SEND}?access_token={fake.token()}"
    before = fake.calls().get(TEMPLATE_SEND, 0)
    if args.loadgen == "wrk":
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(WRK_SCRIPT.replace("BODY", template_body()))
        threads = min(2, concurrency)
        cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{args.max_seconds}s", "--timeout", "10s", "--latency",
               "-s", script.name, url]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:   # wrk is bounded by time only: stop it (SIGINT makes it report) once the server saw enough calls
            while proc.poll() is None and fake.calls().get(TEMPLATE_SEND, 0) - before < requests_wanted:
                time.sleep(0.2)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            out = proc.communicate(timeout=60)[0]
        finally:
            os.unlink(script.name)
        from bench.harness import parse_wrk

        figures = parse_wrk("ceiling", out)
        done, seconds, errors = figures.requests, figures.seconds, figures.errors
        detail = {"loadgen": "wrk", "p50_ms": figures.p50_ms, "p99_ms": figures.p99_ms, "errors": errors}
    else:
        procs = min(4, concurrency)
        per = [concurrency // procs + (i < concurrency % procs) for i in range(procs)]
        children = [subprocess.Popen(
            [sys.executable, "-m", "bench.pyload", "--url", url, "--method", "POST", "--body", template_body(),
             "--header", "Content-Type: application/json", "--connections", str(n),
             "--seconds", str(args.max_seconds), "--max-requests", str(-(-requests_wanted // procs))],
            cwd=ROOT, stdout=subprocess.PIPE, text=True) for n in per]
        parts = [json.loads(c.communicate(timeout=args.max_seconds + 120)[0]) for c in children]
        done = sum(len(p["latencies_ms"]) for p in parts)
        seconds = max(p["seconds"] for p in parts)
        errors = sum(p["socket_errors"] for p in parts) + sum(
            n for code, n in (kv for p in parts for kv in p["statuses"].items()) if code != "200")
        detail = {"loadgen": "python", "errors": errors}
    delivered = fake.sent_count()
    detail.update(delivered=delivered, fake_wechat_vmhwm_mib=(proc_status(fake.proc.pid, "VmHWM") or 0) / 1024)
    return Row(run=f"ceiling c={concurrency}", processes=0, in_flight=concurrency, sent=delivered, seconds=seconds,
               rate=done / seconds if seconds else 0.0, complete=done >= requests_wanted, detail=detail)


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
    return render_rows(cells)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Notification fan-out bench (通知群发压测)")
    p.add_argument("--staff", type=int, default=100_000, help="audience size (default 100,000)")
    p.add_argument("--processes", default="1,4", help="sender process counts, one run each (default 1,4)")
    p.add_argument("--in-flight", type=int, default=8, help="notifications.in_flight per sender (default 8)")
    p.add_argument("--latency-ms", type=int, default=20, help="latency injected on both send endpoints")
    p.add_argument("--max-seconds", type=int, default=600, help="bound of each run; partial rate after it")
    p.add_argument("--stall-seconds", type=int, default=60,
                   help="stop a run when no row has moved for this long (e.g. senders failing; see their logs)")
    p.add_argument("--database", default=DB_NAME, help=f"PostgreSQL database, recreated (default {DB_NAME})")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto",
                   help="load generator of the ceiling: wrk when on PATH, else Python threads")
    p.add_argument("--no-ceiling", action="store_true", help="skip the fake server's ceiling")
    args = p.parse_args()
    if args.loadgen == "auto":
        from shutil import which

        args.loadgen = "wrk" if which("wrk") else "python"
    args.process_counts = [int(x) for x in args.processes.split(",") if x.strip()]
    return args


def main() -> None:
    args = parse_args()
    from app import create_app
    from app.config import load_config

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    load_at_start = os.getloadavg()[0]
    if load_at_start > 1:
        print(f"bench: note: load average {load_at_start:.1f} before starting; other work on this machine "
              "will skew the figures", flush=True)
    fake = FakeWeChat()
    rows: list[Row] = []
    try:
        settings = overrides(fake.url, args.database)
        cfg = load_config(environ={}, overrides=settings)
        print(f"bench: recreating {args.database}, seeding {args.staff:,} staff ...", flush=True)
        recreate_database(cfg, args.database)
        reset_redis()
        app = create_app(cfg)
        started = time.monotonic()
        audience = seed_roster(app, args.staff)
        print(f"bench: seeded in {time.monotonic() - started:.0f}s: {audience['template']:,} followers (template), "
              f"{audience['subscribe']:,} with one subscribe consent; {args.latency_ms} ms latency per send; "
              f"ceiling by {args.loadgen}", flush=True)
        for processes in args.process_counts:
            print(f"bench: {processes} sender(s) x in_flight {args.in_flight} ...", flush=True)
            row = run_senders(app, fake, settings, processes, args)
            print(f"bench:   {row.sent:,} sent in {row.seconds:.1f}s = {row.rate:,.0f}/s", flush=True)
            if not args.no_ceiling:
                base = ceiling(fake, row.sent or args.staff, processes * args.in_flight, args)
                print(f"bench:   ceiling at {processes * args.in_flight} connections: {base.rate:,.0f} req/s",
                      flush=True)
                row.ceiling_rate = base.rate
                rows += [row, base]
            else:
                rows.append(row)
        app.extensions["db.engine"].dispose()
    finally:
        fake.stop()

    print()
    print(table(rows))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = RESULTS_DIR / f"fanout-{stamp}.json"
    path.write_text(json.dumps({
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": {k: v for k, v in vars(args).items()}, "loadavg_at_start": load_at_start,
        "rows": [asdict(r) for r in rows]}, ensure_ascii=False, indent=2, default=str))
    print(f"\nbench: figures written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
