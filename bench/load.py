"""Load from other processes, and its figures: wrk when on PATH (bench/run.sh installs it), else this module run
as the Python load generator (`python -m bench.load`: one process, N keep-alive connections, a thread each),
several processes side by side, their reports merged.

    figures = run_load(server.url, Target("GET /api/v1/me", "/api/v1/me", headers=auth), LoadSpec())

A target can rotate bearer tokens and request bodies from files (each request the next line), or, for WeChat
pushes, give every request a number of its own in place of "__UNIQUE__" in its body, signed as WeChat signs a push
(a fresh timestamp and that number as the nonce): Python load generator only, wrk's Lua has no SHA-1.
"""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Callable
from urllib.parse import urlencode, urlsplit

from bench.harness import ROOT, SERVERS

UNIQUE = "__UNIQUE__"
# Unique numbers (MsgIds): below 2**53 so Lua doubles would print them exactly; each run takes a block of 10**9.
_unique_blocks = itertools.count(int(time.time()) * 1_000_000, 1_000_000_000)


@dataclass(frozen=True)
class Target:
    """One endpoint to load: a row of the table."""

    name: str
    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None            # sent as is; give the Content-Type in headers
    expect_status: int = 200
    expect_text: str | None = None     # the probe's answer must contain it
    tokens_file: str | None = None     # one bearer token a line: each request carries the next one (many users)
    bodies_file: str | None = None     # one request body a line: each request carries the next one (distinct data)
    sign_token: str | None = None      # body with UNIQUE: each request signed with this token (a WeChat push)


@dataclass(frozen=True)
class LoadSpec:
    duration: int = 10                 # seconds measured
    warmup: int = 2                    # seconds of the same load before, not measured
    connections: int = 32
    threads: int = 2                   # wrk threads, or Python load processes
    max_requests: int = 1_000_000      # bound for the Python load generator (wrk is bounded by time only)
    loadgen: str = "auto"              # auto | wrk | python

    @classmethod
    def from_args(cls, args) -> LoadSpec:
        """The load every bench takes from its command line (harness.parser)."""
        return cls(duration=args.duration, warmup=args.warmup, connections=args.connections, threads=args.threads,
                   loadgen=args.loadgen)


@dataclass
class Figures:
    name: str
    loadgen: str
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int                        # non-2xx/3xx responses plus socket errors
    detail: dict = field(default_factory=dict)


def next_unique() -> int:
    """A number never used before by this process's loads (a MsgId)."""
    return next(_unique_blocks)


def loadgen_name(spec: LoadSpec, target: Target | None = None) -> str:
    if target is not None and target.body and UNIQUE in target.body:
        return "python"
    if spec.loadgen != "auto":
        return spec.loadgen
    return "wrk" if shutil.which("wrk") else "python"


def run_load(base_url: str, target: Target, spec: LoadSpec) -> Figures:
    """A probe request, the warm-up, then the measured run (sampled by py-spy under --profile)."""
    from bench import profile

    probe(base_url, target)
    if spec.warmup:
        load_once(base_url, target, spec, spec.warmup)      # warm-up, discarded
    samplers = profile.start(target.name, [SERVERS[base_url]] if base_url in SERVERS else [], spec.duration)
    figures = load_once(base_url, target, spec, spec.duration)
    printed = profile.finish(target.name, samplers)
    if printed:
        print(printed, flush=True)
        figures.detail["profile"] = printed
    return figures


def load_once(base_url: str, target: Target, spec: LoadSpec, seconds: int,
              stop_when: Callable[[], bool] | None = None) -> Figures:
    """One run of the load, no probe: `seconds` long, or until `stop_when()` (polled every 0.2 s) for wrk, or
    spec.max_requests for the Python load generator."""
    if loadgen_name(spec, target) == "wrk":
        return _wrk(base_url, target, spec, seconds, stop_when)
    return _python(base_url, target, spec, seconds)


def probe(base_url: str, target: Target) -> bytes:
    """One request before the load, to fail loudly on a wrong setup instead of measuring error pages."""
    headers, path, body = dict(target.headers), target.path, target.body
    if target.tokens_file:
        headers["Authorization"] = f"Bearer {_lines(target.tokens_file)[0]}"
    if target.bodies_file:
        body = _lines(target.bodies_file)[-1]       # the load starts at the top
    if body is not None and UNIQUE in body:
        number = str(next_unique())
        body = body.replace(UNIQUE, number)
        path = signed_path(path, target.sign_token, number) if target.sign_token else path
    req = urllib.request.Request(base_url + path, method=target.method, headers=headers,
                                 data=body.encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, answer = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, answer = exc.code, exc.read()
    if status != target.expect_status or (target.expect_text and target.expect_text not in answer.decode()):
        expected = f"{target.expect_status}" + (f" with {target.expect_text!r}" if target.expect_text else "")
        raise RuntimeError(f"{target.name}: expected {expected}, got {status}: {answer[:300]!r}")
    return answer


def signed_path(path: str, token: str, nonce: str) -> str:
    """`path` with the query WeChat signs a push with: signature of (token, a fresh timestamp, nonce)."""
    timestamp = str(int(time.time()))
    signature = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return f"{urlsplit(path).path}?{urlencode({'signature': signature, 'timestamp': timestamp, 'nonce': nonce})}"


def lines_file(lines: list[str], suffix: str) -> str:
    """A temporary file of `lines`, one a line (a Target's tokens_file or bodies_file); the caller deletes it."""
    with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False, encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    return fh.name


def _lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()]


# ---- wrk ------------------------------------------------------------------------------------------------------

def _wrk(base_url: str, target: Target, spec: LoadSpec, seconds: int, stop_when) -> Figures:
    cmd = ["wrk", f"-t{spec.threads}", f"-c{spec.connections}", f"-d{seconds}s", "--timeout", "10s", "--latency"]
    for key, value in target.headers.items():
        cmd += ["-H", f"{key}: {value}"]
    script = None
    if target.method != "GET" or target.body is not None or target.tokens_file or target.bodies_file:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(f'wrk.method = "{target.method}"\n')
        if target.body is not None:
            script.write(f"wrk.body = [==[{target.body}]==]\n")
        if target.tokens_file or target.bodies_file:
            script.write(WRK_ROTATE.replace("TOKENS_FILE", target.tokens_file or "")
                         .replace("BODIES_FILE", target.bodies_file or "")
                         .replace("THREADS", str(spec.threads)))
        script.close()
        cmd += ["-s", script.name]
    proc = subprocess.Popen(cmd + [base_url + target.path], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if stop_when:     # wrk is bounded by time only: SIGINT makes it stop and report
            while proc.poll() is None and not stop_when():
                time.sleep(0.2)
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=seconds + 60)
    finally:
        if script:
            os.unlink(script.name)
    if proc.returncode:
        raise RuntimeError(f"wrk exited with {proc.returncode}: {err[-500:]}")
    return parse_wrk(target.name, out)


# Thread k of n sends tokens (and bodies) k, k + n, k + 2n, ... (each wrk thread runs its own Lua state).
WRK_ROTATE = """
local function lines(path)
  local found = {}
  if path ~= "" then for line in io.lines(path) do if #line > 0 then found[#found + 1] = line end end end
  return found
end
local tokens, bodies = lines("TOKENS_FILE"), lines("BODIES_FILE")
local next_thread, sent = 0, 0
function setup(thread) thread:set("id", next_thread); next_thread = next_thread + 1 end
function request()
  local n = id + sent * THREADS
  sent = sent + 1
  if #tokens > 0 then wrk.headers["Authorization"] = "Bearer " .. tokens[(n % #tokens) + 1] end
  if #bodies > 0 then wrk.body = bodies[(n % #bodies) + 1] end
  return wrk.format()
end
"""

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text).groups()
    return float(value) * _UNITS_MS[unit]


def parse_wrk(name: str, out: str) -> Figures:
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out)
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M))   # wrk pads "1.35s " with a space
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = dict(zip(("connect", "read", "write", "timeout"), map(int, sock.groups()))) if sock else {}
    bad_status = int(non2xx.group(1)) if non2xx else 0
    return Figures(
        name=name, loadgen="wrk", requests=int(total.group(1)), seconds=_ms(total.group(2) + total.group(3)) / 1000,
        rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        p50_ms=_ms(pct["50"]), p99_ms=_ms(pct["99"]), errors=bad_status + sum(socket_errors.values()),
        detail={"non_2xx_3xx": bad_status, "socket_errors": socket_errors,
                "percentiles_ms": {k: _ms(v) for k, v in pct.items()}},
    )


# ---- the Python load generator: the driver side -----------------------------------------------------------------

def _python(base_url: str, target: Target, spec: LoadSpec, seconds: int) -> Figures:
    """`threads` processes of this module, the connections spread over them, their reports merged."""
    procs = max(1, spec.threads)
    per_proc = [spec.connections // procs + (i < spec.connections % procs) for i in range(procs)]
    job = {"url": base_url + target.path, "method": target.method, "headers": target.headers, "body": target.body,
           "seconds": seconds, "max_requests": max(1, -(-spec.max_requests // procs)), "step": procs,
           "tokens_file": target.tokens_file, "bodies_file": target.bodies_file, "sign_token": target.sign_token}
    unique = next_unique() if target.body and UNIQUE in target.body else 0
    children = [subprocess.Popen([sys.executable, "-m", "bench.load",
                                  json.dumps({**job, "connections": n, "start": i, "unique_start": unique + i})],
                                 cwd=ROOT, stdout=subprocess.PIPE, text=True) for i, n in enumerate(per_proc) if n]
    parts = [json.loads(child.communicate(timeout=seconds + 60)[0]) for child in children]
    return merge_load_parts(target.name, parts)


def merge_load_parts(name: str, parts: list[dict]) -> Figures:
    """One Figures from the JSON reports of several Python load-generator processes."""
    latencies = sorted(x for p in parts for x in p["latencies_ms"])
    statuses: dict[str, int] = {}
    for p in parts:
        for code, n in p["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    elapsed = max(p["seconds"] for p in parts)
    bad_status = sum(n for code, n in statuses.items() if not 200 <= int(code) < 400)
    socket_errors = sum(p["socket_errors"] for p in parts)
    return Figures(
        name=name, loadgen="python", requests=len(latencies), seconds=elapsed,
        rps=len(latencies) / elapsed if elapsed else 0.0,
        p50_ms=_percentile(latencies, 50), p99_ms=_percentile(latencies, 99), errors=bad_status + socket_errors,
        detail={"statuses": statuses, "socket_errors": socket_errors},
    )


def _percentile(sorted_values: list[float], pct: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


# ---- the Python load generator: one process -----------------------------------------------------------------

def main() -> None:
    """One process of the Python load generator; its job (JSON, the only argument) as `_python` writes it.

    Bounded by time (seconds) and count (max_requests, shared by the threads); prints one JSON object:
    {"latencies_ms": [...], "statuses": {"200": n}, "socket_errors": n, "seconds": elapsed}.
    Request r carries token and body number start + r * step of their files, and unique number
    unique_start + r * step (each process has its own start, and the process count as step)."""
    job = json.loads(sys.argv[1])
    url = urlsplit(job["url"])
    path = url.path + (f"?{url.query}" if url.query else "")
    headers, start, step = job["headers"], job["start"], job["step"]
    body = job["body"].encode() if job["body"] is not None else None
    unique = body is not None and UNIQUE.encode() in body
    tokens = _lines(job["tokens_file"]) if job["tokens_file"] else []
    bodies = [b.encode() for b in _lines(job["bodies_file"])] if job["bodies_file"] else []
    tickets = itertools.count()          # next() is atomic under the GIL: a shared request budget
    numbers = itertools.count(job["unique_start"], step)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    socket_errors = [0]
    lock = threading.Lock()
    started = time.perf_counter()
    deadline = started + job["seconds"]

    def request(ticket: int) -> tuple[str, dict[str, str], bytes | None]:
        n = start + ticket * step
        sent_path, sent_body = path, bodies[n % len(bodies)] if bodies else body
        if unique:
            number = str(next(numbers))
            sent_body = body.replace(UNIQUE.encode(), number.encode())
            sent_path = signed_path(path, job["sign_token"], number) if job["sign_token"] else path
        sent_headers = {**headers, "Authorization": f"Bearer {tokens[n % len(tokens)]}"} if tokens else headers
        return sent_path, sent_headers, sent_body

    def worker() -> None:
        mine: list[float] = []
        codes: dict[str, int] = {}
        errors = 0
        conn = None
        while time.perf_counter() < deadline and (ticket := next(tickets)) < job["max_requests"]:
            if conn is None:
                conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
            sent_path, sent_headers, sent_body = request(ticket)
            t0 = time.perf_counter()
            try:
                conn.request(job["method"], sent_path, body=sent_body, headers=sent_headers)
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

    threads = [threading.Thread(target=worker) for _ in range(job["connections"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(json.dumps({"latencies_ms": latencies, "statuses": statuses, "socket_errors": socket_errors[0],
                      "seconds": time.perf_counter() - started}))


if __name__ == "__main__":
    main()
