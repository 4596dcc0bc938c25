"""The docs page as people use it: opened in a real browser (Debian's headless chromium, installed by
scripts/test.sh) with every address but loopback unreachable, it renders the API grouped by area, and a deep link
opens an operation with its parameters and a request example. A screenshot is left in the test's tmp dir."""

from __future__ import annotations

import shutil
import subprocess
from urllib.parse import quote

import pytest

pytestmark = pytest.mark.backend_independent
OFFLINE = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"


def chromium(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium")
    assert binary, "chromium is missing: scripts/test.sh installs it (scripts/browser.sh)"
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", OFFLINE,
                           "--virtual-time-budget=15000", *args], capture_output=True, text=True, timeout=120)


def test_the_docs_page_renders_offline_with_parameters_and_an_example(live_server, tmp_path):
    docs = f"{live_server.url}/api/v1/docs"
    shot = tmp_path / "docs.png"
    assert chromium("--window-size=1280,1600", f"--screenshot={shot}", docs).returncode == 0
    assert shot.stat().st_size > 50_000                  # a rendered page, not a blank or a spinner

    opened = chromium("--dump-dom", f"{docs}#/{quote('慰问')}/condolences_file_own").stdout
    assert "登录与绑定" in opened and "活动报名" in opened and "生日蛋糕券" in opened      # grouped by area
    start = opened.index('id="operations-慰问-condolences_file_own"')
    assert "is-open" in opened[start - 200:start]                                   # the deep link opened it
    block = opened[start:opened.index('id="operations-', start + 10)]
    assert "type_id" in block and "event_date" in block                             # its body's fields
    assert "示例 1" in block and "市第一人民医院" in block                                 # and an example of it
    assert "422" in block and "401" in block                                          # and the errors it may answer

    verify = chromium("--dump-dom", f"{docs}#/{quote('慰问')}/condolences_verify").stdout
    block = verify[verify.index('id="operations-慰问-condolences_verify"'):]
    assert "request_id" in block[:block.index('id="operations-', 10)]                # a path parameter
