"""JSON API blueprints, one module per area. Officer routes of an area live in its module under /officer/."""

from __future__ import annotations

from flask import Flask, Response

API_PREFIX = "/api/v1"


def _to_the_docs() -> Response:
    docs = f"{API_PREFIX}/docs"
    return Response(f'<!doctype html><meta charset="utf-8"><title>智慧工会</title>接口文档：<a href="{docs}">{docs}</a>',
                    status=302, headers={"Location": docs}, mimetype="text/html")


def register_blueprints(app: Flask) -> None:
    from app.api import announcements, auth, campaigns, docs, health, inbox, staff
    from app.api import followers, wechat_mp
    from app.api import condolence_payments, condolences, events, merchants, mutual_aid, proposals, retiree_visits, vouchers

    app.register_blueprint(health.bp)
    app.add_url_rule("/", "root", _to_the_docs)       # a browser's first stop
    app.register_blueprint(wechat_mp.bp)   # /wechat/mp: the official account's server URL, at the root
    for module in (auth, staff, inbox, campaigns, announcements, followers, events, vouchers, merchants,
                   condolences, condolence_payments, retiree_visits, mutual_aid, proposals, docs):
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
