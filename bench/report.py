"""The printed tables (bilingual headers) and the JSON written under bench/results/."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
import unicodedata
from pathlib import Path

from bench.harness import RESULTS_DIR, ROOT
from bench.load import Figures

HEADERS = ["endpoint 接口", "req/s 吞吐", "p50 ms", "p99 ms", "errors 错误", "req/s ÷ bare", "p99 ÷ bare"]


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int, left: bool) -> str:
    gap = " " * (width - _width(text))
    return text + gap if left else gap + text


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "-"


def table(rows: list[Figures], baseline: Figures) -> str:
    cells = [HEADERS]
    for f in [baseline, *rows]:
        is_base = f is baseline
        cells.append([f.name, f"{f.rps:,.0f}", f"{f.p50_ms:.2f}", f"{f.p99_ms:.2f}", str(f.errors),
                      "(baseline)" if is_base else _ratio(f.rps, baseline.rps),
                      "(baseline)" if is_base else _ratio(f.p99_ms, baseline.p99_ms)])
    return render_rows(cells)


def render_rows(cells: list[list[str]]) -> str:
    """Aligned columns, the first left-aligned, a rule under the header row."""
    widths = [max(_width(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(_pad(c, w, left=(i == 0)) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def comparison(rows: list[Figures], baseline: Figures) -> dict:
    """A table as JSON: the baseline and each row with its ratios to it."""
    return {"baseline": dataclasses.asdict(baseline),
            "results": [dict(dataclasses.asdict(f), rps_ratio=f.rps / baseline.rps if baseline.rps else None,
                             p99_ratio=f.p99_ms / baseline.p99_ms if baseline.p99_ms else None) for f in rows]}


def note_load() -> float:
    """The 1-minute load average now, with a note when other work on the machine will skew the figures."""
    load = os.getloadavg()[0]
    if load > 1:
        print(f"bench: note: load average {load:.1f} before starting; other work on this machine "
              "will skew the absolute figures (compare the ratios)", flush=True)
    return load


def _git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def write_json(prefix: str, doc: dict, latest: str | None = None) -> Path:
    """bench/results/<prefix>-<time>.json (and a copy named `latest`) with the time, revision and machine first;
    prints and returns the path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": _git_revision(),
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
           **doc}
    text = json.dumps(doc, ensure_ascii=False, indent=2, default=str)
    path = RESULTS_DIR / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(text)
    if latest:
        (RESULTS_DIR / latest).write_text(text)
    also = f" (and bench/results/{latest})" if latest else ""
    print(f"\nbench: figures written to {path.relative_to(ROOT)}{also}", flush=True)
    return path


def exit_on_failure(result: dict) -> None:
    """A bench run from the command line exits non-zero when its checks failed (`result["failed"]`)."""
    if result.get("failed"):
        raise SystemExit(f"bench: {result['failed']}")
