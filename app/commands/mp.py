"""`smart-union mp ...`: the official account (公众号) — its followers and its menu."""

from __future__ import annotations

import contextlib
from typing import Iterator

import click
import requests
from wechatpy.exceptions import WeChatClientException

from app.commands import Context, pass_ctx
from app.unit_of_work import unit_of_work


@contextlib.contextmanager
def _wechat_errors() -> Iterator[None]:
    """A WeChat refusal or an unreachable WeChat ends the command with one Chinese line (exit status 1)."""
    try:
        yield
    except WeChatClientException as exc:
        raise click.ClickException(f"微信接口返回错误 {exc.errcode}：{exc.errmsg}") from None
    except requests.RequestException as exc:
        raise click.ClickException(f"无法连接微信接口：{exc}") from None


@click.group(help="公众号：关注者与自定义菜单")
def mp() -> None:
    pass


@mp.command("sync-followers", help="拉取公众号关注者列表，按 unionid 绑定教职工，并更新关注状态")
@pass_ctx
def sync_followers(ctx: Context) -> None:
    from app.services import followers

    report = followers.SyncReport()
    seen: set[str] = set()
    with ctx.app.app_context(), _wechat_errors():
        for openids in followers.follower_pages():   # one unit of work per page of up to 10,000
            with unit_of_work():
                followers.sync_follower_page(openids, report)
            seen.update(openids)
            click.echo(f"已处理 {report.followers} 人……")
        with unit_of_work():
            followers.clear_unfollowed(seen, report)
    for line in report.lines():
        click.echo(line)


@mp.group(help="公众号自定义菜单")
def menu() -> None:
    pass


@menu.command("push", help="把配置 wechat.official_account.menu 中的菜单发布到公众号")
@pass_ctx
def menu_push(ctx: Context) -> None:
    from app.services import mp_menu

    with ctx.app.app_context(), _wechat_errors():
        payload = mp_menu.push_menu()
    names = "、".join(b["name"] for b in payload["button"])
    click.echo(f"菜单已发布：{names}")
