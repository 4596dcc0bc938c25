"""JSON API blueprints, one module per area. Officer routes of an area live in its module under /officer/."""

from __future__ import annotations

from flask import Flask, redirect

API_PREFIX = "/api/v1"


def register_blueprints(app: Flask) -> None:
    from app.api import announcements, auth, campaigns, docs, health, inbox, staff
    from app.api import followers, wechat_mp
    from app.api import condolence_payments, condolences, events, merchants, vouchers

    app.register_blueprint(health.bp)
    app.add_url_rule("/", "root", lambda: redirect(f"{API_PREFIX}/docs"))     # a browser's first stop: the docs
    app.register_blueprint(wechat_mp.bp)   # /wechat/mp: the official account's server URL, at the root
    for module in (auth, staff, inbox, campaigns, announcements, followers, events, vouchers, merchants,
                   condolences, condolence_payments, docs):
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
