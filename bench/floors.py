"""The floors of the signup and redemption benches: the smallest correct implementation of each, to compare the
real endpoint against. Same gunicorn config, same database, same bearer tokens (checked by signature only, no
database lookup) as the app; each is an app of its own (`bench.floors:signup_app`, `bench.floors:redeem_app`).

- Signup: one conditional UPDATE takes a seat if one is left, one INSERT records the person, in one transaction;
  the primary key (event, staff) turns a second signup into a rollback that gives the seat back.
- Redemption: one conditional UPDATE marks the voucher with this code redeemed if it is not already; rowcount
  says whether this request won.
"""

from flask import Flask, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from app.config import load_config

cfg = load_config()
engine = create_engine(cfg.database.url, pool_size=cfg.database.pool_size, max_overflow=cfg.database.max_overflow)
tokens = URLSafeTimedSerializer(cfg.app.secret_key, salt="smart-union.token")   # as app.services.auth
INVALID_TOKEN = {"error": {"code": "invalid_token", "message": "登录凭证无效"}}, 401


def _bearer(key: str) -> int | None:
    """The token's `key` ("s" staff, "c" cashier), or None when the token is not valid."""
    try:
        return tokens.loads(request.headers.get("Authorization", "")[7:], max_age=cfg.app.token_ttl_seconds)[key]
    except (BadSignature, KeyError):
        return None


def _healthz():
    return {"status": "ok"}


signup_app = Flask(__name__)
signup_app.get("/healthz")(_healthz)
SIGNUP_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS floor_seats (event_id integer PRIMARY KEY, capacity integer NOT NULL, "
    "taken integer NOT NULL DEFAULT 0, CHECK (taken <= capacity))",
    "CREATE TABLE IF NOT EXISTS floor_signups (event_id integer NOT NULL, staff_id integer NOT NULL, "
    "confirmed boolean NOT NULL, signed_up_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (event_id, staff_id))",
]
SIGNUP_SEATS = "INSERT INTO floor_seats (event_id, capacity) VALUES (:e, :c)"
TAKE_SEAT = text("UPDATE floor_seats SET taken = taken + 1 WHERE event_id = :e AND taken < capacity")
RECORD = text("INSERT INTO floor_signups (event_id, staff_id, confirmed) VALUES (:e, :s, :c)")
EXISTING = text("SELECT confirmed FROM floor_signups WHERE event_id = :e AND staff_id = :s")


@signup_app.post("/floor/events/<int:event_id>/signup")
def sign_up(event_id: int):
    if (staff_id := _bearer("s")) is None:
        return INVALID_TOKEN
    params = {"e": event_id, "s": staff_id}
    try:
        with engine.begin() as conn:
            seated = conn.execute(TAKE_SEAT, params).rowcount == 1
            conn.execute(RECORD, {**params, "c": seated})
    except IntegrityError:          # signed up before: the rollback returned the seat
        with engine.connect() as conn:
            seated = conn.execute(EXISTING, params).scalar_one()
    return {"status": "confirmed" if seated else "waitlisted"}


redeem_app = Flask(__name__)
redeem_app.get("/healthz")(_healthz)
REDEEM_SCHEMA = ["CREATE TABLE IF NOT EXISTS floor_vouchers (code text PRIMARY KEY, redeemed_at timestamptz, "
                 "redeemed_by integer)"]
REDEEM_CODES = "INSERT INTO floor_vouchers (code) VALUES (:c)"
REDEEM = text("UPDATE floor_vouchers SET redeemed_at = now(), redeemed_by = :c WHERE code = :code "
              "AND redeemed_at IS NULL")


@redeem_app.post("/floor/redeem")
def redeem():
    if (cashier_id := _bearer("c")) is None:
        return INVALID_TOKEN
    with engine.begin() as conn:
        code = (request.get_json(silent=True) or {}).get("code")
        won = conn.execute(REDEEM, {"code": code, "c": cashier_id}).rowcount
    return ({"redeemed": True}, 200) if won else ({"error": {"code": "voucher_used", "message": "已使用"}}, 409)
