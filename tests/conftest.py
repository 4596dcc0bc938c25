"""Test fixtures: the real database chosen by SMART_UNION_TEST_DB, real Redis, the project's fake WeChat server.

Each test starts from empty tables and none of this run's Redis keys, so tests may also drive the app over real
HTTP or from subprocesses (no transaction to hide their writes in).

Runs never meet: each pytest run creates its own database (`su_test_<run>` on the PostgreSQL or MariaDB server,
dropped at the end; a temporary file on SQLite) and keeps its Redis keys under its own prefix, deleting only those.
Every port a test listens on is chosen free by the system. So two runs from two clones on one machine at the same
time both pass.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, delete, select, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from app import create_app
from app.config import Config, load_config
from app.fakewechat import FakeWeChatServer
from models import Base

BACKEND = os.environ.get("SMART_UNION_TEST_DB", "postgresql")
SERVERS = {   # where each run creates its own database (the database named here is only where it connects first)
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
    "mariadb": "mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4",
}
REDIS_URL = os.environ.get("SMART_UNION_TEST_REDIS", "redis://127.0.0.1:6379/9")
RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
REDIS_PREFIX = f"sutest:{RUN_ID}:"
# Every process this run starts inherits the mark (it is not a SMART_UNION* variable, which subprocess
# environments filter out): what still carries it when the run ends was left behind (pytest_sessionfinish).
PROCESS_MARK = "SU_TEST_PROCESSES"
os.environ[PROCESS_MARK] = RUN_ID


def clear_run_keys(client: redis_lib.Redis) -> None:
    """Deletes this run's Redis keys, and only those (another run may share the Redis database)."""
    keys = list(client.scan_iter(f"{REDIS_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)


def pytest_report_header(config):
    return f"smart-union test database: {BACKEND}"


ONE_BACKEND_DONE = os.environ.get("SMART_UNION_TEST_BACKEND_INDEPENDENT_DONE") == "1"


def pytest_collection_modifyitems(config, items):
    coverage_asked = "api_coverage" in (config.getoption("markexpr") or "")
    for item in items:
        if "api_coverage" in item.keywords and not coverage_asked:
            item.add_marker(pytest.mark.skip(reason="the coverage phase runs with -m api_coverage"))
        if "backend_independent" in item.keywords and ONE_BACKEND_DONE:
            item.add_marker(pytest.mark.skip(reason="backend-independent: already run on the first backend"))
        if "postgresql_only" in item.keywords and BACKEND != "postgresql":
            item.add_marker(pytest.mark.skip(reason=f"needs PostgreSQL behaviour; this run is on {BACKEND}"))
        if "row_locks" in item.keywords and BACKEND == "sqlite":
            item.add_marker(pytest.mark.skip(reason="SQLite has no row locks (SELECT ... FOR UPDATE SKIP LOCKED)"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
        return
    server_url = make_url(os.environ.get("SMART_UNION_TEST_DATABASE_URL") or SERVERS[BACKEND])
    name = f"su_test_{RUN_ID}"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    charset = " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci" if BACKEND == "mariadb" else ""
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}{charset}"))
    try:
        yield server_url.set(database=name).render_as_string(hide_password=False)
    finally:
        force = " WITH (FORCE)" if BACKEND == "postgresql" else ""
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}{force}"))
        server.dispose()


@pytest.fixture(scope="session")
def fake_wechat() -> FakeWeChatServer:
    server = FakeWeChatServer.from_config(load_config(environ={}))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def settings(database_url, fake_wechat, tmp_path_factory) -> dict[str, Any]:
    """The overrides every test app uses; a test may add its own on top with `make_app`. Stored files go to a
    directory of this run's own (another run's orphan clean-up must never see them)."""
    return {
        "storage.path": str(tmp_path_factory.mktemp("uploads")),
        "database.url": database_url,
        "redis.url": REDIS_URL,
        "redis.key_prefix": REDIS_PREFIX,
        "wechat.api_base_url": fake_wechat.url,
        "app.secret_key": "test-secret-key-0123456789abcdef-xyz",
        "privacy.keys.t1": "dGVzdC1vbmx5LWtleS0wMTIzNDU2Nzg5YWJjZGVmMDE=",
        "privacy.current_key": "t1",
        "app.log_level": "WARNING",
        "app.testing": True,
    }


@pytest.fixture(scope="session")
def config(settings) -> Config:
    return load_config(environ={}, overrides=settings)


@pytest.fixture(scope="session")
def migrated(config) -> None:
    from app.migrations import drop_everything, upgrade

    drop_everything(config)
    upgrade(config)


@pytest.fixture(scope="session")
def app(config, migrated):
    application = create_app(config)
    yield application
    application.extensions["db.engine"].dispose()


@pytest.fixture
def make_app(settings, migrated):
    """Builds an app with extra config overrides (same database and Redis); its connections close after the test."""
    made = []

    def _make(**overrides):
        made.append(create_app(load_config(environ={}, overrides={**settings, **overrides})))
        return made[-1]
    yield _make
    for application in made:
        write_kept_replies(application)
        application.extensions["db.engine"].dispose()
        application.extensions["redis"].close()


def write_kept_replies(application) -> None:
    """Official-account replies still waiting in the app (wechat_handlers.kept_replies) written now, so that none
    lands in Redis after the next test has emptied it."""
    keeper = application.extensions.get("mp.kept_replies")
    if keeper is not None:
        with application.app_context():
            keeper.flush()


@pytest.fixture
def redis_client() -> redis_lib.Redis:
    client = redis_lib.Redis.from_url(REDIS_URL)
    yield client
    client.close()


@pytest.fixture(autouse=True)
def clean_state(request, redis_client):
    """Empty tables, none of this run's Redis keys and a fresh fake WeChat server before each test."""
    if "app" in request.fixturenames or "make_app" in request.fixturenames:
        write_kept_replies(request.getfixturevalue("app"))
    clear_run_keys(redis_client)
    if "app" in request.fixturenames or "make_app" in request.fixturenames:
        application = request.getfixturevalue("app")
        for client in (application.extensions["wechat"].mini, application.extensions["wechat"].mp):
            client.forget_token()                # the token it remembers was one of the keys just cleared
        with application.app_context():
            from app.extensions import db

            with db.engine.begin() as conn:
                for table in reversed(Base.metadata.sorted_tables):
                    conn.execute(delete(table))
    if "fake_wechat" in request.fixturenames:
        request.getfixturevalue("fake_wechat").reset()
    yield


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class LiveServer:
    def __init__(self, app, threaded: bool = True):
        self._server = make_server("127.0.0.1", 0, app, threaded=threaded)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        # a short poll: shutdown() waits for the serving loop to look again (0.5 s by default, per test)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        daemon=True)

    def start(self) -> "LiveServer":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
        self._server.server_close()


@pytest.fixture
def live_server(app):
    """The app served over real HTTP on loopback by a threaded WSGI server."""
    server = LiveServer(app).start()
    yield server
    server.stop()


@pytest.fixture
def subprocess_env(settings) -> dict[str, str]:
    """Environment for a `smart-union ...` subprocess that talks to the same database, Redis and fake WeChat."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMART_UNION")}
    env.pop("SMART_UNION_CONFIG", None)
    for dotted, value in settings.items():
        env[f"SMART_UNION__{'__'.join(part.upper() for part in dotted.split('.'))}"] = str(value)
    return env


REPO_ROOT = Path(__file__).resolve().parent.parent


# --- factories -----------------------------------------------------------------------------------------------

@pytest.fixture
def make_staff(app):
    """Creates a committed staff member through the roster service; returns its id."""
    from app.unit_of_work import unit_of_work
    from app.services import roster
    from models import Gender, StaffStatus

    counter = iter(range(1, 1_000_000))

    def _make(employee_no: str | None = None, name: str = "测试员工", phone: str | None = None,
              sub_union: str | None = "机关分工会", gender: Gender = Gender.FEMALE,
              status: StaffStatus = StaffStatus.ACTIVE, **extra) -> int:
        employee_no = employee_no or f"T{next(counter):05d}"
        with app.app_context(), unit_of_work():
            fields = roster.StaffFields(name=name, phone=phone, sub_union=sub_union, gender=gender,
                                        status=status, **extra)
            staff, _ = roster.upsert_staff(employee_no, fields, actor_label="test")
            return staff.id
    return _make


@pytest.fixture
def grant(app):
    """Grants a role to a staff id (sub_union by name for sub_union_officer)."""
    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from app.services import roster
    from models import Role, Staff

    def _grant(staff_id: int, role: str, sub_union: str | None = None) -> None:
        with app.app_context(), unit_of_work():
            scope = roster.ensure_sub_union(sub_union)[0].id if sub_union else None
            roster.grant_role(db.session.get(Staff, staff_id), Role(role), scope, actor_label="test")
    return _grant


@pytest.fixture
def token_for(app):
    """A bearer token for a staff id, as if they had logged in and bound through the mini-program."""
    from app.extensions import db
    from app.unit_of_work import unit_of_work
    from app.services import auth
    from models import Staff, WeChatApp, WeChatIdentity

    def _token(staff_id: int) -> str:
        with app.app_context(), unit_of_work():
            staff = db.session.get(Staff, staff_id)
            identity = db.session.scalar(select(WeChatIdentity).where(
                WeChatIdentity.app == WeChatApp.MINI_PROGRAM, WeChatIdentity.staff_id == staff_id))
            if identity is None:
                identity = WeChatIdentity(app=WeChatApp.MINI_PROGRAM, openid=f"openid-{staff_id}", staff_id=staff_id)
                db.session.add(identity)
                db.session.flush()
            return auth.issue_token(identity, staff)
    return _token


class QueryCounter:
    def __init__(self, engine):
        self.engine = engine
        self.statements: list[str] = []

    def _record(self, conn, cursor, statement, *args):
        if not statement.lstrip().upper().startswith("BEGIN"):   # SQLite's explicit BEGIN is not a query
            self.statements.append(statement)

    def __enter__(self):
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        from sqlalchemy import event

        event.remove(self.engine, "before_cursor_execute", self._record)

    @property
    def count(self) -> int:
        return len(self.statements)


@pytest.fixture
def count_queries(app):
    """`with count_queries() as q: ...; q.count` counts the SQL statements the app sends."""
    return lambda: QueryCounter(app.extensions["db.engine"])


def marked_processes(basetemp: Path | None) -> list[tuple[int, str]]:
    """(pid, command line) of live processes this run started, other than pytest itself: those carrying its mark,
    and those working in its tmp dirs (an embedded redis-server starts with an environment of its own, in the
    directory of its database)."""
    wanted = f"{PROCESS_MARK}={RUN_ID}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        if int(entry.name) == os.getpid():
            continue
        try:
            ours = wanted in (entry / "environ").read_bytes().split(b"\0") or (
                basetemp is not None and Path(os.readlink(entry / "cwd")).is_relative_to(basetemp))
            if ours:
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except (OSError, UnicodeDecodeError):       # gone meanwhile, or not ours to read
            continue
    return found


def pytest_sessionfinish(session, exitstatus):
    """No process outlives the run: demos, servers, CLI commands and the embedded redis-servers they start.
    A straggler is given a few seconds to exit, then reported (the run fails) and killed."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    basetemp = factory.getbasetemp() if factory is not None and factory._basetemp is not None else None
    deadline = time.monotonic() + 10
    while (left := marked_processes(basetemp)) and time.monotonic() < deadline:
        time.sleep(0.2)
    session.config.stash[LEFT_BEHIND] = left
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if left:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


LEFT_BEHIND = pytest.StashKey[list]()


def pytest_terminal_summary(terminalreporter):
    """Processes the run left behind, and the property-based API run's figures: operations, cases and statuses per
    operation (0 x 5xx expected)."""
    for pid, command in terminalreporter.config.stash.get(LEFT_BEHIND, []):
        terminalreporter.write_line(f"LEFT BEHIND by this run (killed now): pid {pid}: {command}", red=True)
    from tests import api_property_counts

    counts = api_property_counts.COUNTS
    if not counts:
        return
    cases = sum(sum(c.values()) for c in counts.values())
    errors = sum(n for c in counts.values() for status, n in c.items() if status >= 500)
    terminalreporter.write_sep("-", f"property-based API run: {len(counts)} operation x caller, {cases} cases, "
                                    f"{errors} x 5xx")
    for label, statuses in sorted(counts.items()):
        terminalreporter.write_line(f"{label}: " + ", ".join(f"{s} x {n}" for s, n in sorted(statuses.items())))
