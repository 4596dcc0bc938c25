"""The clock jobs read. In production the system clock; tests may inject "now" — in-process with time-machine,
and in subprocess tests through `scheduler.clock_file`, a file holding an ISO time that the test rewrites."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path


def now(clock_file: str = "") -> datetime:
    if clock_file:
        text = Path(clock_file).read_text(encoding="utf-8").strip() if Path(clock_file).exists() else ""
        if text:
            moment = datetime.fromisoformat(text)
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    return datetime.now(timezone.utc)
