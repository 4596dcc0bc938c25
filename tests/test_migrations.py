"""Alembic migrations build the schema on an empty database of each kind, and match the models."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from models import Base
from tests.conftest import BACKEND

SMART_UNION = str(Path(sys.executable).parent / "smart-union")


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """A brand-new, empty database on the same server as the test database, dropped afterwards."""
    if BACKEND == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"su_migrate_{uuid.uuid4().hex[:8]}"
    server = create_engine(make_url(database_url), isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f"DROP DATABASE {name}"))
        server.dispose()


def test_db_upgrade_builds_an_empty_database(empty_database_url, subprocess_env):
    env = {**subprocess_env, "SMART_UNION__DATABASE__URL": empty_database_url}
    result = subprocess.run([SMART_UNION, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "数据库已升级到" in result.stdout

    engine = create_engine(empty_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []   # the migrations match the models
    finally:
        engine.dispose()


def test_db_upgrade_twice_is_harmless(empty_database_url, subprocess_env):
    env = {**subprocess_env, "SMART_UNION__DATABASE__URL": empty_database_url}
    for _ in range(2):
        result = subprocess.run([SMART_UNION, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr


@pytest.mark.backend_independent
def test_migrations_are_frozen_and_import_nothing_from_the_app():
    """An old migration must do tomorrow what it did the day it was written, whatever the app's code becomes."""
    import re

    versions = Path(__file__).resolve().parent.parent / "models" / "migrations" / "versions"
    for path in sorted(versions.glob("*.py")):
        assert not re.search(r"^\s*(from|import) app\b", path.read_text(encoding="utf-8"), re.M), path.name
