"""Fallback load generator when wrk is unavailable: one process, N keep-alive connections (one thread each).

Bounded by time (--seconds) and count (--max-requests, shared by the threads); prints one JSON object:
{"latencies_ms": [...], "statuses": {"200": n}, "socket_errors": n, "seconds": elapsed}.
The harness runs several of these processes side by side and merges their output.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import threading
import time
from urllib.parse import urlsplit


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--header", action="append", default=[])
    parser.add_argument("--body")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--max-requests", type=int, default=500_000)
    parser.add_argument("--tokens-file", help="bearer tokens, one a line: request r carries token start + r*step")
    parser.add_argument("--token-start", type=int, default=0)
    parser.add_argument("--token-step", type=int, default=1)
    parser.add_argument("--bodies-file", help="request bodies, one a line, rotated like the tokens")
    args = parser.parse_args()

    url = urlsplit(args.url)
    path = url.path + (f"?{url.query}" if url.query else "")
    headers = dict(h.split(": ", 1) for h in args.header)
    body = args.body.encode() if args.body is not None else None
    tokens = _read_tokens(args.tokens_file) if args.tokens_file else []
    bodies = [b.encode() for b in _read_tokens(args.bodies_file)] if args.bodies_file else []
    tickets = itertools.count()          # next() is atomic under the GIL: a shared request budget
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    socket_errors = [0]
    lock = threading.Lock()
    start = time.perf_counter()
    deadline = start + args.seconds

    def worker() -> None:
        mine: list[float] = []
        codes: dict[str, int] = {}
        errors = 0
        conn = None
        while time.perf_counter() < deadline and (ticket := next(tickets)) < args.max_requests:
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            sent_headers, sent_body = headers, body
            if bodies:
                sent_body = bodies[(args.token_start + ticket * args.token_step) % len(bodies)]
            if tokens:
                token = tokens[(args.token_start + ticket * args.token_step) % len(tokens)]
                sent_headers = {**headers, "Authorization": f"Bearer {token}"}
            t0 = time.perf_counter()
            try:
                conn.request(args.method, path, body=sent_body, headers=sent_headers)
                resp = conn.getresponse()
                resp.read()
            except (OSError, http.client.HTTPException):
                errors += 1
                conn.close()
                conn = None
                continue
            mine.append((time.perf_counter() - t0) * 1000)
            codes[str(resp.status)] = codes.get(str(resp.status), 0) + 1
            if resp.will_close:
                conn.close()
                conn = None
        if conn is not None:
            conn.close()
        with lock:
            latencies.extend(mine)
            for code, n in codes.items():
                statuses[code] = statuses.get(code, 0) + n
            socket_errors[0] += errors

    threads = [threading.Thread(target=worker) for _ in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"latencies_ms": latencies, "statuses": statuses, "socket_errors": socket_errors[0],
                      "seconds": time.perf_counter() - start}))


def _read_tokens(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


if __name__ == "__main__":
    main()
