"""Every bench in one run (`bash bench/run.sh all`; `--help` for the options): each bench as it runs on its own,
with the sizes of BENCHES, then one table of each path against its floor and the target it is held to, the load
average over the run, and bench/results/all-<time>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import threading
import time
import traceback

from bench import report

# name, module, its options in `all` (each bench's defaults but the fan-out's: 4 senders only, 50,000 staff; about
# 12-15 minutes on 2 cores), and under --smoke (about 2 minutes)
BENCHES = [
    ("me", "bench.main", [], ["--staff", "50"]),
    ("signup", "bench.signup", [], ["--staff", "300", "--seats", "50"]),
    ("mp", "bench.mp", [], ["--staff", "1000", "--announcements", "200", "--rounds", "1"]),
    ("fanout", "bench.fanout", ["--processes", "4", "--staff", "50000"], ["--processes", "4", "--staff", "300"]),
    ("redeem", "bench.redeem", [], ["--vouchers", "4000"]),
    ("jobs", "bench.jobs", [], ["--staff", "300"]),
]
HTTP = ("me", "signup", "mp", "redeem")          # the benches taking harness.parser's load options
# path, bench, its row, the floor's row, the floor, target req/s ratio (None: no target), target p99 ratio
TARGETS = [
    ("GET /api/v1/me", "me", "me", "bare", "bare Flask GET /bare", 0.5, None),
    ("POST /api/v1/events/<id>/signup", "signup", "signup", "floor", "1 UPDATE + 1 INSERT", 0.6, 1.2),
    ("POST /wechat/mp text push, new MsgId", "mp", "push", "echo", "signature + parse + echo", 0.6, None),
    ("POST /wechat/mp retry, same MsgId", "mp", "retry", "echo", "signature + parse + echo", 0.8, None),
    ("GET /api/v1/announcements", "mp", "list", "bare", "bare Flask GET /bare", 0.4, None),
    ("POST /api/v1/cashier/redeem", "redeem", "redeem", "floor", "1 conditional UPDATE", None, None),
]
FANOUT_RATIO, FANOUT_CPU_MS = 0.6, 1.5
HEADERS = ["path", "req/s", "p99 ms", "floor", "floor req/s", "ratio", "target", "met"]


class LoadSampler(threading.Thread):
    """The 1-minute load average every `every` seconds, in the background, until stopped."""

    def __init__(self, every: float = 5):
        super().__init__(daemon=True)
        self.every, self.at_start, self.samples = every, os.getloadavg(), []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.samples.append(os.getloadavg()[0])
            self.done.wait(self.every)

    def summary(self) -> dict:
        self.done.set()
        samples = self.samples or [self.at_start[0]]
        return {"at_start": self.at_start, "max": max(samples), "mean": sum(samples) / len(samples),
                "every_seconds": self.every, "samples": samples}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bench/run.sh all", description="every bench in one run (全部压测)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, 1 s per row, no warm-up: does it all run?")
    p.add_argument("--only", default=",".join(b[0] for b in BENCHES), help="comma-separated benches (default all)")
    p.add_argument("--profile", action="store_true", help="py-spy under the measured load (bench/profile.py)")
    for option in ("--duration", "--warmup", "--threads", "--workers"):
        p.add_argument(option, type=int, help=f"{option} of every HTTP bench (default: each bench's own)")
    p.add_argument("--no-recycle", action="store_true", help="--no-recycle for every HTTP bench")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], help="--loadgen for every bench but jobs")
    return p.parse_args(argv)


def bench_argv(args: argparse.Namespace, name: str, sizes: list[str]) -> list[str]:
    argv = list(sizes)
    if name in HTTP:
        duration = args.duration if args.duration is not None else (1 if args.smoke else None)
        warmup = args.warmup if args.warmup is not None else (0 if args.smoke else None)
        for option, value in (("--duration", duration), ("--warmup", warmup), ("--threads", args.threads),
                              ("--workers", args.workers)):
            argv += [option, str(value)] if value is not None else []
        argv += ["--no-recycle"] if args.no_recycle else []
    if args.loadgen and name != "jobs":
        argv += ["--loadgen", args.loadgen]
    return argv


def rows_of(results: dict) -> list[dict]:
    """The table's rows: each target whose bench ran, then the fan-out."""
    rows = []
    for path, bench, key, floor_key, floor, min_ratio, max_p99 in TARGETS:
        got = results.get(bench) or {}
        if key not in got or floor_key not in got:
            continue
        f, base = got[key], got[floor_key]
        ratio, p99_ratio = f.rps / base.rps if base.rps else 0.0, f.p99_ms / base.p99_ms if base.p99_ms else 0.0
        met = None if min_ratio is None else ratio >= min_ratio and (max_p99 is None or p99_ratio <= max_p99)
        rows.append({"path": path, "rps": f.rps, "p99_ms": f.p99_ms, "errors": f.errors, "floor": floor,
                     "floor_rps": base.rps, "ratio": ratio, "p99_ratio": p99_ratio if max_p99 else None,
                     "target": "—" if min_ratio is None else f"≥ {min_ratio}x"
                     + (f", p99 ≤ {max_p99}x" if max_p99 else ""), "met": met})
    fanout = [r for r in results.get("fanout") or [] if r.processes == 4 and r.in_flight == 8 and r.ceiling_rate]
    for r in fanout:
        ratio, cpu = r.rate / r.ceiling_rate, r.detail.get("cpu_ms_per_send") or float("inf")
        rows.append({"path": "fan-out, 4 senders × 8 in flight (sends/s)", "rps": r.rate, "p99_ms": None,
                     "errors": 0 if r.complete else 1, "floor": "fake WeChat's ceiling, 32 connections",
                     "floor_rps": r.ceiling_rate, "ratio": ratio, "cpu_ms_per_send": cpu,
                     "target": f"≥ {FANOUT_RATIO}x, ≤ {FANOUT_CPU_MS} ms CPU/send",
                     "met": ratio >= FANOUT_RATIO and cpu <= FANOUT_CPU_MS})
    return rows


def table(rows: list[dict]) -> str:
    cells = [HEADERS]
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" + (f", p99 {r['p99_ratio']:.2f}x" if r.get("p99_ratio") is not None else "")
        ratio += f", {r['cpu_ms_per_send']:.2f} ms CPU/send" if "cpu_ms_per_send" in r else ""
        cells.append([r["path"], f"{r['rps']:,.0f}", "—" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}",
                      r["floor"], f"{r['floor_rps']:,.0f}", ratio, r["target"],
                      "—" if r["met"] is None else "yes" if r["met"] else "no"])
    return report.render_rows(cells)


def jobs_line(steps: list[dict]) -> str:
    base = max(steps[0]["seconds"], 1e-9) if steps else 1
    return "jobs 定时任务 (seconds, × count(*), peak MiB): " + "; ".join(
        f"{s['step']} {s['seconds']:.2f} s {s['seconds'] / base:.0f}× {s['peak_mib']:.0f} MiB" for s in steps[1:])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.profile:
        os.environ["SMART_UNION_BENCH_PROFILE"] = "1"        # read by bench/profile.py
    wanted = set(args.only.split(","))
    plan = [(name, module, bench_argv(args, name, smoke if args.smoke else sizes))
            for name, module, sizes, smoke in BENCHES if name in wanted]
    sampler = LoadSampler()
    sampler.start()
    started = time.monotonic()
    results, runs = {}, {}
    for n, (name, module, bench_args) in enumerate(plan, 1):
        print(f"\nall: [{n}/{len(plan)}] {name}: python -m {module} {' '.join(bench_args)} "
              f"(+{time.monotonic() - started:.0f}s, load average {os.getloadavg()[0]:.1f})", flush=True)
        began = time.monotonic()
        try:
            results[name] = importlib.import_module(module).main(bench_args)
            failed = results[name].get("failed") if isinstance(results[name], dict) else None
        except (Exception, SystemExit) as exc:       # the other benches still run
            traceback.print_exc()
            failed = f"{type(exc).__name__}: {exc}"
        runs[name] = {"argv": bench_args, "seconds": time.monotonic() - began, "failed": failed}
        print(f"all: {name} {'FAILED: ' + failed if failed else 'done'} in {runs[name]['seconds']:.0f}s", flush=True)
    load = sampler.summary()
    rows = rows_of(results)

    print(f"\nall: {len(plan)} benches in {(time.monotonic() - started) / 60:.1f} min\n")
    print(table(rows))
    if "jobs" in results:
        print("\n" + jobs_line(results["jobs"]))
    errors = [f"{r['path']} ({r['errors']:,})" for r in rows if r["errors"]]
    if errors:
        print("\nerrors (non-2xx, socket errors, or a fan-out left incomplete): " + ", ".join(errors))
    print(f"\nload average: {', '.join(f'{x:.2f}' for x in load['at_start'])} at start (1, 5, 15 min); 1-minute "
          f"sampled every {load['every_seconds']:.0f}s during the run: max {load['max']:.2f}, mean {load['mean']:.2f}")
    print("sizes: " + "; ".join(f"{name} {' '.join(run['argv']) or '(defaults)'}" for name, run in runs.items()))
    failed = {name: run["failed"] for name, run in runs.items() if run["failed"]}
    report.write_json("all", {"settings": {"argv": sys.argv[1:] if argv is None else argv, "smoke": args.smoke,
                                           "profile": args.profile},
                              "rows": rows, "loadavg": load, "runs": runs, "figures": _jsonable(results)})
    if failed:
        raise SystemExit(f"all: failed: {failed}")


def _jsonable(value):
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


if __name__ == "__main__":
    main()
