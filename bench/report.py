"""The printed table (bilingual headers) and the JSON written under bench/results/."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import subprocess
import time
import unicodedata
from pathlib import Path

from bench.harness import RESULTS_DIR, ROOT, Figures

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


def _git_revision() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except OSError:
        return ""


def write_json(rows: list[Figures], baseline: Figures, settings: dict) -> Path:
    """bench/results/bench-<time>.json and a copy as latest.json; returns the first path."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    doc = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": _git_revision(),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "settings": settings,
        "baseline": dataclasses.asdict(baseline),
        "results": [dict(dataclasses.asdict(f), rps_ratio=f.rps / baseline.rps if baseline.rps else None,
                         p99_ratio=f.p99_ms / baseline.p99_ms if baseline.p99_ms else None) for f in rows],
    }
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    path = RESULTS_DIR / f"bench-{stamp}.json"
    path.write_text(text)
    (RESULTS_DIR / "latest.json").write_text(text)
    return path


def render_rows(cells: list[list[str]]) -> str:
    """Aligned columns, the first left-aligned, a rule under the header row."""
    widths = [max(_width(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("  ".join(_pad(c, w, left=(i == 0)) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
