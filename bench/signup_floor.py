"""The floor for the signup bench: the smallest correct signup, to compare the real endpoint against.

One conditional UPDATE takes a seat if one is left, one INSERT records the person, in one transaction; the
primary key (event, staff) turns a second signup into a rollback that gives the seat back. Same gunicorn config,
same database, same bearer tokens (signature checked, no database lookup) as the app.
"""

from flask import Flask, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from app.config import load_config

cfg = load_config()
engine = create_engine(cfg.database.url, pool_size=cfg.database.pool_size, max_overflow=cfg.database.max_overflow)
tokens = URLSafeTimedSerializer(cfg.app.secret_key, salt="smart-union.token")   # as app.services.auth
app = Flask(__name__)

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS floor_seats (event_id integer PRIMARY KEY, capacity integer NOT NULL, "
    "taken integer NOT NULL DEFAULT 0, CHECK (taken <= capacity))",
    "CREATE TABLE IF NOT EXISTS floor_signups (event_id integer NOT NULL, staff_id integer NOT NULL, "
    "confirmed boolean NOT NULL, signed_up_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (event_id, staff_id))",
]
TAKE_SEAT = text("UPDATE floor_seats SET taken = taken + 1 WHERE event_id = :e AND taken < capacity")
RECORD = text("INSERT INTO floor_signups (event_id, staff_id, confirmed) VALUES (:e, :s, :c)")
EXISTING = text("SELECT confirmed FROM floor_signups WHERE event_id = :e AND staff_id = :s")


@app.post("/floor/events/<int:event_id>/signup")
def sign_up(event_id: int):
    try:
        staff_id = tokens.loads(request.headers.get("Authorization", "")[7:], max_age=cfg.app.token_ttl_seconds)["s"]
    except (BadSignature, KeyError):
        return {"error": {"code": "invalid_token", "message": "登录凭证无效"}}, 401
    params = {"e": event_id, "s": staff_id}
    try:
        with engine.begin() as conn:
            seated = conn.execute(TAKE_SEAT, params).rowcount == 1
            conn.execute(RECORD, {**params, "c": seated})
    except IntegrityError:          # signed up before: the rollback returned the seat
        with engine.connect() as conn:
            seated = conn.execute(EXISTING, params).scalar_one()
    return {"status": "confirmed" if seated else "waitlisted"}


@app.get("/healthz")
def healthz():
    return {"status": "ok"}
