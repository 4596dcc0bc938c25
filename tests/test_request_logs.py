"""Request logs never hold a /wechat/mp query string (its signature would let anyone replay it): neither gunicorn's
access log under the project's gunicorn.conf.py nor the development server's log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


from tests.conftest import REPO_ROOT
from tests.helpers import free_port, wait_ready
from tests.wechat_client import WeChatPusher

BIN = Path(sys.executable).parent
SECRETS = ("signature=", "timestamp=", "nonce=", "openid=", "msg_signature=")


def _push_and_stop(command: list[str], env: dict) -> str:
    """Starts the server, sends a signed push and a forged one, stops it; returns what it printed."""
    port = free_port()
    proc = subprocess.Popen(command + (["--port", str(port)] if command[0].endswith("smart-union") else []),
                            env={**env, "SMART_UNION_BIND": f"127.0.0.1:{port}"}, cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/healthz", proc)
        wechat = WeChatPusher(url)
        assert wechat.push(wechat.text("o-logged01", "帮助")).status == 200
        wechat.push(wechat.text("o-logged01", "帮助"), params={"signature": "0" * 40})    # a refused one too
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=20)
    return output


def test_gunicorn_access_log_has_no_query_strings(app, subprocess_env, tmp_path):   # app: the schema exists
    access_log = tmp_path / "access.log"
    env = {**subprocess_env, "SMART_UNION_WORKERS": "1", "SMART_UNION_ACCESS_LOG": str(access_log)}
    _push_and_stop([str(BIN / "gunicorn"), "-c", str(REPO_ROOT / "gunicorn.conf.py")], env)
    lines = access_log.read_text().splitlines()
    assert any('"POST /wechat/mp HTTP/1.1" 200' in line for line in lines), lines
    assert any('"POST /wechat/mp HTTP/1.1" 403' in line for line in lines), lines
    assert not [line for line in lines if any(s in line for s in SECRETS)]


def test_development_server_log_has_no_query_strings(app, subprocess_env):
    output = _push_and_stop([str(BIN / "smart-union"), "serve"], subprocess_env)
    assert '"POST /wechat/mp" 200' in output, output
    assert not [line for line in output.splitlines() if any(s in line for s in SECRETS)]
