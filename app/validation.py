"""The one input boundary: what every body, query and path value must satisfy before a service sees it.

- JSON is parsed here (`parse_json`), not by Flask: depth and size have limits, and a body nested deeper than
  Python can parse is a 422, not a crash.
- No NUL and no lone surrogate anywhere in a body, a query or a path (`check_text`): PostgreSQL cannot store the
  first, UTF-8 cannot encode the second.
- Models are validated by `validate_model`: a refusal names the field in Chinese and never echoes the value; every
  integer fits the 32-bit columns it reaches.
- Field types for input models: `Id` and `whole` numbers are JSON integers (never a boolean, a float or a string),
  `Moment` is a time given as text and within the union's years (2000-01-01 – 2099-12-31, Beijing time). Values stay
  lenient elsewhere (labels, times without an offset may come in later), so pydantic's global strict mode is not used.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from datetime import date, datetime, timezone
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from pydantic import (
    AfterValidator, AwareDatetime, BaseModel, BeforeValidator, Field, PlainSerializer, Strict, ValidationError,
    WithJsonSchema,
)

from app.errors import Invalid, Refusal

INT32_MAX = 2**31 - 1
MAX_JSON_DEPTH = 32
UNION_ZONE = ZoneInfo("Asia/Shanghai")
EARLIEST, LATEST = datetime(2000, 1, 1, tzinfo=UNION_ZONE), datetime(2100, 1, 1, tzinfo=UNION_ZONE)
BAD_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
M = TypeVar("M", bound=BaseModel)
E = TypeVar("E", bound=enum.Enum)

FIELD_LABELS_CN = {
    "missing": "缺少必填项", "extra_forbidden": "不支持的字段", "int_type": "应为整数", "int_parsing": "应为整数",
    "bool_type": "应为 true 或 false", "bool_parsing": "应为 true 或 false", "string_type": "应为文本",
    "greater_than_equal": "太小", "less_than_equal": "太大", "greater_than": "太小", "less_than": "太大",
    "string_too_long": "太长", "string_too_short": "不能为空", "too_long": "项数太多", "too_short": "项数太少",
    "enum": "不是可选的值", "literal_error": "不是可选的值", "list_type": "应为列表", "dict_type": "应为对象",
    "model_type": "应为对象", "timezone_aware": "应带时区（如 +08:00）", "datetime_parsing": "不是有效的时间",
    "datetime_type": "应为时间文本", "date_parsing": "不是有效的日期", "date_from_datetime_parsing": "不是有效的日期",
    "string_pattern_mismatch": "格式不正确",
}


# --- field types ------------------------------------------------------------------------------------------------

def whole(ge: int = 0, le: int = INT32_MAX, **kw: Any) -> Any:
    """A whole number given as a JSON integer, within [ge, le] (and a 32-bit column)."""
    return Annotated[int, Strict(), Field(ge=ge, le=min(le, INT32_MAX), **kw)]


Id = Annotated[int, Strict(), Field(ge=1, le=INT32_MAX)]


def _text_only(value: Any) -> Any:
    """A time as text; one typed without an offset (2026-12-10T14:00:00) is Beijing time."""
    if not isinstance(value, (str, datetime)):
        raise ValueError("应为时间文本，如 2026-05-01T09:00:00+08:00")
    if isinstance(value, str) and ("T" in value or " " in value):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return value                 # pydantic says what is wrong with it
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UNION_ZONE)
    return value


def _within_union_years(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("应在 2000-01-01 至 2099-12-31（北京时间）之间")
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_text_only), AfterValidator(_within_union_years)]


def _day_within_union_years(value: date) -> date:
    if not EARLIEST.date() <= value < LATEST.date():
        raise ValueError("应在 2000-01-01 至 2099-12-31 之间")
    return value


Day = Annotated[date, AfterValidator(_day_within_union_years)]      # a calendar day the union plans with


def _one_line(value: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError("不能包含换行")
    return value


def line(min_length: int = 1, max_length: int = 100) -> Any:
    """A title or a name: text of that length on one line (it is shown in lists, notices and file names)."""
    return Annotated[str, Field(min_length=min_length, max_length=max_length), AfterValidator(_one_line)]


def _in_beijing(value: datetime) -> str:
    aware = value if value.tzinfo else value.replace(tzinfo=timezone.utc)     # stored times are UTC
    return aware.astimezone(UNION_ZONE).isoformat()


# A time in a response: Beijing time with its offset (2026-12-10T14:00:00+08:00), as people there read it.
BeijingTime = Annotated[datetime, PlainSerializer(_in_beijing, return_type=str, when_used="json"),
                        WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization")]


def labelled(kind: type[E], labels: Mapping[E, str]) -> Any:
    """A choice given by its code (`male`) or by the Chinese label people see in responses (`男`); anything else is
    answered with every choice, code and label."""
    by_label = {label: member for member, label in labels.items()}
    by_code = {member.value: member for member in labels}          # a member without a label is not a choice
    choices = "、".join(f"{member.value}（{label}）" for member, label in labels.items())

    def parse(value: Any) -> Any:
        if isinstance(value, kind) and value in labels:
            return value
        if isinstance(value, str):
            if value in by_label:
                return by_label[value]
            if value in by_code:
                return by_code[value]
        raise ValueError(f"不是可选的值，可选：{choices}")

    codes_and_labels = list(by_code) + list(by_label)
    return Annotated[kind, BeforeValidator(parse),
                     WithJsonSchema({"type": "string", "enum": codes_and_labels, "description": f"可选：{choices}"},
                                    mode="validation")]

# --- raw input ----------------------------------------------------------------------------------------------------

def parse_json(raw: bytes) -> Any:
    try:
        data = json.loads(raw)
    except RecursionError:
        raise Invalid("json_too_deep", f"请求内容嵌套超过 {MAX_JSON_DEPTH} 层") from None
    except ValueError:
        raise Refusal("invalid_json", "请求内容不是合法的 JSON") from None
    check_text(data, "")
    return data


def check_text(value: Any, where: str, depth: int = 0) -> None:
    """Refuses NUL characters and lone surrogates in every key and string, and nesting beyond MAX_JSON_DEPTH."""
    if depth > MAX_JSON_DEPTH:
        raise Invalid("json_too_deep", f"请求内容嵌套超过 {MAX_JSON_DEPTH} 层")
    if isinstance(value, str):
        if BAD_CHARACTERS.search(value):
            raise Invalid("invalid_characters", f"参数 {where or '请求'} 含有不允许的字符（如 NUL）")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(key, where, depth + 1)
            check_text(item, f"{where}.{key}" if where else key, depth + 1)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            check_text(item, f"{where}.{n}" if where else str(n), depth + 1)


def has_bad_characters(text: str) -> bool:
    return bool(BAD_CHARACTERS.search(text))


# --- models -------------------------------------------------------------------------------------------------------

def validate_model(model: type[M], data: Any) -> M:
    """Validates data into a model, answering bad input with a 422 that names the field (in Chinese)."""
    try:
        validated = model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"])
        reason = FIELD_LABELS_CN.get(err["type"], "格式不正确")
        if err["type"] == "value_error":   # our validators word their reasons in Chinese
            reason = str(err["ctx"]["error"])
        elif err["type"] in ("enum", "literal_error"):
            reason += "，可选：" + err["ctx"]["expected"].replace(" or ", ", ")
        elif err["type"] == "string_too_short" and err.get("ctx", {}).get("min_length", 1) > 1:
            reason = f"太短（至少 {err['ctx']['min_length']} 个字）"
        message = f"参数 {field} {reason}" if field else reason      # a rule over the whole request: its words only
        raise Invalid("invalid_request", message,
                      fields=[".".join(str(p) for p in e["loc"]) for e in exc.errors()]) from None
    _check_integers(validated, "")
    return validated


def _check_integers(value: Any, where: str) -> None:
    """Every integer fits the 32-bit columns and parameters it reaches."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not -INT32_MAX - 1 <= value <= INT32_MAX:
            raise Invalid("invalid_request", f"参数 {where or '请求'} 超出范围", fields=[where])
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            _check_integers(getattr(value, name), f"{where}.{name}" if where else name)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_integers(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, (list, tuple)):
        for n, item in enumerate(value):
            _check_integers(item, f"{where}.{n}" if where else str(n))
