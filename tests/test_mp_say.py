"""`smart-union mp say`: anyone can try the official account without writing a request signer. It signs (and in
safe mode encrypts) a push exactly as WeChat does, sends it to a running service and prints the reply; it refuses
to forge pushes where the configured WeChat API is WeChat's own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveServer

SMART_UNION = str(Path(sys.executable).parent / "smart-union")
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def say(env: dict[str, str], url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([SMART_UNION, "mp", "say", "--url", url, *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_say_in_plaintext_mode_gets_the_accounts_reply(live_server, subprocess_env):
    ran = say(subprocess_env, live_server.url, "--as", "o-newcomer", "帮助")
    assert ran.returncode == 0, ran.stderr
    assert "公告" in ran.stdout and "活动" in ran.stdout          # the help lists what the account does


@pytest.mark.parametrize("mode", ["safe", "compatible"])
def test_say_in_safe_and_compatible_mode_encrypts_and_reads_the_encrypted_reply(make_app, subprocess_env, mode):
    settings = {"wechat.official_account.message_mode": mode, "wechat.official_account.encoding_aes_key": AES_KEY}
    server = LiveServer(make_app(**settings)).start()
    try:
        env = {**subprocess_env, "SMART_UNION__WECHAT__OFFICIAL_ACCOUNT__MESSAGE_MODE": mode,
               "SMART_UNION__WECHAT__OFFICIAL_ACCOUNT__ENCODING_AES_KEY": AES_KEY}
        ran = say(env, server.url, "--as", "o-newcomer", "帮助")
        assert ran.returncode == 0, ran.stderr
        assert "公告" in ran.stdout
        plaintext = say(subprocess_env, server.url, "--as", "o-newcomer", "帮助")     # a plaintext push: refused
        assert plaintext.returncode == 1 and "拒绝" in plaintext.stderr
    finally:
        server.stop()


def test_say_refuses_where_the_wechat_api_is_wechats_own(subprocess_env, live_server):
    env = {k: v for k, v in subprocess_env.items() if k != "SMART_UNION__WECHAT__API_BASE_URL"}
    ran = say(env, live_server.url, "帮助")
    assert ran.returncode == 1 and "模拟微信" in ran.stderr and "微信本身" in ran.stderr


def test_say_to_a_service_that_is_not_running_says_so(subprocess_env):
    ran = say(subprocess_env, "http://127.0.0.1:9", "帮助")
    assert ran.returncode == 1 and "无法连接" in ran.stderr
