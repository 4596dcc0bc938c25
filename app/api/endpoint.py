"""The `endpoint` decorator: authentication, request validation with pydantic, and OpenAPI metadata.

    @bp.post("/auth/bind")
    @endpoint(body=BindIn, response=LoginOut, auth=AuthLevel.WECHAT, summary="绑定教职工身份")
    def bind(body: BindIn): ...

The view receives the validated body (and query) as keyword arguments; `g.principal` / `g.staff` hold the caller.
"""

from __future__ import annotations

import copy
import enum
import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Hashable, Iterable
from urllib.parse import quote

from flask import Blueprint, Response, g, request, send_file
from pydantic import BaseModel, ConfigDict, create_model
from pydantic.fields import FieldInfo
from werkzeug.exceptions import RequestEntityTooLarge

from app.errors import NotFound, Refusal, Unauthorized, UnsupportedMediaType
from app.extensions import ScriptCall
from app.services import auth, policy
from app.unit_of_work import retrying_lost_races, unit_of_work
from app.validation import check_text, has_bad_characters, parse_json, validate_model


class AuthLevel(enum.Enum):
    NONE = "none"          # public
    WECHAT = "wechat"      # logged in through WeChat, maybe not bound yet
    STAFF = "staff"        # a bound staff member (the default)
    OFFICER = "officer"    # a union or sub-union officer (services ask app.services.policy for the rest)
    CASHIER = "cashier"    # a merchant's cashier (生日蛋糕券): sees nothing a member or an officer sees


@dataclass(frozen=True)
class EndpointSpec:
    summary: str
    auth: AuthLevel
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    tags: tuple[str, ...]
    limited: bool          # under a rate limit (app.services.rate_limits): may answer 429 or 503
    upload: str | None     # the multipart/form-data field of an uploaded file, for the OpenAPI document
    prefetch: Callable[[int], ScriptCall | None] | None    # a Redis lookup the view will make, sent with the card's


def endpoint(summary: str, *, auth: AuthLevel = AuthLevel.STAFF, body: type[BaseModel] | None = None,
             query: type[BaseModel] | None = None, response: type[BaseModel] | None = None, status: int = 200,
             tags: tuple[str, ...] = (), limited: bool = False, upload: str | None = None,
             prefetch: Callable[[int], ScriptCall | None] | None = None) -> Callable:
    spec = EndpointSpec(summary, auth, body, query, response, status, tags, limited, upload, prefetch)

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any):
            return retrying_lost_races(lambda: _run(view, spec, args, dict(kwargs)))

        wrapper.endpoint_spec = spec
        return wrapper

    return decorate


@dataclass(frozen=True)
class AfterCommit:
    """A view's answer shaped only after its commit, from objects that need no session (a signup's: its event row
    is held until the commit, and every other signup waits for it meanwhile)."""

    shape: Callable[[], BaseModel]


def _run(view: Callable, spec: EndpointSpec, args: tuple, kwargs: dict[str, Any]):
    with unit_of_work():       # the request's one commit, after the answer is shaped from the objects
        _check_path(kwargs)
        _authenticate(spec.auth, spec.prefetch)
        if spec.body is not None:
            kwargs["body"] = validate_model(spec.body, _json_body(spec.body))
        if spec.query is not None:
            query = request._get_current_object().args.to_dict()
            check_text(query, "")
            kwargs["query"] = validate_model(spec.query, query)
        result = view(*args, **kwargs)
    if isinstance(result, AfterCommit):
        result = result.shape()
    # A response model holds plain values once validated, so it is written out after the commit: not while a signup
    # still holds its event's row. Serialized by pydantic-core in one step, no dict in between.
    if isinstance(result, BaseModel):
        return Response(result.model_dump_json(), status=spec.status, mimetype="application/json")
    return result


def _authenticate(level: AuthLevel, prefetch: Callable[[int], ScriptCall | None] | None) -> None:
    if level is AuthLevel.NONE:
        return
    header = request._get_current_object().headers.get("Authorization", "")     # not through the proxy: this_app
    if not header.startswith("Bearer ") or not header[7:].strip():
        raise Unauthorized("login_required", "请先登录")
    principal = auth.authenticate(header[7:].strip(), prefetch)
    request_globals = g._get_current_object()
    request_globals.principal = principal          # g.staff reads the row when first asked for (app.RequestGlobals)
    request_globals.cashier = principal.cashier
    if level is AuthLevel.WECHAT:
        return
    policy.ensure_caller_kind(principal, cashier_route=level is AuthLevel.CASHIER)
    if level is AuthLevel.CASHIER:
        return
    if principal.card is None:
        raise Unauthorized("not_bound", "请先绑定教职工身份")
    if level is AuthLevel.OFFICER:
        policy.ensure_officer(principal.card)


def body_is_optional(model: type[BaseModel]) -> bool:
    return not any(field.is_required() for field in model.model_fields.values())


def _json_body(model: type[BaseModel]) -> Any:
    req = request._get_current_object()
    if body_is_optional(model) and _sent_no_body(req):
        return {}                        # `curl -X POST …/publish` means "with the defaults"
    if not req.is_json:
        raise UnsupportedMediaType("unsupported_media_type", "请以 JSON 格式提交（Content-Type: application/json）")
    raw = req.get_data(cache=True)
    if req.max_content_length is not None and len(raw) >= req.max_content_length:
        raise RequestEntityTooLarge()      # a chunked body is cut at the limit, not refused, by werkzeug
    return parse_json(raw)


def _sent_no_body(req) -> bool:
    return not req.content_length and "Transfer-Encoding" not in req.headers


def _check_path(view_args: dict[str, Any]) -> None:
    """A path value that cannot be one of our records' (a NUL, a lone surrogate) names nothing here."""
    if any(isinstance(v, str) and has_bad_characters(v) for v in view_args.values()):
        raise NotFound()


READS_RECORDS = ConfigDict(from_attributes=True)     # response models read ORM objects (and `Merged`) directly


class Merged:
    """An object and some values computed beside it, read as one by a response model with `from_attributes`:
    `EventCardOut.model_validate(Merged(card.event, seats_left=3, phase="open"))`."""

    def __init__(self, obj: Any, **values: Any):
        self._obj = obj
        self._values = values

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__["_values"]
        return values[name] if name in values else getattr(self.__dict__["_obj"], name)


_RENDERED_ITEMS: dict[tuple[type[BaseModel], Hashable], str] = {}
RENDERED_KEPT = 8192


def list_response(envelope: BaseModel, field: str, item_model: type[BaseModel], items: Iterable[Hashable]) -> Response:
    """`envelope` as JSON with `field` (left empty in it) holding `items` as `item_model` renders them. Each distinct
    item (a hashable row, immutable) is rendered once per process: a list page that the whole union opens again
    and again would otherwise be validated and serialized row by row on every request."""
    rendered = []
    for item in items:
        found = _RENDERED_ITEMS.get((item_model, item))
        if found is None:
            if len(_RENDERED_ITEMS) >= RENDERED_KEPT:
                _RENDERED_ITEMS.clear()
            found = _RENDERED_ITEMS[(item_model, item)] = item_model.model_validate(item).model_dump_json()
        rendered.append(found)
    rest = envelope.model_dump_json(exclude={field})
    body = f'{{"{field}":[{",".join(rendered)}]' + ("}" if rest == "{}" else "," + rest[1:])
    return Response(body, mimetype="application/json")


def partial_of(model: type[BaseModel], name: str, doc: str) -> type[BaseModel]:
    """A PATCH body from a create body: the same fields, rules and validators, each optional. A field left out stays
    as it is; an explicit null is refused (422) unless the field itself allows null."""
    fields = {n: (f.annotation, _optional(f)) for n, f in model.model_fields.items()}
    patch = create_model(name, __base__=model, **fields)
    patch.__doc__ = doc
    return patch


def _optional(field: FieldInfo) -> FieldInfo:
    field = copy.copy(field)
    field.default, field.default_factory = None, None
    return field


UNSAFE_IN_FILENAME = re.compile(r'[\x00-\x1f\x7f"\\/:*?<>|]+')


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def file_download(source: Any, name: str, mimetype: str, ascii_name: str) -> Response:
    """A file as a download (never shown inline), of its own type and never sniffed into another, under a name
    that is safe in a header whatever was typed: RFC 6266 `filename*` in UTF-8, and `ascii_name` for clients
    that read only `filename` (curl -OJ, which would otherwise save 报名名单-….xlsx as `-.xlsx`)."""
    fallback = safe_filename(ascii_name.encode("ascii", "ignore").decode())
    response = send_file(source, mimetype=mimetype, as_attachment=True, download_name=fallback, max_age=0)
    response.headers["Content-Disposition"] = (f'attachment; filename="{fallback}"; '
                                               f"filename*=UTF-8''{quote(safe_filename(name), safe='')}")
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def ascii_or(name: str, fallback: str) -> str:
    """`name` when it is plain ASCII (report.pdf stays report.pdf), else `fallback`."""
    return name if name.isascii() else fallback


def safe_filename(name: str, fallback: str = "download") -> str:
    """Typed text as a file name: no control characters (a CR/LF would break the header), quotes or path parts."""
    return UNSAFE_IN_FILENAME.sub("_", name).strip(" ._")[:120] or fallback


def never_cached(blueprint: Blueprint) -> None:
    """Every answer of the blueprint `Cache-Control: no-store, private`: records no browser or proxy may keep
    (health, family, money)."""
    @blueprint.after_request
    def _never_cached(response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store, private"
        return response


def uploaded_file(field: str = "file") -> tuple[str, bytes]:
    """The multipart upload an endpoint declared (`upload=`): its typed name and its bytes."""
    sent = request.files.get(field)
    if sent is None:
        raise Refusal("file_missing", f"请以 multipart/form-data 上传，字段名为 {field}")
    sent.stream.seek(0)            # read again when a deadlock's victim runs a second time
    return sent.filename or "", sent.read()
