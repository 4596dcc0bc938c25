"""The `smart-union` command. Commands are thin: they parse options and call app.services in one unit of work."""

from __future__ import annotations

import sys

import click

from app.commands import Context, demo, pass_ctx, staff
from app.commands import chinese, condolences, mp
from app.config import ConfigError
from app.errors import Refusal


@click.group(help="智慧工会后端 Smart Union backend")
def cli() -> None:
    pass


def main() -> None:
    chinese.install()
    try:
        cli(standalone_mode=True)
    except ConfigError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    except Refusal as exc:
        click.echo(f"错误：{exc.message}", err=True)
        sys.exit(1)


@cli.command("check-config", help="校验配置并退出")
@pass_ctx
def check_config(ctx: Context) -> None:
    click.echo(f"配置有效：数据库 {ctx.config.database.url.split('@')[-1]}")


# --- database ---------------------------------------------------------------------------------------------

@cli.group(help="数据库结构（Alembic 迁移）")
def db() -> None:
    pass


@db.command("upgrade", help="把数据库升级到最新结构")
@click.option("--revision", default="head", show_default=True, help="升级到的迁移版本（默认最新）")
@pass_ctx
def db_upgrade(ctx: Context, revision: str) -> None:
    from app import migrations

    migrations.upgrade(ctx.config, revision)
    click.echo(f"数据库已升级到 {migrations.current_revision(ctx.config)}")


@db.command("current", help="显示数据库当前的迁移版本")
@pass_ctx
def db_current(ctx: Context) -> None:
    from app import migrations

    click.echo(migrations.current_revision(ctx.config) or "（空数据库）")


# --- the fake WeChat server -----------------------------------------------------------------------------------

@cli.command("fake-wechat", help="启动本项目自带的模拟微信 API 服务器（测试、演示、压测用）")
@click.option("--host", default="127.0.0.1", show_default=True, help="监听地址")
@click.option("--port", default=0, type=int, help="监听端口（0 表示任选一个空闲端口）")
@pass_ctx
def fake_wechat(ctx: Context, host: str, port: int) -> None:
    from app.fakewechat import serve

    serve(ctx.config, host, port)


cli.add_command(staff.staff)
cli.add_command(demo.demo)
cli.add_command(demo.serve)
cli.add_command(mp.mp)
cli.add_command(condolences.condolences)
cli.add_command(condolences.privacy)


@cli.command("sender", help="发送进程：把待发通知发到微信（可同时运行多个）")
@pass_ctx
def sender(ctx: Context) -> None:
    from jobs.sender import run_sender_process

    run_sender_process(ctx.app)


@cli.command("scheduler", help="定时任务进程：生日、节日等到期通知（同一时间只有一个在工作）")
@pass_ctx
def scheduler(ctx: Context) -> None:
    from jobs.scheduler import run_scheduler_process

    run_scheduler_process(ctx.app)
