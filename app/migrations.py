"""Schema management through Alembic (models/migrations), used by `smart-union db ...` and the tests."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import MetaData, text

from app.config import Config
from app.extensions import build_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "models" / "migrations"


def _alembic_config(connection) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def upgrade(cfg: Config, revision: str = "head") -> None:
    engine = build_engine(cfg)
    try:
        with engine.begin() as conn:
            command.upgrade(_alembic_config(conn), revision)
    finally:
        engine.dispose()


def has_schema(cfg: Config) -> bool:
    """Whether `db upgrade` has run on this database; a missing SQLite file is not created to find out."""
    url = cfg.database.url
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:" and not Path(url.split("///", 1)[1]).exists():
        return False
    return current_revision(cfg) is not None


def current_revision(cfg: Config) -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = build_engine(cfg)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def autogenerate(cfg: Config, message: str) -> None:
    engine = build_engine(cfg)
    try:
        with engine.begin() as conn:
            command.revision(_alembic_config(conn), message=message, autogenerate=True)
    finally:
        engine.dispose()


def drop_everything(cfg: Config) -> None:
    """Drops every table in the database (tests and `db reset` only)."""
    engine = build_engine(cfg)
    try:
        with engine.begin() as conn:
            meta = MetaData()
            meta.reflect(conn)
            meta.drop_all(conn)
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    finally:
        engine.dispose()
