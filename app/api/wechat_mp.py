"""/wechat/mp: the official account's server URL (服务器地址). GET verifies the URL; POST receives pushes.

Thin: app.wechat.mp_push checks signatures, refuses hostile bodies and handles AES; wechat_handlers.push parses,
de-duplicates and routes. Refusals: 403 bad signature, 400 hostile or undecryptable, 413 too large.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.config import OfficialAccountSection
from app.errors import error_response
from app.extensions import this_app
from app.wechat import mp_push
from wechat_handlers import push

bp = Blueprint("wechat_mp", __name__)


def _settings() -> OfficialAccountSection:
    return this_app().config["SU"].wechat.official_account


def _refused(exc: mp_push.PushRefused):
    return error_response(exc.code, exc.message, exc.status)


@bp.get("/wechat/mp")
def verify_url():
    try:
        echostr = mp_push.verify_url(_settings(), request.args)
    except mp_push.PushRefused as exc:
        return _refused(exc)
    return Response(echostr, mimetype="text/plain")


@bp.post("/wechat/mp")
def receive_push():
    cfg = _settings()
    req = request._get_current_object()      # not through the proxy: app.extensions.this_app
    try:
        body = _read_body(req, min(cfg.max_push_bytes, this_app().config["MAX_CONTENT_LENGTH"]))
        opened = mp_push.open_push(cfg, req.args, body)
        reply = mp_push.seal_reply(cfg, push.handle_push(opened), opened)
    except mp_push.PushRefused as exc:
        return _refused(exc)
    mimetype = "application/xml" if reply.startswith("<xml>") else "text/plain"
    return Response(reply, mimetype=mimetype)


def _read_body(req, limit: int) -> bytes:
    """At most `limit` bytes: a larger Content-Length is refused unread (413), a chunked body as soon as it
    passes the limit."""
    req.max_content_length = limit + 1
    stream, body = req.stream, bytearray()   # the stream raises 413 for a Content-Length over limit + 1
    while len(body) <= limit:
        chunk = stream.read(limit + 1 - len(body))
        if not chunk:
            return bytes(body)
        body += chunk
    raise RequestEntityTooLarge()
