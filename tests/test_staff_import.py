"""The HR roster import (CSV / XLSX) against the real database, and the `smart-union staff import` command."""

from __future__ import annotations

import csv
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.unit_of_work import unit_of_work
from app.services import roster
from app.services.staff_import import ImportReport, RowError, import_staff_file
from models import AuditLog, BirthdayCalendar, Gender, Staff, StaffStatus, SubUnion

HEADER = ["工号", "姓名", "性别", "出生日期", "部门", "分工会", "手机号", "状态"]


def write_xlsx(path: Path, rows: list[list], header: list[str] = HEADER) -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def write_csv(path: Path, rows: list[list], header: list[str] = HEADER, encoding: str = "utf-8") -> Path:
    with path.open("w", encoding=encoding, newline="") as out:
        csv.writer(out).writerows([header, *rows])
    return path


def run_import(path: Path, **options) -> ImportReport:
    """As the CLI does, minus its rollback: whatever the service leaves in the session is committed."""
    with unit_of_work():
        return import_staff_file(path, **options)


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def staff_by_no() -> dict[str, Staff]:
    return {s.employee_no: s for s in db.session.scalars(select(Staff))}


def add_staff(employee_no: str, name: str, **fields) -> None:
    with unit_of_work():
        roster.upsert_staff(employee_no, roster.StaffFields(name=name, **fields), actor_label="test")


def person(no: str, name: str = "张三", gender="男", birthday="1980-01-02", department="计算机学院",
           sub_union="信息分工会", phone="13800138000", status="在职") -> list:
    return [no, name, gender, birthday, department, sub_union, phone, status]


def test_importing_1000_row_xlsx_creates_everyone_with_leading_zeros_and_birthdays(app_ctx, tmp_path,
                                                                                    count_queries):
    with unit_of_work():
        for known in ("分工会0", "分工会1", "分工会2"):
            roster.ensure_sub_union(known)
    birthdays = {f"{i:06d}": date(1960 + i % 40, 1 + i % 12, 1 + i % 28) for i in range(1, 1001)}
    rows = [[no, f"员工{no}", "男" if i % 2 else "女", birthday, f"部门{i % 7}", f"分工会{i % 5}",
             f"139{i:08d}", "在职"] for i, (no, birthday) in enumerate(birthdays.items(), start=1)]
    path = write_xlsx(tmp_path / "roster.xlsx", rows)

    started = time.perf_counter()
    with count_queries() as queries:
        report = run_import(path)
    elapsed = time.perf_counter() - started
    print(f"\n1,000-row XLSX import: {elapsed:.2f}s, {queries.count} SQL statements")

    assert report.ok, report.lines()
    assert (len(report.created), report.updated, report.unchanged) == (1000, [], 0)
    assert report.new_sub_unions == ["分工会3", "分工会4"]
    selects = [s for s in queries.statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) <= 7, "staff, sub-unions and departments are looked up in bulk, not once per row"
    if db.engine.dialect.name != "sqlite":   # SQLAlchemy sends SQLite (in-process) one INSERT ... RETURNING a row
        assert queries.count < 20, "the INSERTs are batched by one flush, not flushed row by row"
    saved = staff_by_no()
    assert len(saved) == 1000
    assert "000001" in saved and "000999" in saved
    assert {no: s.birthday for no, s in saved.items()} == birthdays
    assert saved["000007"].name == "员工000007"
    assert saved["000007"].gender is Gender.MALE
    assert saved["000007"].phone == "13900000007"
    assert saved["000007"].sub_union.name == "分工会2"
    assert count(SubUnion) == 5
    assert report.lines()[0] == "共 1000 行：新增 1000 人，更新 0 人，无变化 0 人"
    assert "新建分工会：分工会3、分工会4" in report.lines()


def test_birthday_cells_and_texts_in_every_accepted_format_parse(app_ctx, tmp_path):
    cells = [date(1980, 1, 2), datetime(1980, 1, 2), "1980-01-02", "1980/1/2", "1980.1.2", "19800102",
             19800102, 19800102.0, "1980年1月2日", " 1980-1-2 "]
    rows = [person(f"E{i:03d}", birthday=cell) for i, cell in enumerate(cells)] + [person("E999", birthday=None)]
    report = run_import(write_xlsx(tmp_path / "dates.xlsx", rows))

    assert report.ok, report.lines()
    birthdays = {no: s.birthday for no, s in staff_by_no().items()}
    assert birthdays.pop("E999") is None
    assert set(birthdays.values()) == {date(1980, 1, 2)}
    assert len(birthdays) == len(cells)


def test_birthday_texts_in_csv_parse(app_ctx, tmp_path):
    texts = ["1980-01-02", "1980/1/2", "19800102", ""]
    rows = [person(f"C{i}", birthday=text) for i, text in enumerate(texts)]
    report = run_import(write_csv(tmp_path / "dates.csv", rows))

    assert report.ok, report.lines()
    assert [s.birthday for _, s in sorted(staff_by_no().items())] == [date(1980, 1, 2)] * 3 + [None]


def test_bad_rows_are_each_reported_by_line_and_column_and_nothing_is_imported(app_ctx, tmp_path):
    add_staff("000050", "老员工", department="旧部门")
    rows = [
        person("000001"),                                   # line 2: fine
        person("000002", birthday="1980-13-01"),            # line 3
        person("000003", gender="未知"),                      # line 4
        person("000004", phone="12345"),                    # line 5
        person("000005", name="  "),                        # line 6
        person("000001", name="李四"),                        # line 7: 工号 of line 2 again
        person("000050", department="新部门", sub_union="新分工会"),   # fine, but must not be applied
    ]
    staff_before, sub_unions_before, audit_before = count(Staff), count(SubUnion), count(AuditLog)

    report = run_import(write_xlsx(tmp_path / "bad.xlsx", rows))

    assert not report.ok
    assert report.errors == [
        RowError(3, "出生日期", "无法识别的日期“1980-13-01”"),
        RowError(4, "性别", "无法识别的性别“未知”，应为“男”或“女”"),
        RowError(5, "手机号", "不是有效的手机号“12345”（应为 11 位大陆手机号）"),
        RowError(6, "姓名", "不能为空"),
        RowError(7, "工号", "工号“000001”与第 2 行重复"),
    ]
    assert report.lines()[0] == "第 3 行 出生日期：无法识别的日期“1980-13-01”"
    assert report.lines()[-1] == "发现 5 处问题，未导入任何数据"
    assert (count(Staff), count(SubUnion), count(AuditLog)) == (staff_before, sub_unions_before, audit_before)
    assert staff_by_no()["000050"].department == "旧部门"


def test_several_bad_cells_in_one_row_are_all_reported(app_ctx, tmp_path):
    rows = [person("bad no!", gender="M", birthday="明天", status="在岗")]
    report = run_import(write_csv(tmp_path / "bad.csv", rows))

    assert [(e.line, e.column) for e in report.errors] == [(2, "工号"), (2, "性别"), (2, "出生日期"), (2, "状态")]
    assert count(Staff) == 0


def test_missing_required_header_is_one_error_naming_it(app_ctx, tmp_path):
    header = ["工号", "部门", "手机号"]
    report = run_import(write_csv(tmp_path / "no_name.csv", [["000001", "计算机学院", "13800138000"]], header))

    assert report.errors == [RowError(1, "姓名", "缺少必需的列")]
    assert report.lines()[0] == "第 1 行 姓名：缺少必需的列"


@pytest.mark.parametrize("name", ["roster.xls", "roster.txt", "roster"])
def test_a_file_that_is_neither_csv_nor_xlsx_is_refused(app_ctx, tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"whatever")
    report = run_import(path)

    assert len(report.errors) == 1
    assert report.errors[0].line is None
    assert "CSV 或 XLSX" in report.errors[0].reason


def test_reimporting_the_same_file_changes_nothing(app_ctx, tmp_path):
    rows = [person(f"{i:05d}", name=f"员工{i}", sub_union=f"分工会{i % 3}") for i in range(20)]
    path = write_xlsx(tmp_path / "roster.xlsx", rows)
    assert run_import(path).ok
    before = {no: (s.updated_at, s.auth_version) for no, s in staff_by_no().items()}
    audit_before = count(AuditLog)
    db.session.rollback()

    report = run_import(path)

    assert (report.created, report.updated, report.unchanged, report.new_sub_unions) == ([], [], 20, [])
    assert report.lines()[0] == "共 20 行：新增 0 人，更新 0 人，无变化 20 人"
    assert {no: (s.updated_at, s.auth_version) for no, s in staff_by_no().items()} == before
    assert count(AuditLog) == audit_before


def test_changed_rows_are_updated_and_a_status_change_ends_sessions(app_ctx, tmp_path):
    add_staff("00001", "张三", department="计算机学院")
    add_staff("00002", "李四", department="数学学院")
    auth_before = staff_by_no()["00002"].auth_version
    db.session.rollback()
    rows = [person("00001", name="张三", department="软件学院"), person("00002", name="李四", status="退休")]

    report = run_import(write_csv(tmp_path / "roster.csv", rows))

    assert report.updated == ["00001", "00002"]
    saved = staff_by_no()
    assert saved["00001"].department == "软件学院"
    assert saved["00002"].status is StaffStatus.RETIRED
    assert saved["00002"].auth_version == auth_before + 1
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.target_id == "00001").order_by(AuditLog.id)).all()
    assert actions == ["staff.create", "staff.update"]


def test_columns_absent_from_the_file_keep_their_current_values(app_ctx, tmp_path):
    add_staff("00001", "张三", phone="13800138000", birthday=date(1975, 5, 6), member_since=date(2000, 9, 1),
              birthday_calendar=BirthdayCalendar.LUNAR, department="计算机学院")
    header = ["备注", "姓  名", "工号"]   # any order, extra columns ignored, spaces inside a header ignored
    report = run_import(write_csv(tmp_path / "names.csv", [["改名", "张三丰", "00001"]], header))

    assert report.updated == ["00001"]
    saved = staff_by_no()["00001"]
    assert saved.name == "张三丰"
    assert (saved.phone, saved.birthday, saved.department) == ("13800138000", date(1975, 5, 6), "计算机学院")
    assert (saved.member_since, saved.birthday_calendar) == (date(2000, 9, 1), BirthdayCalendar.LUNAR)


def test_number_cells_for_employee_no_and_phone_are_accepted(app_ctx, tmp_path):
    rows = [person(123, phone=13800138000), person(456.0, phone="+86 138-0013-8001")]
    report = run_import(write_xlsx(tmp_path / "numbers.xlsx", rows))

    assert report.ok, report.lines()
    saved = staff_by_no()
    assert (saved["123"].phone, saved["456"].phone) == ("13800138000", "13800138001")


@pytest.mark.parametrize(("on_roster", "in_file"), [("000123", 123), ("000123", "0123"), ("AB12", "ab12")])
def test_employee_no_differing_from_a_known_one_only_in_leading_zeros_or_case_is_refused(app_ctx, tmp_path,
                                                                                       on_roster, in_file):
    add_staff(on_roster, "王老师")
    report = run_import(write_xlsx(tmp_path / "lost_zeros.xlsx", [person(in_file, name="王老师")]))

    assert [(e.line, e.column) for e in report.errors] == [(2, "工号")]
    assert f"名册中已有工号“{on_roster}”" in report.errors[0].reason
    assert list(staff_by_no()) == [on_roster]


def test_employee_nos_differing_only_in_case_are_duplicates(app_ctx, tmp_path):
    report = run_import(write_csv(tmp_path / "case.csv", [person("AB12"), person("ab12")]))

    assert report.errors == [RowError(3, "工号", "工号“ab12”与第 2 行重复")]


@pytest.mark.parametrize(("content", "reason"), [("", "文件是空的"), (",,,\n", "文件是空的"),
                                                 (",".join(HEADER) + "\n", "文件中没有数据行")])
def test_a_file_without_data_rows_is_refused_and_marks_nobody_left(app_ctx, tmp_path, content, reason):
    add_staff("00001", "张三")
    path = tmp_path / "empty.csv"
    path.write_text(content, encoding="utf-8")

    report = run_import(path, mark_missing_left=True)

    assert report.errors == [RowError(None, "", reason)]
    assert report.lines() == [reason, "发现 1 处问题，未导入任何数据"]
    assert staff_by_no()["00001"].status is StaffStatus.ACTIVE


def test_dry_run_reports_what_would_change_and_writes_nothing(app_ctx, tmp_path):
    add_staff("00001", "张三", department="计算机学院", sub_union="信息分工会")
    add_staff("00002", "李四")
    rows = [person("00001", department="软件学院"), person("00003", name="王五", sub_union="新分工会")]
    audit_before = count(AuditLog)

    report = run_import(write_csv(tmp_path / "roster.csv", rows), dry_run=True, mark_missing_left=True)

    assert (report.created, report.updated, report.unchanged) == (["00003"], ["00001"], 0)
    assert (report.new_sub_unions, report.missing, report.marked_left) == (["新分工会"], ["00002"], ["00002"])
    assert report.lines()[-1] == "（试运行，未写入）"
    saved = staff_by_no()
    assert sorted(saved) == ["00001", "00002"]
    assert saved["00001"].department == "计算机学院"
    assert saved["00002"].status is StaffStatus.ACTIVE
    assert [s.name for s in db.session.scalars(select(SubUnion))] == ["信息分工会"]
    assert count(AuditLog) == audit_before


def test_staff_absent_from_the_file_are_listed_as_missing_but_kept(app_ctx, tmp_path):
    add_staff("00001", "张三")
    add_staff("00002", "李四")
    add_staff("00003", "王五", status=StaffStatus.RETIRED)
    add_staff("00004", "赵六", status=StaffStatus.LEFT)

    report = run_import(write_csv(tmp_path / "roster.csv", [person("00001")]))

    assert (report.missing, report.marked_left) == (["00002", "00003"], [])
    assert "文件中没有的在册人员（2 人）：00002 李四、00003 王五" in report.lines()
    assert staff_by_no()["00002"].status is StaffStatus.ACTIVE


def test_mark_missing_left_sets_them_left_and_bumps_auth_version(app_ctx, tmp_path):
    add_staff("00001", "张三")
    add_staff("00002", "李四")
    add_staff("00003", "王五", status=StaffStatus.RETIRED)
    auth_before = {no: s.auth_version for no, s in staff_by_no().items()}
    db.session.rollback()

    report = run_import(write_csv(tmp_path / "roster.csv", [person("00001", name="张三")]), mark_missing_left=True)

    assert report.marked_left == ["00002", "00003"]
    assert "标记为离职：2 人" in report.lines()
    saved = staff_by_no()
    assert [saved[no].status for no in ("00001", "00002", "00003")] == [
        StaffStatus.ACTIVE, StaffStatus.LEFT, StaffStatus.LEFT]
    assert saved["00002"].auth_version == auth_before["00002"] + 1
    assert saved["00003"].auth_version == auth_before["00003"] + 1
    assert count(AuditLog) == 3 + 1 + 2   # 3 creations, 张三's update from the file, 2 status changes


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig", "utf-8"])
def test_csv_in_gbk_or_utf8_with_or_without_bom_imports(app_ctx, tmp_path, encoding):
    rows = [person("000001", name="欧阳娜娜", gender="女", sub_union="图书馆分工会", department="图书馆")]
    path = write_csv(tmp_path / "roster.csv", rows, encoding=encoding)
    if encoding == "gbk":
        with pytest.raises(UnicodeDecodeError):
            path.read_bytes().decode("utf-8")

    report = run_import(path)

    assert report.ok, report.lines()
    saved = staff_by_no()["000001"]
    assert (saved.name, saved.gender, saved.department) == ("欧阳娜娜", Gender.FEMALE, "图书馆")
    assert saved.sub_union.name == "图书馆分工会"


# --- the command ---------------------------------------------------------------------------------------------

def smart_union(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "smart-union"), *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def test_cli_import_dry_run_then_import(app_ctx, tmp_path, subprocess_env):
    path = write_xlsx(tmp_path / "roster.xlsx", [person("000001"), person("000002", name="李四", sub_union="新分工会")])

    dry = smart_union(subprocess_env, "staff", "import", "--dry-run", str(path))
    assert dry.returncode == 0, dry.stderr
    assert "共 2 行：新增 2 人，更新 0 人，无变化 0 人" in dry.stdout
    assert "（试运行，未写入）" in dry.stdout
    assert count(Staff) == 0
    db.session.rollback()   # end this snapshot (MariaDB's REPEATABLE READ) to see what the next command writes

    real = smart_union(subprocess_env, "staff", "import", str(path))
    assert real.returncode == 0, real.stderr
    assert real.stdout.splitlines() == ["共 2 行：新增 2 人，更新 0 人，无变化 0 人", "新建分工会：信息分工会、新分工会"]
    assert sorted(staff_by_no()) == ["000001", "000002"]


def test_cli_import_of_a_bad_file_exits_1_with_one_line_per_bad_cell(app_ctx, tmp_path, subprocess_env):
    rows = [person("000001"), person("000002", birthday="1980-13-01"), person("000001", phone="110")]
    path = write_csv(tmp_path / "bad.csv", rows, encoding="gbk")

    result = smart_union(subprocess_env, "staff", "import", str(path))

    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "第 3 行 出生日期：无法识别的日期“1980-13-01”",
        "第 4 行 手机号：不是有效的手机号“110”（应为 11 位大陆手机号）",
        "第 4 行 工号：工号“000001”与第 2 行重复",
        "发现 3 处问题，未导入任何数据",
    ]
    assert count(Staff) == 0
