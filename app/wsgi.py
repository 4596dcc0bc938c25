"""WSGI entry point for gunicorn: `gunicorn -c gunicorn.conf.py` (config from SMART_UNION_CONFIG)."""

from app import create_app

app = create_app()
