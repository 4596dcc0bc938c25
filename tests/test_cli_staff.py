"""`smart-union staff ...` from a real shell: roles only the command line may grant, unbinding, single edits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from app.extensions import db
from models import RoleAssignment, Staff

SMART_UNION = str(Path(sys.executable).parent / "smart-union")


@pytest.fixture
def cli(subprocess_env, app):
    def _run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([SMART_UNION, *args], env=subprocess_env, capture_output=True, text=True, timeout=60)
    return _run


def _roles(app, employee_no: str) -> set[tuple[str, str]]:
    with app.app_context():
        rows = db.session.execute(select(RoleAssignment.role, RoleAssignment.scope_key).join(Staff)
                                  .where(Staff.employee_no == employee_no)).all()
    return {(role.value, scope) for role, scope in rows}


def test_grant_and_revoke_union_officer(cli, app, make_staff):
    make_staff("000321", name="周老师")
    granted = cli("staff", "grant", "000321", "union_officer")
    assert granted.returncode == 0, granted.stderr
    assert "已授予" in granted.stdout
    assert _roles(app, "000321") == {("union_officer", "all")}
    assert "已撤销" in cli("staff", "revoke", "000321", "union_officer").stdout
    assert _roles(app, "000321") == set()


def test_grant_sub_union_officer_needs_scope(cli, app, make_staff):
    make_staff("000322", name="吴老师", sub_union="后勤分工会")
    refused = cli("staff", "grant", "000322", "sub_union_officer")
    assert refused.returncode == 1
    assert "必须指定所在的分工会" in refused.stderr
    assert "--scope" in refused.stderr                    # the officer learns which option to add
    ok = cli("staff", "grant", "000322", "sub_union_officer", "--scope", "后勤分工会")
    assert ok.returncode == 0, ok.stderr
    assert [scope for role, scope in _roles(app, "000322")][0].startswith("sub_union:")


def test_unknown_staff_or_role_is_a_clear_error(cli, make_staff):
    missing = cli("staff", "grant", "999999", "admin")
    assert missing.returncode == 1
    assert "找不到该工号的教职工" in missing.stderr
    make_staff("000323")
    bad_role = cli("staff", "grant", "000323", "king")
    assert bad_role.returncode != 0
    assert "未知角色" in bad_role.stderr


def test_add_then_edit_one_staff_member_keeps_leading_zeros(cli, app):
    assert cli("staff", "add", "000007", "--name", "钱老师", "--sub-union", "机关分工会",
               "--phone", "13900000007").returncode == 0
    assert cli("staff", "add", "000007", "--status", "退休").returncode == 0
    with app.app_context():
        staff = db.session.scalar(select(Staff).where(Staff.employee_no == "000007"))
        assert (staff.name, staff.status.value, staff.phone) == ("钱老师", "retired", "13900000007")


def test_unbind_from_cli(cli, app, make_staff, token_for, client):
    from tests.helpers import bearer

    staff_id = make_staff("000324")
    token = token_for(staff_id)
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 200
    assert "已解绑" in cli("staff", "unbind", "000324").stdout
    assert client.get("/api/v1/me", headers=bearer(token)).status_code == 401


def test_every_command_and_option_explains_itself_in_chinese():
    """`--help` is the manual of the IT staff who run the service: no command or option is left unexplained."""
    import click

    from app.cli import cli as smart_union

    def unexplained(command: click.Command, path: str):
        if not command.help:
            yield path
        yield from (f"{path} {opt.opts[0]}" for opt in command.params
                    if isinstance(opt, click.Option) and not opt.hidden and not opt.help)
        for name, sub in getattr(command, "commands", {}).items():
            yield from unexplained(sub, f"{path} {name}")

    assert list(unexplained(smart_union, "smart-union")) == []


@pytest.mark.backend_independent
def test_clicks_own_messages_are_in_chinese_too():
    """A mistyped command line is answered in the same language as everything else."""
    def run(*args: str) -> str:
        done = subprocess.run([SMART_UNION, *args], capture_output=True, text=True, timeout=60)
        return done.stdout + done.stderr
    assert "显示本帮助并退出" in run("--help") and "用法" in run("--help")
    missing = run("staff", "grant")
    assert "缺少参数" in missing and "查看帮助" in missing and "Missing" not in missing
    assert "没有这个命令" in run("nosuch")
    out_of_range = run("condolences", "set-rate", "--type", "本人住院", "--category", "在职", "--amount", "0",
                       "--ceiling", "1", "--times", "1", "--from", "2027-01-01")
    assert "不在范围" in out_of_range and "的值无效" in out_of_range
    assert "不是可选的值" in run("condolences", "add-type", "x", "--label", "y", "--subject", "同事")


def _embedded_env(home: Path) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("SMART_UNION")}, "SMART_UNION_HOME": str(home)}


@pytest.mark.backend_independent
def test_a_command_on_a_database_without_tables_says_so_in_one_line(tmp_path):
    """A home whose embedded database has no tables yet: one line, nothing created."""
    ran = subprocess.run([SMART_UNION, "staff", "revoke", "000001", "admin"], cwd=tmp_path,
                         env=_embedded_env(tmp_path), capture_output=True, text=True, timeout=60)
    assert ran.returncode == 1
    [line] = ran.stderr.strip().splitlines()
    assert "还没有表结构" in line and "smart-union db upgrade" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.backend_independent
def test_the_embedded_default_lives_in_its_home_wherever_a_command_runs(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([SMART_UNION, *args], cwd=elsewhere, env=_embedded_env(home), capture_output=True,
                              text=True, timeout=120)
    assert run("db", "upgrade").returncode == 0
    added = run("staff", "add", "000777", "--name", "王老师")
    assert added.returncode == 0 and "已保存" in added.stdout, added.stderr
    assert (home / "instance" / "smart-union.db").exists() and list(elsewhere.iterdir()) == []
