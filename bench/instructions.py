"""Instructions per request, counted by callgrind (`bash bench/run.sh instructions`): the same figure whatever else
the machine is doing, so two versions of the code can be compared on a shared machine, where req/s move ±10 %
between runs of the same code.

Each path runs in a process of its own under `valgrind --tool=callgrind`, which counts only inside the measured loop
(`--toggle-collect` on the functools.reduce that drives it): N requests through the WSGI app, after N to warm it,
on a small copy of the mp bench's data. Client-side work only: no kernel, Redis or PostgreSQL time is counted, so a
round trip saved shows less here than in req/s. The floors are the same as the HTTP benches'.
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import os
import re
import subprocess
import sys
import time

from bench import seed
from bench.load import signed_path
from bench.mp import LIST_PATH, push_xml

DB_NAME = "smart_union_bench_instructions"
READER_TOKEN = "SMART_UNION_BENCH_READER_TOKEN"     # the mp bench's staff member, for the inner runs
REDIS_PREFIX = "subenchins:"
PATHS = {            # path -> its floor
    "me": "bare", "list": "bare", "push": "echo", "retry": "echo", "bare": None, "echo": None,
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser("bench/run.sh instructions", description="每个请求的指令数 instructions per request")
    p.add_argument("--requests", type=int, default=100, help="measured requests per path (default 100)")
    p.add_argument("--paths", default=",".join(PATHS), help=f"comma-separated, of {', '.join(PATHS)}")
    p.add_argument("--inner", help=argparse.SUPPRESS)      # one path, run under valgrind by the driver
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.inner:
        return measure_inside(args.inner, args.requests)
    overrides = seed.settings(DB_NAME, redis_prefix=REDIS_PREFIX)
    print(f"bench: seeding {DB_NAME} (3,000 staff, 1,000 announcements) ...", flush=True)
    with seed.open_app(seed.config(overrides), fresh=True) as app:
        token = seed.announcements(app, 3000, 1000).token
    counts = {}
    for path in args.paths.split(","):
        started = time.monotonic()
        counts[path] = count_under_callgrind(path, args.requests, token)
        print(f"bench: {path}: {counts[path]:,} instructions per request ({time.monotonic() - started:.0f}s)",
              flush=True)
    print()
    print(f"{'path':<8} {'instructions/request':>22}  {'floor':<6} {'÷ floor':>8}")
    for path, n in counts.items():
        floor = PATHS[path]
        ratio = f"{n / counts[floor]:.2f}x" if floor in counts else "-"
        print(f"{path:<8} {n:>22,}  {floor or '-':<6} {ratio:>8}")


def count_under_callgrind(path: str, requests: int, token: str) -> int:
    run = subprocess.run(
        ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--toggle-collect=functools_reduce",
         "--callgrind-out-file=/dev/null", sys.executable, "-m", "bench.instructions", "--inner", path,
         "--requests", str(requests)], capture_output=True, text=True, env={**os.environ, READER_TOKEN: token})
    if run.returncode != 0:
        raise RuntimeError(f"callgrind run of {path} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    collected = re.search(r"Collected : (\d+)", run.stderr)
    if collected is None or "measured" not in run.stdout:       # valgrind missing a symbol, say
        raise RuntimeError(f"callgrind run of {path} failed:\n{run.stdout[-2000:]}\n{run.stderr[-2000:]}")
    return int(collected.group(1)) // requests


def measure_inside(path: str, requests: int) -> None:
    app, environs = _app_and_requests(path, 2 * requests)
    check = _call(app, environs[0])
    if not check.startswith("200"):
        raise RuntimeError(f"{path}: {check}")
    for environ in environs[:requests]:
        _call(app, environ)
    functools.reduce(lambda _, environ: _call(app, environ), environs[requests:], None)   # counted
    print(f"{path}: measured {requests}")


def _app_and_requests(path: str, count: int):
    from werkzeug.test import EnvironBuilder

    cfg = seed.config(seed.settings(DB_NAME, redis_prefix=REDIS_PREFIX))
    if path in ("bare", "echo"):
        os.environ["MP_BARE_TOKEN"] = cfg.wechat.official_account.token
        from bench import bare_app, mp_bare_app
        app = bare_app.app if path == "bare" else mp_bare_app.app
    else:
        from app import create_app
        app = create_app(cfg)
    if path in ("push", "echo"):
        token, numbers = cfg.wechat.official_account.token, itertools.count(time.time_ns())
        return app, [_push(token, next(numbers), f"n{next(numbers)}") for _ in range(count)]
    if path == "retry":
        return app, [_push(cfg.wechat.official_account.token, 1, f"retry{time.time_ns()}")] * count
    target = {"bare": "/bare", "me": "/api/v1/me", "list": LIST_PATH}[path]
    headers = {"Authorization": f"Bearer {os.environ[READER_TOKEN]}"} if path != "bare" else {}
    return app, [EnvironBuilder(path=target, headers=headers).get_environ()] * count


def _push(token: str, msg_id: int, nonce: str) -> dict:
    """A signed text push from the mp bench's follower, as that bench sends it (its body kept to be read again)."""
    from werkzeug.test import EnvironBuilder

    body = push_xml(seed.FOLLOWER_OPENID, msg_id).encode()
    environ = EnvironBuilder(path=signed_path("/wechat/mp", token, nonce), method="POST", data=body,
                             headers={"Content-Type": "text/xml"}).get_environ()
    environ["bench.body"] = body
    return environ


def _call(app, environ: dict) -> str:
    environ = dict(environ)
    if "bench.body" in environ:          # a body is a stream, read once: each call gets it afresh
        environ["wsgi.input"] = io.BytesIO(environ["bench.body"])
    status = []
    b"".join(app.wsgi_app(environ, lambda s, _headers, _exc=None: status.append(s)))
    return status[0]


if __name__ == "__main__":
    main()
