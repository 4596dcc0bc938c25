"""XLSX workbooks for officers and finance: Chinese headers, one sheet, typed text kept as text."""

from __future__ import annotations

import io
from typing import Iterable

from openpyxl import Workbook
from openpyxl.utils import get_column_letter


def workbook(title: str, headers: list[str], rows: Iterable[list], widths: list[int]) -> bytes:
    """One sheet with a frozen header row. A text cell that looks like a formula ("=HYPERLINK(...)") is written as
    text, never a live formula, and reads back exactly as it was typed."""
    wb = Workbook()
    ws = wb.active
    ws.title = title
    for values in (headers, *rows):
        ws.append(values)
        for cell in ws[ws.max_row]:
            if cell.data_type == "f":
                cell.data_type = "s"
    for i, width in enumerate(widths, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    ws.freeze_panes = "A2"
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()
