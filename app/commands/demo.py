"""`smart-union demo` (the embedded default, everything in one process) and `smart-union serve`."""

from __future__ import annotations

import socket
from pathlib import Path

import click
from werkzeug.serving import WSGIRequestHandler, run_simple

from app.commands import Context, exit_cleanly_on_sigterm, pass_ctx
from app.config import load_config


@click.command(help="一条命令体验：SQLite + 内置 Redis + 模拟微信服务器 + 演示数据")
@click.option("--port", type=int, default=None, help="服务端口（默认取配置 demo.port）")
@click.option("--reset", is_flag=True, help="清空内置 SQLite 演示数据库后重新开始（仅限内置 SQLite）")
@pass_ctx
def demo(ctx: Context, port: int | None, reset: bool) -> None:
    from app import create_app, migrations
    from app.demo_data import demo_cashier_code, print_try_it, seed_demo_data, walkthrough_ids
    from app.fakewechat import FakeWeChatServer

    base = ctx.config
    port = port if port is not None else base.demo.port
    _ensure_port_free(base.demo.host, port, "请用 --port 指定其他端口")          # before anything starts
    if base.demo.fake_wechat_port:
        _ensure_port_free("127.0.0.1", base.demo.fake_wechat_port,
                          "这是模拟微信的端口，请用环境变量 SMART_UNION__DEMO__FAKE_WECHAT_PORT 指定其他端口（0 为任选）")
    if reset:
        _reset_embedded_database(base.database.url)
    exit_cleanly_on_sigterm()
    fake = FakeWeChatServer.from_config(base, host="127.0.0.1", port=base.demo.fake_wechat_port)
    fake.start()
    config = load_config(overrides={"wechat.api_base_url": fake.url})
    migrations.upgrade(config)
    app = create_app(config)
    with app.app_context():
        seed_demo_data()
        cashier_code = demo_cashier_code()
        ids = walkthrough_ids()
    start_jobs_in_process(app)
    print_try_it(f"http://{config.demo.host}:{port}", fake.url.rstrip("/"), ids, cashier_code)
    run_simple(config.demo.host, port, app, threaded=True, use_reloader=False, request_handler=PathOnlyLog)


def _ensure_port_free(host: str, port: int, hint: str) -> None:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # as the server binds: a closed connection
        try:                                                             # lingering in TIME_WAIT is no obstacle
            probe.bind((host, port))
        except OSError:
            raise click.ClickException(f"端口 {port} 已被占用（可能已有一个演示在运行）：{hint}") from None


def _reset_embedded_database(url: str) -> None:
    """Starts the demo over: only ever the embedded SQLite file, never a database server."""
    if not url.startswith("sqlite:///"):
        raise click.ClickException("--reset 只能清空内置的 SQLite 演示数据库，不能用于数据库服务器")
    path = Path(url.split("///", 1)[1])
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    click.echo(f"演示数据库已清空：{path}")


class PathOnlyLog(WSGIRequestHandler):
    """werkzeug's request log without query strings: /wechat/mp's carry a signature, and others personal data."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        self.log("info", '"%s %s" %s %s', self.command, self.path.split("?", 1)[0], code, size)


def start_jobs_in_process(app) -> None:
    """The embedded default runs the scheduler and one sender inside its single process."""
    import threading

    from jobs.scheduler import start_background_scheduler
    from jobs.sender import Sender

    start_background_scheduler(app)
    threading.Thread(target=Sender(app).run_forever, name="sender", daemon=True).start()


@click.command(help="开发用：以单进程运行 API（生产请用 gunicorn -c gunicorn.conf.py）")
@click.option("--host", default="127.0.0.1", show_default=True, help="监听地址")
@click.option("--port", type=int, default=5000, show_default=True, help="监听端口")
@pass_ctx
def serve(ctx: Context, host: str, port: int) -> None:
    exit_cleanly_on_sigterm()
    run_simple(host, port, ctx.app, threaded=True, use_reloader=False, request_handler=PathOnlyLog)
