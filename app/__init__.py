"""Smart Union (智慧工会): the Flask application factory."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from app.config import Config, load_config


class DatabaseIntConverter(IntegerConverter):
    """<int:...> in a URL is an id: beyond a 32-bit column it is a 404, not a database error."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def create_app(config: Config | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    cfg = config or load_config(overrides=overrides)
    app = Flask(__name__, instance_relative_config=False)
    app.config["SU"] = cfg
    app.config["SECRET_KEY"] = cfg.app.secret_key
    app.config["MAX_CONTENT_LENGTH"] = cfg.app.max_request_bytes
    app.json.ensure_ascii = False
    logging.basicConfig(level=cfg.app.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from app import clock, errors
    from models.base import use_clock
    from app.api import register_blueprints
    from app.extensions import build_redis, db
    from app.wechat.client import build_wechat_clients

    use_clock(clock.now)
    db.init_app(app, cfg)
    app.extensions["redis"] = build_redis(cfg)
    app.extensions["wechat"] = build_wechat_clients(cfg, app.extensions["redis"])
    errors.init_app(app)
    app.url_map.converters["int"] = DatabaseIntConverter
    if cfg.app.trusted_proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg.app.trusted_proxy_hops)
    register_blueprints(app)
    return app
