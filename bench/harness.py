"""What every bench shares: gunicorn with the project's gunicorn.conf.py, the processes it watches, the common
command-line options.

    p = harness.parser("bench/run.sh x", "...")          # --duration --warmup --connections --threads --workers ...
    args = p.parse_args(argv)
    with harness.gunicorn(args, "app.wsgi:app", "app", env=seed.env_for(overrides)) as server:
        figures = load.run_load(server.url, Target(...), LoadSpec.from_args(args))
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
GUNICORN_CONF = ROOT / "gunicorn.conf.py"
DEFAULT_WORKERS = multiprocessing.cpu_count() * 2 + 1      # gunicorn.conf.py's own default
SERVERS: dict[str, int] = {}          # base URL -> gunicorn master pid, for the profiler


def parser(prog: str, description: str, *, connections: int = 32, http: bool = True) -> argparse.ArgumentParser:
    """The options of every bench: the load generator and, for the HTTP benches (`http`), the load and the
    gunicorn workers. Each bench adds its own."""
    signal.signal(signal.SIGTERM, _exit_through_cleanup)
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto",
                   help="auto: wrk when on PATH, else the Python load generator")
    p.add_argument("--profile", nargs=0, action=_Profile,
                   help="sample the servers (or senders) under the measured load with py-spy (bench/profile.py)")
    if http:
        p.add_argument("--duration", type=int, default=10, help="measured seconds per row (default 10)")
        p.add_argument("--warmup", type=int, default=2, help="warm-up seconds per row (default 2)")
        p.add_argument("--connections", type=int, default=connections,
                       help=f"concurrent connections (default {connections})")
        p.add_argument("--threads", type=int, default=2, help="wrk threads / Python load processes (default 2)")
        p.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                       help=f"gunicorn workers for every app (default {DEFAULT_WORKERS}, as gunicorn.conf.py)")
        p.add_argument("--no-recycle", action="store_true",
                       help="run gunicorn with --max-requests 0 (no worker recycling during the load)")
    return p


def _exit_through_cleanup(_signum, _frame) -> None:
    """A bench stopped by `timeout` or `kill` leaves through its `with` and `finally` blocks, so its gunicorns,
    senders and fake WeChat server stop with it instead of loading the machine afterwards."""
    raise SystemExit(143)


class _Profile(argparse.Action):
    def __call__(self, parser, namespace, values, option_string=None):
        os.environ["SMART_UNION_BENCH_PROFILE"] = "1"        # read by bench/profile.py


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The current environment without any SMART_UNION* variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_UNION")}
    env.update(extra or {})
    return env


def gunicorn(args: argparse.Namespace, wsgi_app: str, log_name: str, env: dict[str, str] | None = None) -> Gunicorn:
    """A Gunicorn with the workers and recycling of the command line."""
    return Gunicorn(wsgi_app, args.workers, env=env, log_name=log_name,
                    extra_args=["--max-requests", "0"] if args.no_recycle else [])


class Gunicorn:
    """gunicorn -c gunicorn.conf.py serving `wsgi_app` on a free loopback port, access log off."""

    def __init__(self, wsgi_app: str, workers: int, env: dict[str, str] | None = None,
                 ready_path: str = "/healthz", log_name: str | None = None, extra_args: list[str] | None = None):
        self.wsgi_app, self.workers, self.ready_path = wsgi_app, workers, ready_path
        self.extra_args = list(extra_args or [])   # gunicorn command-line settings, over gunicorn.conf.py's
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = clean_env(env)
        self.env.update(SMART_UNION_WSGI_APP=wsgi_app, SMART_UNION_BIND=f"127.0.0.1:{self.port}",
                        SMART_UNION_WORKERS=str(workers), SMART_UNION_ACCESS_LOG="/dev/null")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = RESULTS_DIR / f"gunicorn-{log_name or wsgi_app.split(':')[0]}.log"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Gunicorn:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 60) -> None:
        cmd = [sys.executable, "-m", "gunicorn", "-c", str(GUNICORN_CONF), *self.extra_args]
        self.proc = spawn(cmd, self.log_path, self.env)
        SERVERS[self.url] = self.proc.pid
        wait_ready(self.proc, lambda: answers(self.url + self.ready_path), timeout,
                   f"gunicorn {self.wsgi_app}; see {self.log_path}")
        self._wait_workers_idle(time.monotonic() + timeout)

    def _wait_workers_idle(self, deadline: float) -> None:
        """Until every worker has booted and their CPU time stops growing (the app is loaded everywhere)."""
        last = -1
        while time.monotonic() < deadline:
            workers = _children(self.proc.pid)
            cpu = sum(cpu_ticks(pid) for pid in workers)
            if len(workers) >= self.workers and cpu == last:
                return
            last = cpu
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc is not None:
            stop([self.proc])          # SIGTERM, graceful: the master stops its workers

    def worker_boots(self) -> int:
        """Workers booted so far, initial ones included (more than `workers` means max_requests recycling)."""
        return self.log_path.read_text(errors="replace").count("Booting worker")


def spawn(cmd: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """`cmd` from the repository root in a session of its own (so it can be killed with its children), its output
    to `log_path`."""
    with log_path.open("w") as log:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def wait_ready(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float, what: str) -> None:
    """Until `ready()`; stops the process and raises when it exits or `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop([proc])
            raise RuntimeError(f"{what} did not become ready")
        time.sleep(0.2)


def stop(procs: list[subprocess.Popen], sig: int = signal.SIGTERM, timeout: float = 30) -> None:
    """Sends `sig` to each process still running, then waits for them (`timeout` in all); kills the session of any
    still running after that (our own session: that process and its children only)."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


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


def cpu_ticks(pid: int) -> int:
    """User + system CPU time of a process, in clock ticks (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return 0


def cpu_seconds(pid: int) -> float:
    return cpu_ticks(pid) / os.sysconf("SC_CLK_TCK")


def proc_status(pid: int, key: str) -> int | None:
    """A field of /proc/<pid>/status in kB (VmHWM, VmRSS)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None
