"""`smart-union condolences ...` (rates and types, as an admin would set them in the API) and `smart-union privacy
...` (the keys of the encryption at rest)."""

from __future__ import annotations

import sys
from datetime import datetime

import click

from app.commands import Context, pass_ctx
from app.unit_of_work import unit_of_work
from app.validation import validate_model


@click.group(help="慰问：慰问类型与标准")
def condolences() -> None:
    pass


@condolences.command("set-rate", help="设定某类慰问某类会员的标准（生成新版本，自 --from 起发生的事件适用）")
@click.option("--type", "type_name", required=True, help="慰问类型名称，如 本人住院")
@click.option("--category", type=click.Choice(["在职", "退休"]), required=True, help="会员类别")
@click.option("--amount", type=click.IntRange(1, 100_000), required=True, help="标准金额（元）")
@click.option("--ceiling", type=click.IntRange(1, 100_000), required=True, help="每次申请的上限（元）")
@click.option("--times", type=click.IntRange(1, 100), required=True, help="每人每年次数")
@click.option("--from", "effective_from", type=click.DateTime(["%Y-%m-%d"]), required=True,
              help="自该日期（含）起发生的事件适用，如 2027-01-01")
@pass_ctx
def set_rate(ctx: Context, type_name: str, category: str, amount: int, ceiling: int, times: int,
             effective_from: datetime) -> None:
    from app.services.condolences import rates

    with ctx.app.app_context(), unit_of_work():
        fields = validate_model(rates.RateFields, {
            "type": type_name, "member_category": category, "amount_fen": amount * 100, "ceiling_fen": ceiling * 100,
            "times_per_year": times, "effective_from": effective_from.date().isoformat()})
        rate = rates.set_rate(None, fields)
        version = rate.version
    click.echo(f"{type_name}（{category}）：已保存为第 {version} 版，自 {effective_from:%Y-%m-%d} 起适用")


@condolences.command("add-type", help="新增慰问类型（之后用 set-rate 设定标准）")
@click.argument("name")
@click.option("--label", required=True, help="公示等场合显示的名称，如 住院慰问")
@click.option("--subject", type=click.Choice(["本人", "直系亲属"]), required=True, help="慰问对象")
@pass_ctx
def add_type(ctx: Context, name: str, label: str, subject: str) -> None:
    from app.services.condolences import rates

    with ctx.app.app_context(), unit_of_work():
        rates.add_type(None, validate_model(rates.TypeFields, {"name": name, "label": label, "subject": subject}))
    click.echo(f"已新增慰问类型：{name}（{label}）")


@click.group(help="敏感信息加密（慰问申请等）的密钥")
def privacy() -> None:
    pass


@privacy.command("new-key", help="生成一个新密钥（写入配置 privacy.keys，再把 privacy.current_key 改为它）")
def new_key() -> None:
    from app.services import sealing

    click.echo(sealing.new_key())


@privacy.command("rekey", help="用当前密钥（privacy.current_key）重新加密全部敏感字段和附件；完成后才可删除旧密钥")
@pass_ctx
def rekey(ctx: Context) -> None:
    from app.services.condolences import keys

    with ctx.app.app_context(), unit_of_work():
        done = keys.rekey()
    click.echo(f"已用密钥 {ctx.config.privacy.current_key} 重新加密：字段 {done.fields} 个，附件 {done.files} 个")
    if done.unreadable:
        click.echo(f"有 {done.unreadable} 项用已配置的任何密钥都无法解密（已损坏或密钥缺失），保持原样；"
                   "在查明之前不要删除旧密钥", err=True)
        sys.exit(1)
