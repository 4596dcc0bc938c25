"""Smart Union (智慧工会): the Flask application factory."""

from __future__ import annotations

import inspect
import logging
import threading
from typing import Any

from flask import Flask
from flask.ctx import _AppCtxGlobals
from flask.sessions import SessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from app.config import Config, load_config


class DatabaseIntConverter(IntegerConverter):
    """<int:...> in a URL is an id: beyond a 32-bit column it is a 404, not a database error."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


class SyncFlask(Flask):
    """Flask with no coroutine views or hooks (none is registered: create_app refuses one). Flask asks of every hook
    and view on every request whether it is a coroutine; seven hooks made that a measurable share of a request."""

    def ensure_sync(self, func):
        return func


class RequestGlobals(_AppCtxGlobals):
    """Flask's `g`, where `g.staff` is the caller's staff row, read from the database only when a view asks for
    it, and `g.member` the caller's cached card (app.services.principals), which reads like the row for every
    check and query that only reads: most member requests need nothing more."""

    @property
    def staff(self):
        return self.principal.staff

    @property
    def member(self):
        return self.principal.card


class NoCookieSessions(SessionInterface):
    """The API signs its own bearer tokens and keeps no cookie session: none is opened or saved per request."""

    def open_session(self, app, request):
        return self.make_null_session(app)

    def save_session(self, app, session, response) -> None:
        return None


def _follow_requests(app: Flask, trust_request_id: bool) -> None:
    """A request id per request (a proxy's X-Request-ID when proxies are trusted), on every line logged meanwhile,
    on the notices written and in the answer; and one log line per request: its route pattern, never its query."""
    from flask import g, request

    from app import logs

    # The request and `g` themselves, not their proxies (app.extensions.this_app tells why).
    def start() -> None:
        given = logs.valid_request_id(request.headers.get("X-Request-ID")) if trust_request_id else None
        g._get_current_object().request_id_token = logs.REQUEST_ID.set(given or logs.new_request_id())

    def finish(response):
        response.headers["X-Request-ID"] = logs.REQUEST_ID.get()
        req = request._get_current_object()
        route = req.url_rule.rule if req.url_rule is not None else "(no route)"
        method = req.method if req.method in logs.KNOWN_METHODS else "OTHER"
        request_log.info("%s %s %s", method, route, response.status_code)
        return response

    def forget(_exc) -> None:
        token = g._get_current_object().pop("request_id_token", None)
        if token is not None:
            logs.REQUEST_ID.reset(token)

    app.before_request(start)
    app.after_request(finish)
    app.teardown_request(forget)


request_log = logging.getLogger("app.requests")   # app.logs.REQUEST_LOG: its lines are written unmasked


def create_app(config: Config | None = None, overrides: dict[str, Any] | None = None) -> Flask:
    cfg = config or load_config(overrides=overrides)
    app = SyncFlask(__name__, instance_relative_config=False)
    app.app_ctx_globals_class = RequestGlobals
    app.session_interface = NoCookieSessions()
    app.config["SU"] = cfg
    app.config["SECRET_KEY"] = cfg.app.secret_key
    app.config["MAX_CONTENT_LENGTH"] = cfg.app.max_request_bytes
    app.json.ensure_ascii = False
    from app import clock, errors, logs, metrics

    logs.configure(cfg.app.log_level, cfg.app.log_format)
    from models.base import use_clock
    from app.api import register_blueprints
    from app.extensions import build_redis, db
    from app.wechat.client import build_wechat_clients

    use_clock(clock.now)
    db.init_app(app, cfg)
    app.extensions["redis"] = build_redis(cfg)
    app.extensions["redis.threads"] = threading.local()     # app.extensions.thread_redis
    app.extensions["wechat"] = build_wechat_clients(cfg, app.extensions["redis"])
    errors.init_app(app)
    _follow_requests(app, trust_request_id=cfg.app.trusted_proxy_hops > 0)
    metrics.init_app(app)
    app.url_map.converters["int"] = DatabaseIntConverter
    if cfg.app.trusted_proxy_hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=cfg.app.trusted_proxy_hops)
    register_blueprints(app)
    _refuse_coroutines(app)
    return app


def _refuse_coroutines(app: Flask) -> None:
    """SyncFlask calls views and hooks as they are: a coroutine among them would never run."""
    hooks = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    handlers = (f for by_code in app.error_handler_spec.values() for by_class in by_code.values()
                for f in by_class.values())
    functions = [*app.view_functions.values(), *app.teardown_appcontext_funcs, *handlers,
                 *(f for registry in hooks for funcs in registry.values() for f in funcs)]
    coroutines = [f.__qualname__ for f in functions if inspect.iscoroutinefunction(inspect.unwrap(f))]
    if coroutines:
        raise RuntimeError(f"coroutine views or hooks are not supported: {coroutines}")
