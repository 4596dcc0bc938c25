"""The OpenAPI 3 document, generated from the `endpoint` specs and their pydantic models, and a docs page
that needs no internet (no CDN: it renders the document itself)."""

from __future__ import annotations

import re
from importlib import resources

from flask import Blueprint, Response, current_app
from pydantic.json_schema import models_json_schema

from app.api.endpoint import AuthLevel, EndpointSpec

bp = Blueprint("docs", __name__)

ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "object", "properties": {
        "code": {"type": "string"}, "message": {"type": "string", "description": "中文提示"}}}},
}


@bp.get("/openapi.json")
def openapi_json():
    return build_openapi(current_app)


@bp.get("/docs")
def docs_page():
    html = resources.files("app.api").joinpath("docs.html").read_text(encoding="utf-8")
    return Response(html, mimetype="text/html")


def build_openapi(app) -> dict:
    specs = _collect_specs(app)
    inputs = {(m, "validation") for _, _, spec in specs for m in (spec.body, spec.query) if m is not None}
    outputs = {(spec.response, "serialization") for _, _, spec in specs if spec.response is not None}
    refs, schema = models_json_schema(sorted(inputs | outputs, key=lambda pair: (pair[0].__name__, pair[1])),
                                      ref_template="#/components/schemas/{model}")
    components = schema.get("$defs", {})
    components["Error"] = ERROR_SCHEMA
    paths: dict = {}
    for path, method, spec in specs:
        paths.setdefault(path, {})[method] = _operation(spec, path, refs)
    return {
        "openapi": "3.1.0",
        "info": {"title": "智慧工会 Smart Union API", "version": "1"},
        "components": {"schemas": components,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "paths": paths,
    }


def _collect_specs(app) -> list[tuple[str, str, EndpointSpec]]:
    found = []
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions[rule.endpoint], "endpoint_spec", None)
        if spec is None:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((path, method.lower(), spec))
    return sorted(found, key=lambda item: item[0])


def _operation(spec: EndpointSpec, path: str, refs: dict) -> dict:
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    ok = {"description": "成功"}
    if spec.response is not None:
        ok["content"] = {"application/json": {"schema": refs[(spec.response, "serialization")]}}
    op: dict = {"summary": spec.summary, "tags": list(spec.tags),
                "responses": {str(spec.status): ok, "4XX": {"description": "请求被拒绝", **error}}}
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in re.findall(r"{([^}]+)}", path)]
    if spec.query is not None:
        for name, field in spec.query.model_fields.items():
            params.append({"name": name, "in": "query", "required": field.is_required(),
                           "description": field.description or "", "schema": {}})
    if params:
        op["parameters"] = params
    if spec.body is not None:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": refs[(spec.body, "validation")]}}}
    if spec.auth is not AuthLevel.NONE:
        op["security"] = [{"bearer": []}]
    return op
