"""`smart-union staff ...`: the roster from the command line (HR imports, roles only the CLI may grant)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from app.commands import Context, pass_ctx
from app.errors import Refusal
from app.unit_of_work import unit_of_work
from app.services import roster
from models import Role

CLI_ACTOR = "cli"


@click.group(help="教职工名册")
def staff() -> None:
    pass


@staff.command("import", help="从人事导出的 CSV 或 XLSX 导入/更新名册（按工号）")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="只检查并报告，不写入")
@click.option("--mark-missing-left", is_flag=True, help="把文件中没有的在册人员标记为离职")
@pass_ctx
def import_file(ctx: Context, file: Path, dry_run: bool, mark_missing_left: bool) -> None:
    from app.services import staff_import

    with ctx.app.app_context(), unit_of_work() as session:
        report = staff_import.import_staff_file(file, dry_run=dry_run, mark_missing_left=mark_missing_left,
                                                actor_label=CLI_ACTOR)
        if not report.ok or dry_run:
            session.rollback()
    for line in report.lines():
        click.echo(line)
    if not report.ok:
        sys.exit(1)


@staff.command("add", help="新增或修改一名教职工（未给出的项保持原值）")
@click.argument("employee_no")
@click.option("--name", help="姓名（新增时必填）")
@click.option("--gender", type=click.Choice(["男", "女"]), help="性别")
@click.option("--birthday", type=click.DateTime(["%Y-%m-%d"]), help="出生日期（公历），如 1980-05-17")
@click.option("--department", help="所在部门")
@click.option("--sub-union", "sub_union", help="分工会名称（不存在则创建）")
@click.option("--phone", help="手机号（11 位）")
@click.option("--status", type=click.Choice(["在职", "退休", "离职"]), help="在职状态")
@pass_ctx
def add(ctx: Context, employee_no: str, **options) -> None:
    with ctx.app.app_context(), unit_of_work():
        given = _parse_options(options)
        if not roster.find_staff(employee_no) and "name" not in given:
            raise click.UsageError("新增教职工时必须提供 --name")
        _, changed = roster.update_staff(employee_no, given, actor_label=CLI_ACTOR)
    click.echo(f"{employee_no}：{'已保存' if changed else '无变化'}")


def _parse_options(options: dict) -> dict:
    labels = {**{v: k for k, v in roster.GENDER_LABELS.items()}, **{v: k for k, v in roster.STATUS_LABELS.items()}}
    given = {k: v for k, v in options.items() if v is not None}
    for key in ("gender", "status"):
        if key in given:
            given[key] = labels[given[key]]
    if "birthday" in given:
        given["birthday"] = given["birthday"].date()
    return given


def _role_and_scope(role: str, scope: str | None) -> tuple[Role, int | None]:
    try:
        parsed = Role(role)
    except ValueError:
        raise click.BadParameter(f"未知角色 {role}，可选：{', '.join(r.value for r in Role)}") from None
    if scope is None:
        if parsed is Role.SUB_UNION_OFFICER:
            raise Refusal("invalid_scope", "分工会干部必须指定所在的分工会：请加 --scope 分工会名称或编号")
        return parsed, None
    sub_union = next((s for s in roster.list_sub_unions() if s.name == scope or str(s.id) == scope), None)
    if sub_union is None:
        raise click.BadParameter(f"找不到分工会 {scope}")
    return parsed, sub_union.id


@staff.command("grant", help="授予角色：union_officer / sub_union_officer（需 --scope 分工会）/ admin")
@click.argument("employee_no")
@click.argument("role")
@click.option("--scope", help="分工会名称或编号（sub_union_officer 必填）")
@pass_ctx
def grant(ctx: Context, employee_no: str, role: str, scope: str | None) -> None:
    _change_role(ctx, employee_no, role, scope, roster.grant_role, ("已授予", "已拥有"))


@staff.command("revoke", help="撤销角色")
@click.argument("employee_no")
@click.argument("role")
@click.option("--scope", help="分工会名称或编号（撤销 sub_union_officer 时必填）")
@pass_ctx
def revoke(ctx: Context, employee_no: str, role: str, scope: str | None) -> None:
    _change_role(ctx, employee_no, role, scope, roster.revoke_role, ("已撤销", "本无此角色"))


def _change_role(ctx: Context, employee_no: str, role: str, scope: str | None, change, words: tuple[str, str]):
    with ctx.app.app_context(), unit_of_work():
        parsed, sub_union_id = _role_and_scope(role, scope)
        changed = change(roster.get_staff(employee_no), parsed, sub_union_id, actor_label=CLI_ACTOR)
    click.echo(f"{employee_no}：{words[0] if changed else words[1]} {roster.ROLE_LABELS[parsed]}")


@staff.command("unbind", help="解除该工号的小程序微信绑定")
@click.argument("employee_no")
@pass_ctx
def unbind(ctx: Context, employee_no: str) -> None:
    with ctx.app.app_context(), unit_of_work():
        changed = roster.unbind(roster.get_staff(employee_no), actor_label=CLI_ACTOR)
    click.echo(f"{employee_no}：{'已解绑' if changed else '未绑定微信'}")


@staff.command("bind-code", help="为没有手机号的教职工生成一次性绑定码")
@click.argument("employee_no")
@pass_ctx
def bind_code(ctx: Context, employee_no: str) -> None:
    with ctx.app.app_context(), unit_of_work():
        code = roster.issue_bind_code(roster.get_staff(employee_no), actor_label=CLI_ACTOR)
    click.echo(f"{employee_no} 的绑定码：{code}（仅显示一次）")
