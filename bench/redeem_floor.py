"""The floor for the redemption bench: the smallest correct redemption, to compare the real endpoint against.

One conditional UPDATE marks the voucher with this code redeemed if it is not already; rowcount says whether this
request won. Same gunicorn config, same database, the cashier's bearer token checked by signature only.
"""

from flask import Flask, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import create_engine, text

from app.config import load_config

cfg = load_config()
engine = create_engine(cfg.database.url, pool_size=cfg.database.pool_size, max_overflow=cfg.database.max_overflow)
tokens = URLSafeTimedSerializer(cfg.app.secret_key, salt="smart-union.token")   # as app.services.auth
app = Flask(__name__)

SCHEMA = ["CREATE TABLE IF NOT EXISTS floor_vouchers (code text PRIMARY KEY, redeemed_at timestamptz, "
          "redeemed_by integer)"]
REDEEM = text("UPDATE floor_vouchers SET redeemed_at = now(), redeemed_by = :c WHERE code = :code "
              "AND redeemed_at IS NULL")


@app.post("/floor/redeem")
def redeem():
    try:
        cashier_id = tokens.loads(request.headers.get("Authorization", "")[7:], max_age=cfg.app.token_ttl_seconds)["c"]
    except (BadSignature, KeyError):
        return {"error": {"code": "invalid_token", "message": "登录凭证无效"}}, 401
    with engine.begin() as conn:
        won = conn.execute(REDEEM, {"code": (request.get_json(silent=True) or {}).get("code"), "c": cashier_id}).rowcount
    return ({"redeemed": True}, 200) if won else ({"error": {"code": "voucher_used", "message": "已使用"}}, 409)


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
