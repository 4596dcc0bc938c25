"""py-spy profiles of the processes under load: `--profile` on any bench (or SMART_UNION_BENCH_PROFILE=1).

py-spy samples the target (a gunicorn master with its workers, or a sender) for the measured seconds; the raw
stacks go to bench/results/profile-<name>.txt and the top frames are printed: by self time (where the CPU goes)
and by inclusive time (which of our functions the time is spent under).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.harness import RESULTS_DIR

ENV = "SMART_UNION_BENCH_PROFILE"
TOP = 14
OURS = ("app/", "models/", "jobs/", "wechat_handlers/")


def py_spy() -> str | None:
    candidate = Path(sys.executable).with_name("py-spy")
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def start(name: str, pids: list[int], seconds: int) -> list[subprocess.Popen]:
    """One py-spy per pid (with its subprocesses), sampling for `seconds`; collect with `finish`."""
    exe = py_spy()
    if not (os.environ.get(ENV) == "1" and exe):
        return []
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    procs = []
    for n, pid in enumerate(pids):
        out = RESULTS_DIR / f"profile-{_slug(name)}-{n}.txt"
        procs.append(subprocess.Popen(
            [exe, "record", "--pid", str(pid), "--subprocesses", "--duration", str(seconds), "--rate", "97",
             "--format", "raw", "--nonblocking", "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs[-1].output = out      # type: ignore[attr-defined]
    return procs


def finish(name: str, procs: list[subprocess.Popen]) -> str:
    """Waits for the samplers, merges their stacks, returns the printed summary (empty when not profiling)."""
    if not procs:
        return ""
    stacks: Counter[str] = Counter()
    for proc in procs:
        proc.wait(timeout=120)
        stacks.update(read_stacks(proc.output))          # type: ignore[attr-defined]
    merged = RESULTS_DIR / f"profile-{_slug(name)}.txt"
    merged.write_text("".join(f"{stack} {n}\n" for stack, n in stacks.most_common()))
    return summary(name, stacks) + f"\n  (stacks: {merged.relative_to(RESULTS_DIR.parent.parent)})"


def read_stacks(path: Path) -> Counter[str]:
    found: Counter[str] = Counter()
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count = line.rpartition(" ")
            if stack and count.isdigit():
                found[stack] += int(count)
    return found


def summary(name: str, stacks: Counter[str]) -> str:
    total = sum(stacks.values()) or 1
    own: Counter[str] = Counter()
    under: Counter[str] = Counter()
    for stack, n in stacks.items():
        frames = [_frame(f) for f in stack.split(";") if not f.startswith("process ")]
        if not frames:
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            if frame.split(" ", 1)[-1].startswith(OURS):
                under[frame] += n
    lines = [f"profile {name}: {total} samples"]
    lines += ["  self time:"] + [f"    {n / total:6.1%}  {f}" for f, n in own.most_common(TOP)]
    lines += ["  inclusive, our code:"] + [f"    {n / total:6.1%}  {f}" for f, n in under.most_common(TOP)]
    return "\n".join(lines)


def _frame(raw: str) -> str:
    """'authenticate (app/services/auth.py:57)' → 'authenticate app/services/auth.py', paths from the repo root
    or site-packages, without line numbers (so one function is one row)."""
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", raw.strip())
    if not match:
        return raw.strip()
    func, path = match.groups()
    for marker in ("site-packages/", "/work/main/", str(RESULTS_DIR.parent.parent) + "/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{func} {path}"


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:60] or "profile"
