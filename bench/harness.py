"""Reusable benchmark harness: gunicorn with the project's gunicorn.conf.py, load from another process, figures.

    with Gunicorn("app.wsgi:app", workers=5, env=app_env) as server:
        figures = run_load(server.url, Target("GET /api/v1/me", "/api/v1/me", headers=auth), LoadSpec())

Load comes from wrk when it is on PATH (run.sh installs it), otherwise from bench/pyload.py in separate processes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"


@dataclass(frozen=True)
class Target:
    """One endpoint to load: a row of the table."""

    name: str
    path: str
    method: str = "GET"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None            # sent as is; give the Content-Type in headers
    expect_status: int = 200
    tokens_file: str | None = None     # one bearer token a line: each request carries the next one (many users)
    bodies_file: str | None = None     # one request body a line: each request carries the next one (distinct data)


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
        """The load every bench takes from its command line (--duration, --warmup, --connections, ...)."""
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment without any SMART_UNION* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_UNION")}
    env.update(extra or {})
    return env


class Gunicorn:
    """gunicorn -c gunicorn.conf.py serving `wsgi_app` on a free loopback port, access log off."""

    def __init__(self, wsgi_app: str, workers: int, env: dict[str, str] | None = None,
                 ready_path: str = "/healthz", log_name: str | None = None, threads: int | None = None,
                 extra_args: list[str] | None = None):
        self.wsgi_app, self.workers, self.ready_path = wsgi_app, workers, ready_path
        self.extra_args = list(extra_args or [])   # gunicorn command-line settings, over gunicorn.conf.py's
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_env(env)
        self.env.update(SMART_UNION_WSGI_APP=wsgi_app, SMART_UNION_BIND=f"127.0.0.1:{self.port}",
                        SMART_UNION_WORKERS=str(workers), SMART_UNION_ACCESS_LOG="/dev/null")
        if threads:
            self.env["SMART_UNION_THREADS"] = str(threads)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = RESULTS_DIR / f"gunicorn-{log_name or wsgi_app.split(':')[0]}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Gunicorn":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> None:
        log = self.log_path.open("w")
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), *self.extra_args]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        SERVERS[self.url] = self.proc.pid
        deadline = time.monotonic() + timeout
        while not self._answers(self.ready_path):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gunicorn {self.wsgi_app} did not become ready; see {self.log_path}")
            time.sleep(0.2)
        self._wait_workers_idle(deadline)

    def _answers(self, path: str) -> bool:
        try:
            with urllib.request.urlopen(self.url + path, timeout=2) as resp:
                return resp.status == 200
        except (OSError, urllib.error.URLError):
            return False

    def _wait_workers_idle(self, deadline: float) -> None:
        """Until every worker has booted and their CPU time stops growing (the app is loaded everywhere)."""
        last = -1
        while time.monotonic() < deadline:
            workers = _children(self.proc.pid)
            cpu = sum(_cpu_ticks(pid) for pid in workers)
            if len(workers) >= self.workers and cpu == last:
                return
            last = cpu
            time.sleep(0.5)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)       # graceful: the master stops its workers
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own session: the master and its workers only
            self.proc.wait(5)

    def worker_boots(self) -> int:
        """Workers booted so far, initial ones included (more than `workers` means max_requests recycling)."""
        return self.log_path.read_text(errors="replace").count("Booting worker")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def probe(base_url: str, target: Target) -> bytes:
    """One request before the load, to fail loudly on a wrong setup instead of measuring error pages."""
    headers = dict(target.headers)
    if target.tokens_file:
        headers["Authorization"] = f"Bearer {_first_line(target.tokens_file)}"
    body = _last_line(target.bodies_file) if target.bodies_file else target.body   # the load starts at the top
    req = urllib.request.Request(base_url + target.path, method=target.method, headers=headers,
                                 data=body.encode() if body is not None else None)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    if status != target.expect_status:
        raise RuntimeError(f"{target.name}: expected {target.expect_status}, got {status}: {body[:300]!r}")
    return body


def loadgen_name(spec: LoadSpec) -> str:
    if spec.loadgen != "auto":
        return spec.loadgen
    return "wrk" if shutil.which("wrk") else "python"


SERVERS: dict[str, int] = {}          # base URL -> gunicorn master pid, for the profiler


def run_load(base_url: str, target: Target, spec: LoadSpec) -> Figures:
    from bench import profile

    probe(base_url, target)
    runner = _wrk if loadgen_name(spec) == "wrk" else _pyload
    if spec.warmup:
        runner(base_url, target, spec, spec.warmup)      # warm-up, discarded
    samplers = profile.start(target.name, [SERVERS[base_url]] if base_url in SERVERS else [], spec.duration)
    figures = runner(base_url, target, spec, spec.duration)
    printed = profile.finish(target.name, samplers)
    if printed:
        print(printed, flush=True)
        figures.detail["profile"] = printed
    return figures


# ---- wrk ------------------------------------------------------------------------------------------------------

def _wrk(base_url: str, target: Target, spec: LoadSpec, seconds: int) -> Figures:
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
    try:
        out = subprocess.run(cmd + [base_url + target.path], capture_output=True, text=True, check=True,
                             timeout=seconds + 60).stdout
    finally:
        if script:
            os.unlink(script.name)
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


def _last_line(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return [line.strip() for line in fh if line.strip()][-1]


def _first_line(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.readline().strip()


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


# ---- Python fallback ------------------------------------------------------------------------------------------

def _pyload(base_url: str, target: Target, spec: LoadSpec, seconds: int) -> Figures:
    procs = max(1, spec.threads)
    per_proc = [spec.connections // procs + (i < spec.connections % procs) for i in range(procs)]
    args = ["--url", base_url + target.path, "--method", target.method, "--seconds", str(seconds),
            "--max-requests", str(max(1, spec.max_requests // procs))]
    for key, value in target.headers.items():
        args += ["--header", f"{key}: {value}"]
    if target.body is not None:
        args += ["--body", target.body]
    if target.tokens_file:
        args += ["--tokens-file", target.tokens_file, "--token-step", str(procs)]
    if target.bodies_file:
        args += ["--bodies-file", target.bodies_file, "--token-step", str(procs)]
    children = [subprocess.Popen([sys.executable, "-m", "bench.pyload", "--connections", str(n), *args,
                                  "--token-start", str(i)],
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
