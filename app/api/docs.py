"""The OpenAPI 3.1 document, generated from the `endpoint` specs and their pydantic models, and the docs page:
Swagger UI as shipped inside the flask-openapi3-swagger package, served from here (no CDN, no internet), with the
operations grouped by area (the blueprint that serves them)."""

from __future__ import annotations

import re
from importlib import resources

from flask import Blueprint, Response, current_app, send_from_directory
from werkzeug.routing import Rule
from pydantic.json_schema import models_json_schema

from app.api.endpoint import AuthLevel, EndpointSpec, body_is_optional

bp = Blueprint("docs", __name__)

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string", "description": "中文提示"}}}},
}


@bp.get("/openapi.json")
def openapi_json():
    return build_openapi(current_app)


@bp.get("/docs", strict_slashes=False)
def docs_page():
    html = resources.files("app.api").joinpath("docs.html").read_text(encoding="utf-8")
    return Response(html, mimetype="text/html")


SWAGGER_UI = resources.files("flask_openapi3_swagger") / "templates" / "swagger"


@bp.get("/docs/assets/<path:name>")
def docs_asset(name: str):
    return send_from_directory(str(SWAGGER_UI), name, max_age=24 * 3600)


# Areas in the order a newcomer meets them: blueprint -> (tag, what it holds).
AREAS = {
    "auth": ("登录与绑定", "小程序登录、绑定教职工身份、我的资料、公众号绑定码"),
    "inbox": ("消息与通知", "我的消息、订阅消息授权；工会干部的通知、送达情况与重发"),
    "announcements": ("公告与公示", "公告列表与详情、附件；工会干部起草、发布、撤回与阅读统计"),
    "events": ("活动报名", "活动、报名与取消、候补；工会干部的活动管理、名单导出与签到"),
    "vouchers": ("生日蛋糕券", "我的生日券与出示；工会干部的发放、作废、补发、打印与政策"),
    "merchants": ("蛋糕店与收银", "收银员绑定、核销、撤销与对账；工会干部管理蛋糕店与收银员"),
    "condolences": ("慰问", "慰问申请、材料与撤回；分工会核实、校工会审批；慰问标准"),
    "condolence_payments": ("慰问发放与公示", "月度慰问金批次、慰问品送达、台账、年度数字、季度公示"),
    "mutual_aid": ("互助保障", "为会员办理市总工会互助保障：登记、材料、报送、赔付或未获赔付"),
    "retiree_visits": ("退休教职工走访", "年度走访计划、指派、登记走访或不再走访、按分工会的进度"),
    "proposals": ("教代会提案", "提案征集、附议、审查立案、交办与答复、满意度评价、提案汇编；届次、代表、部门与联络人"),
    "campaigns": ("节日慰问品", "节日慰问品的发放安排"),
    "staff": ("名册与角色", "教职工名册、角色授予、解绑与绑定码、分工会、受众预览"),
    "followers": ("公众号关注者", "公众号关注者与名册的对应"),
}


def build_openapi(app) -> dict:
    specs = _collect_specs(app)
    inputs = {(m, "validation") for _, _, spec, _ in specs for m in (spec.body, spec.query) if m is not None}
    outputs = {(spec.response, "serialization") for _, _, spec, _ in specs if spec.response is not None}
    refs, schema = models_json_schema(sorted(inputs | outputs, key=lambda pair: (pair[0].__name__, pair[1])),
                                      ref_template="#/components/schemas/{model}")
    components = schema.get("$defs", {})
    components["Error"] = ERROR_SCHEMA
    paths: dict = {}
    for path, method, spec, rule in specs:
        paths.setdefault(path, {})[method] = _operation(spec, method, rule, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "智慧工会 Smart Union API", "version": "1"},
        "tags": [{"name": name, "description": about} for name, about in AREAS.values()],
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def _collect_specs(app) -> list[tuple[str, str, EndpointSpec, Rule]]:
    found = []
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions[rule.endpoint], "endpoint_spec", None)
        if spec is None:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), spec, rule))
    return sorted(found, key=lambda item: item[0])


ERRORS = {
    400: "请求格式不正确", 401: "未登录或登录已失效", 403: "无权进行此操作", 404: "记录不存在或不可见",
    409: "记录的状态不允许此操作", 413: "提交的内容过大", 415: "请以 JSON 提交", 422: "参数不合法（message 指出字段）",
    429: "操作过于频繁（Retry-After 秒后再试）", 503: "服务繁忙或限流服务不可用",
}


def _operation(spec: EndpointSpec, method: str, rule: Rule, refs: dict) -> dict:
    ok: dict = {"description": "成功"}
    if spec.response is not None:
        ok["content"] = {"application/json": {"schema": refs[(spec.response, "serialization")]}}
    area = AREAS.get(rule.endpoint.split(".")[0], (rule.endpoint.split(".")[0], ""))[0]
    op: dict = {"summary": spec.summary, "tags": [area], "operationId": rule.endpoint.replace(".", "_"),
                "responses": {str(spec.status): ok, **{str(code): _error(code) for code in _error_codes(spec, method,
                                                                                                          rule)}}}
    params = [{"name": name, "in": "path", "required": True, "schema": _path_schema(converter)}
              for converter, name in PATH_ARGUMENT.findall(rule.rule)]
    if spec.query is not None:
        properties = spec.query.model_json_schema(ref_template="#/components/schemas/{model}")["properties"]
        for name, field in spec.query.model_fields.items():
            params.append({"name": name, "in": "query", "required": field.is_required(),
                           "description": field.description or "", "schema": _query_schema(properties[name])})
    if params:
        op["parameters"] = params
    if spec.body is not None:
        content = {"schema": refs[(spec.body, "validation")]}
        extra = spec.body.model_config.get("json_schema_extra")
        examples = extra.get("examples") if isinstance(extra, dict) else None
        if examples:
            content["examples"] = {f"示例 {n}": {"value": value} for n, value in enumerate(examples, 1)}
        op["requestBody"] = {"required": not body_is_optional(spec.body), "content": {"application/json": content}}
    if spec.upload is not None:
        form = {"type": "object", "required": [spec.upload],
                "properties": {spec.upload: {"type": "string", "format": "binary"}}}
        op["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": form}}}
    if spec.auth is not AuthLevel.NONE:
        op["security"] = [{"bearer": []}]
    return op


def _error_codes(spec: EndpointSpec, method: str, rule: Rule) -> list[int]:
    codes = {400}
    if spec.auth is not AuthLevel.NONE:
        codes |= {401, 403}
    if rule.arguments:
        codes.add(404)
    if method != "get":
        codes.add(409)
    if spec.body is not None or spec.upload is not None:
        codes |= {413, 415, 422}
    if spec.query is not None or rule.arguments:
        codes.add(422)
    if spec.limited:
        codes |= {429, 503}
    return sorted(codes)


def _error(code: int) -> dict:
    return {"description": ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


PATH_ARGUMENT = re.compile(r"<(?:([^:>]+):)?([^>]+)>")


def _path_schema(converter: str) -> dict:
    if converter == "int":          # app.DatabaseIntConverter: an id of a 32-bit column
        return {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
    return {"type": "string", "minLength": 1, "maxLength": 64}


def _query_schema(schema: dict) -> dict:
    """A query value is never null: an optional parameter is one that may be left out."""
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **options[0]}
    return {k: v for k, v in schema.items() if not (k == "default" and v is None)}
