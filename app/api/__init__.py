"""JSON API blueprints, one module per area. Officer routes of an area live in its module under /officer/."""

from __future__ import annotations

from flask import Flask

API_PREFIX = "/api/v1"


def register_blueprints(app: Flask) -> None:
    from app.api import announcements, auth, campaigns, docs, health, inbox, staff

    app.register_blueprint(health.bp)
    for module in (auth, staff, inbox, campaigns, announcements, docs):
        app.register_blueprint(module.bp, url_prefix=API_PREFIX)
