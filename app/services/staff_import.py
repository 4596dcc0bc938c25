"""The HR roster import: a CSV or XLSX export is validated row by row, then upserted into the roster by 工号.

Nothing is written unless every row is valid. Columns the file does not have keep their current values; a column
that is present but empty clears the field (状态 empty means 在职). The service only flushes; the caller commits.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Callable

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException
from pydantic import ValidationError
from sqlalchemy import select

from app import clock
from app.extensions import db
from app.services import departments, roster
from models import Staff, StaffStatus, SubUnion

log = logging.getLogger(__name__)

# The headers HR exports, and the StaffFields field each one fills.
COLUMNS = {"工号": "employee_no", "姓名": "name", "性别": "gender", "出生日期": "birthday", "部门": "department",
           "分工会": "sub_union", "手机号": "phone", "状态": "status", "去世日期": "died_on"}
REQUIRED_COLUMNS = ("工号", "姓名")
HEADER_OF = {name: header for header, name in COLUMNS.items()}
GENDERS = {label: gender for gender, label in roster.GENDER_LABELS.items()}
STATUSES = {label: status for status, label in roster.STATUS_LABELS.items()}
CSV_ENCODINGS = ("utf-8-sig", "gb18030")   # gb18030 is a superset of GBK: Excel on Chinese Windows saves GBK
DATE_PATTERNS = (
    re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[ T]\d{1,2}:\d{2}(?::\d{2})?)?"),
    re.compile(r"(\d{4})(\d{2})(\d{2})"),
    re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日?"),
)
EARLIEST_BIRTHDAY = date(1900, 1, 1)
MAX_LISTED = 50


@dataclass(frozen=True)
class RowError:
    line: int | None    # as seen in the file (the header is line 1); None for a problem with the whole file
    column: str
    reason: str

    def __str__(self) -> str:
        if self.line is None:
            return self.reason
        return f"第 {self.line} 行 {self.column}：{self.reason}" if self.column else f"第 {self.line} 行：{self.reason}"


@dataclass
class ImportReport:
    total_rows: int = 0
    created: list[str] = field(default_factory=list)          # 工号
    updated: list[str] = field(default_factory=list)          # 工号
    unchanged: int = 0
    new_sub_unions: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)          # 工号 on the roster (not 离职) absent from the file
    missing_names: dict[str, str] = field(default_factory=dict)
    marked_left: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors

    def lines(self) -> list[str]:
        """The report as Chinese lines for the command line."""
        if self.errors:
            return [str(error) for error in self.errors] + [f"发现 {len(self.errors)} 处问题，未导入任何数据"]
        lines = [f"共 {self.total_rows} 行：新增 {len(self.created)} 人，更新 {len(self.updated)} 人，"
                 f"无变化 {self.unchanged} 人"]
        if self.new_sub_unions:
            lines.append("新建分工会：" + "、".join(self.new_sub_unions))
        if self.missing:
            listed = [f"{no} {self.missing_names.get(no, '')}".strip() for no in self.missing[:MAX_LISTED]]
            more = f" 等 {len(self.missing)} 人" if len(self.missing) > MAX_LISTED else ""
            lines.append(f"文件中没有的在册人员（{len(self.missing)} 人）：" + "、".join(listed) + more)
        if self.marked_left:
            lines.append(f"标记为离职：{len(self.marked_left)} 人")
        if self.dry_run:
            lines.append("（试运行，未写入）")
        return lines


@dataclass(frozen=True)
class _Row:
    line: int
    employee_no: str | None   # None when the 工号 cell is bad
    given: dict[str, Any]   # StaffFields values for the columns the file has


@dataclass(frozen=True)
class _Change:
    employee_no: str
    fields: roster.StaffFields
    staff: Staff | None     # None: a new staff member


class _Unreadable(ValueError):
    """The file, or one cell of it, cannot be understood; the message is the Chinese reason."""


def import_staff_file(path: Path, *, dry_run: bool = False, mark_missing_left: bool = False,
                      actor_label: str = "cli") -> ImportReport:
    """Validates every row of the file, then (unless dry_run or any row is bad) upserts the staff by 工号."""
    report = ImportReport(dry_run=dry_run)
    try:
        header, data = _read_table(Path(path))
    except _Unreadable as exc:
        report.errors.append(RowError(None, "", str(exc)))
        return report
    report.total_rows = len(data)
    staff_by_no, sub_union_by_name = _load_roster()
    rows = _validate_rows(header, data, staff_by_no, report.errors)
    if not report.ok:
        return report
    changes = _plan_changes(rows, staff_by_no, report)
    missing = _find_missing(rows, staff_by_no, report, mark_missing_left)
    report.new_sub_unions = list(dict.fromkeys(
        c.fields.sub_union for c in changes if c.fields.sub_union and c.fields.sub_union not in sub_union_by_name))
    if not dry_run:
        _write(changes, missing if mark_missing_left else [], report.new_sub_unions, sub_union_by_name, actor_label)
    log.info("staff import of %s: %d rows, %d created, %d updated, %d missing, %d marked left%s", Path(path).name,
             report.total_rows, len(report.created), len(report.updated), len(report.missing),
             len(report.marked_left), " (dry run)" if dry_run else "")
    return report


# --- reading the file ------------------------------------------------------------------------------------------

def _read_table(path: Path) -> tuple[tuple[int, list[Any]], list[tuple[int, list[Any]]]]:
    """The header row and the data rows, each with its line number; blank rows are dropped."""
    readers = {".csv": _csv_rows, ".xlsx": _xlsx_rows, ".xlsm": _xlsx_rows}
    if path.suffix.lower() not in readers:
        raise _Unreadable(f"不支持的文件类型“{path.name}”：请使用 CSV 或 XLSX（.xls 请在 Excel 中另存为 .xlsx）")
    rows = [(line, cells) for line, cells in readers[path.suffix.lower()](path) if any(map(_text, cells))]
    if len(rows) < 2:
        raise _Unreadable("文件中没有数据行" if rows else "文件是空的")
    return rows[0], rows[1:]


def _csv_rows(path: Path) -> list[tuple[int, list[Any]]]:
    text = _decode(path.read_bytes())
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if first_line.count("\t") > first_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = []
    while True:
        line = reader.line_num + 1   # where the record starts (a quoted cell may span lines)
        try:
            rows.append((line, next(reader)))
        except StopIteration:
            return rows
        except csv.Error as exc:
            raise _Unreadable(f"第 {line} 行不是有效的 CSV：{exc}") from exc


def _decode(data: bytes) -> str:
    for encoding in CSV_ENCODINGS:
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode(encoding)
    raise _Unreadable("无法识别文件的编码：请另存为 UTF-8 或 GBK 编码的 CSV")


def _xlsx_rows(path: Path) -> list[tuple[int, list[Any]]]:
    """The first sheet's rows; openpyxl numbers them from 1 and yields empty rows too, so lines match Excel's."""
    try:
        workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise _Unreadable(f"无法打开 Excel 文件“{path.name}”：{exc}") from exc
    try:
        return [(line, list(cells)) for line, cells in
                enumerate(workbook.worksheets[0].iter_rows(values_only=True), start=1)]
    finally:
        workbook.close()


# --- validating rows --------------------------------------------------------------------------------------------

def _validate_rows(header: tuple[int, list[Any]], data: list[tuple[int, list[Any]]],
                   staff_by_no: dict[str, Staff], errors: list[RowError]) -> list[_Row]:
    """Every row parsed; each problem is added to errors (the rows are of use only when there are none)."""
    columns = _header_columns(*header, errors)
    if errors:
        return []
    near = {_loose(no): no for no in staff_by_no}
    rows, first_line_of = [], {}
    for line, cells in data:
        row = _parse_row(line, {name: (cells[pos] if pos < len(cells) else None) for name, pos in columns.items()},
                         errors)
        no = row.employee_no
        if no and no.casefold() in first_line_of:   # case too: MariaDB's unique index ignores it
            errors.append(RowError(line, "工号", f"工号“{no}”与第 {first_line_of[no.casefold()]} 行重复"))
        elif no and no not in staff_by_no and _loose(no) in near:
            errors.append(RowError(line, "工号", f"名册中已有工号“{near[_loose(no)]}”，与“{no}”只差前导零或大小写"
                                                 "（Excel 会去掉数字单元格的前导零，请把工号列设为文本格式）"))
        if no:
            first_line_of.setdefault(no.casefold(), line)
        rows.append(row)
    return rows


def _loose(employee_no: str) -> str:
    """工号 without leading zeros or case: a file 工号 equal to a roster one only this way is a mistake."""
    return employee_no.lstrip("0").casefold()


def _header_columns(line: int, cells: list[Any], errors: list[RowError]) -> dict[str, int]:
    """Where each known column is, by header (spaces inside a header such as “姓  名” are ignored)."""
    columns: dict[str, int] = {}
    for position, cell in enumerate(cells):
        header = re.sub(r"\s+", "", _text(cell))
        if header in columns:
            errors.append(RowError(line, header, "表头中有重复的列"))
        elif header in COLUMNS:
            columns[header] = position
    errors.extend(RowError(line, header, "缺少必需的列") for header in REQUIRED_COLUMNS if header not in columns)
    return columns


def _parse_row(line: int, raw: dict[str, Any], errors: list[RowError]) -> _Row:
    """The row's values as StaffFields keeps them; each bad cell is added to errors, in column order."""
    values: dict[str, Any] = {}
    problems: list[RowError] = []
    for header, cell in raw.items():
        try:
            values[COLUMNS[header]] = CELL_PARSERS[header](cell)
        except _Unreadable as exc:
            problems.append(RowError(line, header, str(exc)))
    employee_no = values.pop("employee_no", None)
    given: dict[str, Any] = {}
    try:
        given = roster.StaffFields(**values).model_dump(include=set(values))
    except ValidationError as exc:
        problems.extend(_translate(line, error, raw) for error in exc.errors())
    order = {header: position for position, header in enumerate(raw)}
    errors.extend(sorted(problems, key=lambda problem: order.get(problem.column, len(order))))
    return _Row(line, employee_no, given)


def _translate(line: int, error: dict[str, Any], raw: dict[str, Any]) -> RowError:
    """A pydantic error on one field, in the words of the column it came from."""
    header = HEADER_OF.get(str(error["loc"][0]) if error["loc"] else "", "")
    kind, context, shown = error["type"], error.get("ctx") or {}, _text(raw.get(header))
    if kind in ("missing", "string_too_short"):
        reason = "不能为空"
    elif kind == "string_too_long":
        reason = f"不能超过 {context.get('max_length')} 个字符"
    elif header == "手机号":
        reason = f"不是有效的手机号“{shown}”（应为 11 位大陆手机号）"
    else:
        reason = f"格式不正确“{shown}”"
    return RowError(line, header, reason)


def _text(value: Any) -> str:
    """A cell as text. An integral number cell (Excel's 123.0) reads as “123”."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _employee_no(value: Any) -> str:
    """工号 is text: a text cell keeps its leading zeros. A number cell has already lost them in Excel, so it is
    taken as str(int); a roster 工号 it may stand for (“000123” for 123) is caught in _validate_rows."""
    text = _text(value)
    if not text:
        raise _Unreadable("不能为空")
    if (isinstance(value, float) and not value.is_integer()) or not re.match(roster.EMPLOYEE_NO_PATTERN, text):
        raise _Unreadable(f"工号格式不正确“{text}”：只能由字母、数字、下划线和短横线组成，最长 32 位")
    return text


def _label(value: Any, labels: dict[str, Any], what: str, empty: Any = None) -> Any:
    """The enum member a Chinese label (男, 在职, ...) stands for; an empty cell gives `empty`."""
    text = _text(value)
    if not text:
        return empty
    if text not in labels:
        raise _Unreadable(f"无法识别的{what}“{text}”，应为" + "或".join(f"“{label}”" for label in labels))
    return labels[text]


def _birthday(value: Any) -> date | None:
    """An Excel date cell, 1980-01-02, 1980/1/2, 1980.1.2, 1980年1月2日 or 19800102 (text or number cell)."""
    if isinstance(value, datetime):
        parsed, shown = value.date(), value.date().isoformat()
    elif isinstance(value, date):
        parsed, shown = value, value.isoformat()
    else:
        shown = _text(value)
        if not shown:
            return None
        parsed = _parse_date_text(shown)
        if parsed is None:
            raise _Unreadable(f"无法识别的日期“{shown}”")
    if not EARLIEST_BIRTHDAY <= parsed <= clock.today():
        raise _Unreadable(f"日期不合理“{shown}”")
    return parsed


def _parse_date_text(text: str) -> date | None:
    for pattern in DATE_PATTERNS:
        if match := pattern.fullmatch(text):
            with contextlib.suppress(ValueError):   # 1980-13-01
                return date(*(int(part) for part in match.groups()))
            return None
    return None


def _phone(value: Any) -> str | None:
    """Normalized here (a number cell, spaces, +86) so StaffFields checks the 11 digits that will be kept."""
    text = _text(value)
    return roster.normalize_phone(text) if text else None


CELL_PARSERS: dict[str, Callable[[Any], Any]] = {
    "工号": _employee_no, "姓名": _text, "性别": lambda value: _label(value, GENDERS, "性别"),
    "出生日期": _birthday, "部门": _text, "分工会": lambda value: _text(value) or None, "手机号": _phone,
    "状态": lambda value: _label(value, STATUSES, "状态", StaffStatus.ACTIVE),
    "去世日期": _birthday,          # a date in the same range and forms as a birthday
}


# --- planning and writing ---------------------------------------------------------------------------------------

def _load_roster() -> tuple[dict[str, Staff], dict[str, SubUnion]]:
    """Every staff member (with their sub-union, joined) and every sub-union, in two queries."""
    return ({s.employee_no: s for s in db.session.scalars(select(Staff))},
            {s.name: s for s in db.session.scalars(select(SubUnion))})


def _plan_changes(rows: list[_Row], staff_by_no: dict[str, Staff], report: ImportReport) -> list[_Change]:
    """What each row would change; fills created / updated / unchanged. Columns absent from the file keep
    the staff member's current values."""
    changes = []
    named = departments.canonical_names({row.given["department"] for row in rows if "department" in row.given})
    for row in rows:
        staff = staff_by_no.get(row.employee_no)
        wanted = roster.merged_fields(staff, row.given)
        if "department" in row.given:          # an old name of a renamed department changes nothing
            wanted.department = named[row.given["department"]]
        if staff is not None and wanted == roster.staff_fields_of(staff):
            report.unchanged += 1
            continue
        (report.updated if staff else report.created).append(row.employee_no)
        changes.append(_Change(row.employee_no, wanted, staff))
    return changes


def _find_missing(rows: list[_Row], staff_by_no: dict[str, Staff], report: ImportReport,
                  mark_missing_left: bool) -> list[Staff]:
    in_file = {row.employee_no for row in rows}
    missing = sorted((s for no, s in staff_by_no.items() if no not in in_file and s.status is not StaffStatus.LEFT),
                     key=lambda s: s.employee_no)
    report.missing = [s.employee_no for s in missing]
    report.missing_names = {s.employee_no: s.name for s in missing}
    if mark_missing_left:
        report.marked_left = list(report.missing)
    return missing


def _write(changes: list[_Change], to_mark_left: list[Staff], new_sub_unions: list[str],
           sub_union_by_name: dict[str, SubUnion], actor_label: str) -> None:
    """Applies the plan with one flush at the end (the ORM batches the INSERTs), instead of upsert_staff's
    lookup and flush per row."""
    for name in new_sub_unions:
        sub_union_by_name[name] = roster.ensure_sub_union(name)[0]
    departments.resolve_all({change.fields.department for change in changes})
    for change in changes:
        _write_staff(change, sub_union_by_name, actor_label)
    for staff in to_mark_left:
        roster.set_status(staff, StaffStatus.LEFT, actor_label=actor_label)   # bumps auth_version: sessions end
    db.session.flush()


def _write_staff(change: _Change, sub_union_by_name: dict[str, SubUnion], actor_label: str) -> None:
    sub_union = sub_union_by_name[change.fields.sub_union] if change.fields.sub_union else None
    roster.save_staff(change.staff, change.employee_no, change.fields, sub_union.id if sub_union else None,
                      actor_label=actor_label)
