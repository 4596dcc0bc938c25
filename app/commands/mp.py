"""`smart-union mp ...`: the official account (公众号) — its followers and its menu."""

from __future__ import annotations

import contextlib
import re
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


@click.group(help="公众号：关注者、自定义菜单，以及模拟微信推送（say）")
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


@mp.command("say", short_help="像微信一样推送一条消息给正在运行的服务，显示回复", help="像微信服务器一样把一条文本消息签名（兼容/安全模式下加密）推送给正在运行的服务，并显示公众号的回复；"
                        "只用于对接模拟微信的环境（如演示）")
@click.argument("text")
@click.option("--as", "who", default="000001", show_default=True,
              help="发送者：工号（用其关联的公众号 openid）或 openid；默认演示中的校工会干部")
@click.option("--url", default=None, help="服务地址，默认 http://127.0.0.1:5000（取配置 demo.host 与 demo.port）")
@pass_ctx
def say(ctx: Context, text: str, who: str, url: str | None) -> None:
    from app.wechat.simulated_push import Account, opened_reply, signed, text_message

    cfg = ctx.config
    if _talks_to_wechat_itself(cfg):
        raise click.ClickException("mp say 只能在对接模拟微信服务器的环境中使用：当前配置的 wechat.api_base_url 是微信本身，"
                                   "不能向生产服务伪造推送")
    mp_cfg = cfg.wechat.official_account
    account = Account(mp_cfg.token, mp_cfg.appid, mp_cfg.encoding_aes_key, encrypt=mp_cfg.message_mode != "plaintext",
                      compatible=mp_cfg.message_mode == "compatible")
    params, body = signed(account, text_message(_openid_of(ctx, who), text))
    target = (url or f"http://{cfg.demo.host}:{cfg.demo.port}").rstrip("/")
    try:
        response = requests.post(f"{target}/wechat/mp", params=params, data=body,
                                 headers={"Content-Type": "text/xml"}, timeout=15)
    except requests.RequestException:
        raise click.ClickException(f"无法连接 {target}：服务是否已启动（如 ./scripts/demo.sh）？") from None
    if response.status_code != 200:
        raise click.ClickException(f"服务拒绝了这条推送（HTTP {response.status_code}）：{response.text[:200]}")
    _, reply = opened_reply(account, response.text)
    click.echo(_as_text(reply.get("Content") or reply.get("MsgType")) if reply else "（公众号没有回复消息）")


def _as_text(content: str) -> str:
    """A reply as WeChat shows it: a link (to a page or the mini-program) as its text and where it leads."""
    def link(found: re.Match) -> str:
        target = re.search(r'(?:data-miniprogram-path|href)="([^"]*)"', found[1])
        return f"{found[2]}（{target[1]}）" if target else found[2]
    return re.sub(r"<a\b([^>]*)>(.*?)</a>", link, content, flags=re.S)


def _talks_to_wechat_itself(cfg) -> bool:
    """The configured WeChat API is WeChat's own — except on the embedded demo's own database: the demo replaces
    the API with its fake server when it starts."""
    from app.config import EMBEDDED_DATABASE_FILE
    from app.wechat.tokens import OFFICIAL_BASE

    return cfg.wechat.api_base_url.rstrip("/") == OFFICIAL_BASE.rstrip("/") and \
        not cfg.database.url.endswith(EMBEDDED_DATABASE_FILE)


def _openid_of(ctx: Context, who: str) -> str:
    """A 工号 with an official-account identity gives its openid; anything else is an openid already."""
    from sqlalchemy import select

    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from models import Staff, WeChatApp, WeChatIdentity

    with ctx.app.app_context(), unit_of_work():
        openid = db.session.scalar(select(WeChatIdentity.openid).join(Staff, Staff.id == WeChatIdentity.staff_id)
                                   .where(Staff.employee_no == who, WeChatIdentity.app == WeChatApp.OFFICIAL_ACCOUNT))
    return openid or who
