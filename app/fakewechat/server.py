"""The fake WeChat server over HTTP: API dispatch (call counting, injections, token checks) and control endpoints.

GET / is a page for people: what WeChat would have delivered (template, subscribe and customer-service messages),
per person, newest first.

Control endpoints live under /_fake/ and need no token:
  GET  /_fake/sent            every delivered message
  GET  /_fake/calls           {endpoint path: number of calls}, refused calls included
  POST /_fake/inject          {"endpoint", "errcode"?, "latency_ms"?, "times"? (default 1, -1 = until reset)}
  POST /_fake/users           {"openid", "unionid"?, "subscribe"? (default 1)}, or {"users": [such objects]}
  POST /_fake/expire_tokens   {"appid"?}: the app's (or every app's) tokens answer 42001 from now on
  GET  /_fake/menu            the last menu created (null when none)
  POST /_fake/reset           forget everything above
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo
from typing import Any, Callable

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from app.config import Config
from app.fakewechat.endpoints import ENDPOINTS, Call
from app.fakewechat.state import FakeApp, FakeState, FakeUser, FakeWeChatError

log = logging.getLogger(__name__)

CONTROL_PREFIX = "_fake/"


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload, ensure_ascii=False), status=status,
                    mimetype="application/json", content_type="application/json; charset=utf-8")


def error_response(errcode: int, errmsg: str, status: int = 200) -> Response:
    return json_response({"errcode": errcode, "errmsg": errmsg}, status)


class FakeWeChatApp:
    """The WSGI application."""

    def __init__(self, apps: list[FakeApp]):
        self.state = FakeState({a.appid: a for a in apps})
        self.control: dict[tuple[str, str], Callable[[Request], Any]] = {
            ("GET", "sent"): lambda _r: self.state.sent_messages(),
            ("GET", "calls"): lambda _r: self.state.call_counts(),
            ("GET", "menu"): lambda _r: self.state.get_menu(),
            ("POST", "inject"): self._inject,
            ("POST", "users"): self._put_user,
            ("POST", "expire_tokens"): self._expire_tokens,
            ("POST", "reset"): self._reset,
        }

    def __call__(self, environ, start_response):
        request = Request(environ)
        path = request.path.lstrip("/")
        if path == "" and request.method == "GET":
            response = Response(deliveries_page(self.state.sent_messages()), mimetype="text/html")
        elif path.startswith(CONTROL_PREFIX):
            response = self._control(request, path[len(CONTROL_PREFIX):])
        else:
            response = self._api(request, path)
        return response(environ, start_response)

    # ---- WeChat API ------------------------------------------------------------------------------------------

    def _api(self, request: Request, path: str) -> Response:
        self.state.count_call(path)
        route = ENDPOINTS.get(path)
        if route is None:
            return error_response(-1, f"fake wechat: unknown path /{path}", 404)
        method, kind, handler = route
        if request.method != method:
            return error_response(-1, f"fake wechat: /{path} expects {method}", 405)
        try:
            self._apply_injection(path)
            call = Call(request)
            if kind:
                call.app = self.state.authorize(request.args.get("access_token"), kind)
            result = handler(self.state, call)
        except FakeWeChatError as exc:
            return error_response(exc.errcode, exc.errmsg)
        return result if isinstance(result, Response) else json_response(result)

    def _apply_injection(self, path: str) -> None:
        injection = self.state.take_injection(path)
        if injection is None:
            return
        if injection.latency_ms:
            time.sleep(injection.latency_ms / 1000)
        if injection.errcode:
            raise FakeWeChatError(injection.errcode, f"injected error {injection.errcode}")

    # ---- control ---------------------------------------------------------------------------------------------

    def _control(self, request: Request, name: str) -> Response:
        handler = self.control.get((request.method, name))
        if handler is None:
            return error_response(-1, f"fake wechat: unknown control {request.method} /_fake/{name}", 404)
        try:
            return json_response(handler(request))
        except (ValueError, TypeError, KeyError) as exc:
            return error_response(-1, f"fake wechat: bad control request: {exc}", 400)

    @staticmethod
    def _json(request: Request) -> dict[str, Any]:
        body = json.loads(request.get_data() or b"{}")
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        return body

    def _inject(self, request: Request) -> dict[str, Any]:
        body = self._json(request)
        endpoint = str(body["endpoint"]).lstrip("/")
        errcode = body.get("errcode")
        latency_ms = int(body.get("latency_ms") or 0)
        times = int(body.get("times", 1))
        if errcode is not None and int(errcode) == 0:
            raise ValueError("errcode must be non-zero")
        if errcode is None and latency_ms <= 0:
            raise ValueError("give errcode and/or latency_ms")
        if times == 0 or times < -1:
            raise ValueError("times must be >= 1, or -1 (until reset)")
        self.state.inject(endpoint, None if errcode is None else int(errcode), latency_ms, times)
        return {"errcode": 0, "errmsg": "ok"}

    def _put_user(self, request: Request) -> dict[str, Any]:
        body = self._json(request)
        for one in body["users"] if "users" in body else [body]:
            self.state.put_user(FakeUser(str(one["openid"]), one.get("unionid"), int(one.get("subscribe", 1))))
        return {"errcode": 0, "errmsg": "ok"}

    def _expire_tokens(self, request: Request) -> dict[str, Any]:
        count = self.state.expire_tokens(self._json(request).get("appid"))
        return {"errcode": 0, "errmsg": "ok", "expired": count}

    def _reset(self, _request: Request) -> dict[str, Any]:
        self.state.reset()
        return {"errcode": 0, "errmsg": "ok"}


class _QuietRequestHandler(WSGIRequestHandler):
    """Logs each request at DEBUG on our logger instead of werkzeug's INFO line on stderr."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s -> %s", self.command, getattr(self, "path", "?"), code)


BEIJING = ZoneInfo("Asia/Shanghai")
KINDS = {"cgi-bin/message/template/send": "公众号模板消息", "cgi-bin/message/subscribe/send": "小程序订阅消息",
         "cgi-bin/message/custom/send": "公众号客服消息"}


def deliveries_page(sent: list[dict[str, Any]]) -> str:
    """Each person's messages, newest first; people ordered by their newest message."""
    by_person: dict[str, list[dict[str, Any]]] = {}
    for message in sorted(sent, key=lambda m: m["msgid"], reverse=True):
        by_person.setdefault(message.get("touser") or "?", []).append(message)
    sections = "".join(
        f"<section><h2>{escape(person)}（{len(messages)} 条）</h2>{''.join(map(_message_html, messages))}</section>"
        for person, messages in by_person.items()) or "<p>还没有发出任何消息。</p>"
    return (f"<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\"><title>模拟微信：已送达的消息</title>"
            f"<style>{PAGE_STYLE}</style></head><body><h1>模拟微信：微信会送达的消息</h1>"
            f"<p>按接收人分组（微信只认 openid：演示中 mp-工号 是公众号的、demo-工号 是小程序的），最新的在前；"
            f"共 {len(sent)} 条。刷新页面查看新消息。</p>{sections}</body></html>")


PAGE_STYLE = ("body{font-family:system-ui,'PingFang SC','Microsoft YaHei',sans-serif;max-width:900px;margin:2rem auto;"
              "color:#222}section{border-top:1px solid #ddd;margin-top:1rem}.msg{background:#f6f8fa;border-radius:6px;"
              "padding:.5rem .8rem;margin:.5rem 0}.meta{color:#666;font-size:.85rem}dt{font-weight:bold;float:left;"
              "clear:left;width:7rem}dd{margin-left:7.5rem}")


def _message_html(message: dict[str, Any]) -> str:
    at = f"{datetime.fromtimestamp(message['at'], BEIJING):%Y-%m-%d %H:%M:%S}（北京时间）"
    values = {key: (value.get("value") if isinstance(value, dict) else value)
              for key, value in (message.get("data") or {}).items()}
    if message.get("content"):
        values["内容"] = message["content"]
    fields = "".join(f"<dt>{escape(str(k))}</dt><dd>{escape(str(v))}</dd>" for k, v in values.items())
    target = message.get("page") or message.get("url") or ""
    return (f"<div class=\"msg\"><div class=\"meta\">{escape(KINDS.get(message['endpoint'], message['endpoint']))}"
            f" · {at} · 模板 {escape(str(message.get('template_id') or '-'))}"
            f"{' · 打开 ' + escape(str(target)) if target else ''}</div><dl>{fields}</dl></div>")


def apps_from_config(cfg: Config) -> list[FakeApp]:
    mini, mp = cfg.wechat.miniprogram, cfg.wechat.official_account
    return [FakeApp(mini.appid, mini.secret, "mini"), FakeApp(mp.appid, mp.secret, "mp")]


class FakeWeChatServer:
    """The fake WeChat API on a loopback port, served by werkzeug's threaded server in a daemon thread."""

    def __init__(self, apps: list[FakeApp], host: str = "127.0.0.1", port: int = 0):
        self.wsgi_app = FakeWeChatApp(apps)
        self._server = make_server(host, port, self.wsgi_app, threaded=True,
                                   request_handler=_QuietRequestHandler)
        self.url = f"http://{host}:{self._server.server_port}/"
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, cfg: Config, host: str = "127.0.0.1", port: int = 0) -> "FakeWeChatServer":
        return cls(apps_from_config(cfg), host, port)

    @property
    def state(self) -> FakeState:
        return self.wsgi_app.state

    def start(self) -> "FakeWeChatServer":
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-wechat", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def reset(self) -> None:
        self.state.reset()

    def serve_forever(self) -> None:
        self._server.serve_forever()


def wsgi_from_environment() -> FakeWeChatApp:
    """The fake API for a WSGI server of one process (its state lives in memory), configured like `smart-union`
    (SMART_UNION_CONFIG and the environment). The fan-out bench serves it with gunicorn, which keeps connections
    alive as WeChat's API does; werkzeug's server closes each one after its answer."""
    from app.config import load_config

    return FakeWeChatApp(apps_from_config(load_config()))


def serve(cfg: Config, host: str = "127.0.0.1", port: int = 0) -> None:
    """Runs the fake server in the foreground until interrupted (the `smart-union fake-wechat` command)."""
    server = FakeWeChatServer.from_config(cfg, host, port)
    print(f"模拟微信服务器已启动，地址 {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
