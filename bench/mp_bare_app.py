"""The /wechat/mp baseline (`bash bench/run.sh mp`): the least an official-account endpoint can do with a plaintext
push — check the signature, parse it with wechatpy and echo the text back as a reply. No Redis, no database.

The token comes from MP_BARE_TOKEN (the bench passes the app's own), default "smartunion" as app.config.
"""

import os

from flask import Flask, Response, request
from wechatpy import parse_message
from wechatpy.exceptions import InvalidSignatureException
from wechatpy.replies import create_reply
from wechatpy.utils import check_signature

TOKEN = os.environ.get("MP_BARE_TOKEN", "smartunion")
app = Flask(__name__)


@app.post("/wechat/mp")
def echo():
    args = request.args
    try:
        check_signature(TOKEN, args.get("signature", ""), args.get("timestamp", ""), args.get("nonce", ""))
    except InvalidSignatureException:
        return Response("invalid signature", status=403)
    message = parse_message(request.get_data())
    reply = create_reply(getattr(message, "content", None) or "success", message).render()
    return Response(reply, mimetype="application/xml")


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
