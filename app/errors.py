"""Every error the API answers is JSON: {"error": {"code": "...", "message": "<Chinese>"}}."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class Refusal(Exception):
    """A refusal a person should understand, raised by services: `code` is stable English, `message` Chinese.

    The subclass says what kind of refusal it is; each edge maps the kind to its own answer: an HTTP status
    (HTTP_STATUS below), a WeChat reply (the message), a CLI exit. Services never name HTTP statuses."""

    def __init__(self, code: str, message: str, **detail):
        super().__init__(code)
        self.code = code
        self.message = message
        self.detail = detail


class Invalid(Refusal):
    """Input that breaks a rule: a field, a schedule, an answer."""


class Unauthorized(Refusal):
    """Who is calling is unknown, or their login is no longer valid."""


class Forbidden(Refusal):
    """The caller may see this, but not do it."""

    def __init__(self, message: str = "您没有权限进行此操作", code: str = "forbidden"):
        super().__init__(code, message)


class NotFound(Refusal):
    """No such record, or none the caller may see."""

    def __init__(self, message: str = "您要找的内容不存在", code: str = "not_found"):
        super().__init__(code, message)


class Conflict(Refusal):
    """The record's state does not allow this now (already done, closed, full...)."""


class TooLarge(Refusal):
    """A file or body over its limit."""


class UnsupportedMediaType(Refusal):
    """A body in a format the endpoint does not read."""


class RateLimited(Refusal):
    """Too many attempts; try again later."""


class Busy(Refusal):
    """Too many people at once; try again in a moment."""


class WeChatUnavailable(Refusal):
    """WeChat did not answer as it should."""


class Unreadable(Refusal):
    """A stored record that cannot be read back as written: its ciphertext was changed, or its key is missing."""


HTTP_STATUS: dict[type[Refusal], int] = {
    Refusal: 400, Invalid: 422, Unauthorized: 401, Forbidden: 403, NotFound: 404, Conflict: 409, TooLarge: 413,
    UnsupportedMediaType: 415, RateLimited: 429, Unreadable: 500, WeChatUnavailable: 502, Busy: 503,
}


def http_status(refusal: Refusal) -> int:
    return next(HTTP_STATUS[kind] for kind in type(refusal).__mro__ if kind in HTTP_STATUS)


# Chinese wording for the HTTP errors Flask itself raises (routing, size limit, methods).
HTTP_MESSAGES = {
    400: ("bad_request", "请求格式不正确"),
    401: ("unauthorized", "请先登录"),
    403: ("forbidden", "您没有权限进行此操作"),
    404: ("not_found", "您要找的内容不存在"),
    405: ("method_not_allowed", "不支持该请求方法"),
    413: ("payload_too_large", "提交的内容过大"),
    415: ("unsupported_media_type", "请以 JSON 格式提交"),
    429: ("too_many_requests", "操作过于频繁，请稍后再试"),
}


def error_response(code: str, message: str, status: int, **detail):
    body = {"error": {"code": code, "message": message, **({"detail": detail} if detail else {})}}
    return jsonify(body), status


def init_app(app: Flask) -> None:
    @app.errorhandler(Refusal)
    def _refusal(exc: Refusal):
        response, status = error_response(exc.code, exc.message, http_status(exc), **exc.detail)
        if "retry_after" in exc.detail:
            response.headers["Retry-After"] = str(exc.detail["retry_after"])
        return response, status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        code, message = HTTP_MESSAGES.get(exc.code or 500, ("error", "请求无法处理"))
        response, status = error_response(code, message, exc.code or 500)
        if getattr(exc, "valid_methods", None):
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        if status == 413:       # the rest of the body was never read: the connection cannot carry another request
            response.headers["Connection"] = "close"
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response("internal_error", "服务器开小差了，请稍后再试", 500)
